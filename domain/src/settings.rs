//! Settings given blank count as not given, for both binaries' command lines: a
//! deployment that leaves a setting empty (a CloudFormation parameter left blank
//! becomes `NAME=""`) means "not set".

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};

use clap::{CommandFactory, FromArgMatches};

/// Parses `args` as `C` with `env` as its environment, a blank (empty or
/// all-whitespace) value counting as not given: an optional setting is unset, a
/// defaulted one takes its default, a list is empty, a required one fails with
/// clap's "required" error.
///
/// Why: a deployment that leaves a setting empty (a CloudFormation parameter left
/// blank becomes `NAME=""`) means "not set", but clap takes an empty variable or
/// argument as a value: an empty issuer would refuse every token, an empty number
/// would stop the program. clap 4 has no switch for this, and `Arg::env` reads the
/// variable when the command is built. So before parsing, an option whose variable
/// is blank is unbound from it, and blank words leave the command line with the
/// option they belong to. Removing the variables instead would need `unsafe`
/// (`std::env::remove_var`) and race with other threads; a value parser that
/// refuses blanks would refuse, not ignore.
pub fn parse_blank_as_unset<C: CommandFactory + FromArgMatches>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    env: impl IntoIterator<Item = (impl Into<OsString>, impl Into<OsString>)>,
) -> Result<C, clap::Error> {
    let mut cmd = unbind(C::command(), &blank_variables(env));
    let args = drop_blank_words(&cmd, args.into_iter().map(Into::into));
    let matches = cmd.try_get_matches_from_mut(args)?;
    C::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// Empty or only whitespace.
fn is_blank(value: &OsStr) -> bool {
    value.to_str().is_some_and(|v| v.trim().is_empty())
}

/// The names in `env` whose value is blank.
pub fn blank_variables(
    env: impl IntoIterator<Item = (impl Into<OsString>, impl Into<OsString>)>,
) -> HashSet<OsString> {
    let env = env.into_iter().map(|(n, v)| (n.into(), v.into()));
    env.filter(|(_, value): &(OsString, OsString)| is_blank(value))
        .map(|(name, _)| name)
        .collect()
}

/// `cmd`, and every subcommand, with options whose variable is `blank` unbound from it.
pub fn unbind(cmd: clap::Command, blank: &HashSet<OsString>) -> clap::Command {
    cmd.mut_args(|arg| {
        let unset = arg.get_env().is_some_and(|name| blank.contains(name));
        if unset {
            arg.env(None::<&'static str>)
        } else {
            arg
        }
    })
    .mut_subcommands(|sub| unbind(sub, blank))
}

/// `--name` of every option, in `cmd` and its subcommands, that takes a value.
fn value_options(cmd: &clap::Command, names: &mut HashSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long().filter(|_| arg.get_action().takes_values()) {
            names.insert(format!("--{long}"));
        }
    }
    for sub in cmd.get_subcommands() {
        value_options(sub, names);
    }
}

/// `args` without blank words: `--name ""`, `--name=` and a blank positional go;
/// the program name and everything after `--` stay.
fn drop_blank_words(
    cmd: &clap::Command,
    args: impl IntoIterator<Item = OsString>,
) -> Vec<OsString> {
    let mut takes_value = HashSet::new();
    value_options(cmd, &mut takes_value);
    let mut args = args.into_iter().peekable();
    let mut kept: Vec<OsString> = args.next().into_iter().collect();
    while let Some(arg) = args.next() {
        let text = arg.to_str().unwrap_or_default();
        if text == "--" {
            kept.push(arg);
            kept.extend(args);
            break;
        }
        let blank_inline = text
            .split_once('=')
            .is_some_and(|(name, value)| takes_value.contains(name) && value.trim().is_empty());
        if blank_inline || is_blank(&arg) {
            continue;
        }
        if takes_value.contains(text) && args.peek().is_some_and(|next| is_blank(next)) {
            args.next();
            continue;
        }
        kept.push(arg);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_variables_are_the_empty_and_all_whitespace_ones() {
        let blank = blank_variables([
            ("ACTIVITY_JWT_ISSUER", ""),
            ("ACTIVITY_ALLOWED_GROUPS", "  \t"),
            ("ACTIVITY_JWT_AUDIENCE", "activity-history"),
            ("ACTIVITY_CORS_ORIGINS", " https://a.example "),
        ]);
        let expected: HashSet<OsString> = ["ACTIVITY_JWT_ISSUER", "ACTIVITY_ALLOWED_GROUPS"]
            .into_iter()
            .map(OsString::from)
            .collect();
        assert_eq!(blank, expected);
    }
}
