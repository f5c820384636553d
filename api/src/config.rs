//! The `activity-api` command line. Every option can also be set from the
//! environment variable named beside it; a blank value counts as not given;
//! secrets are never printed.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use domain::settings::parse_blank_as_unset;

/// A key or password from the command line or environment. Its `Debug` and
/// `Display` print `<redacted>`, so logging a `Config` (or an error holding one)
/// cannot leak it; the value is reached only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's bytes, for the one place that signs or verifies with them.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Serves the history of every entity over HTTP; never writes the table (posted
/// activities are queued for the listener).
///
/// Runs as an AWS Lambda function behind API Gateway when AWS_LAMBDA_RUNTIME_API is set.
#[derive(Debug, Parser)]
#[command(name = "activity-api", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ACTIVITY_API_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// DynamoDB table of activity records.
    #[arg(long, env = "ACTIVITY_TABLE", default_value = domain::table::DEFAULT_TABLE)]
    pub table: String,

    /// Key (16 bytes or more) that signs page tokens. Every instance must share it,
    /// or a token issued by one is refused by another.
    #[arg(long, env = "ACTIVITY_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Secret,

    /// Shared secret (32 bytes or more) for HS256 bearer tokens.
    #[arg(long, env = "ACTIVITY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// JWKS file path or http(s) URL with the RS256/ES256 keys of the identity provider.
    #[arg(long, env = "ACTIVITY_JWKS")]
    pub jwks: Option<String>,

    /// Required `iss` claim.
    #[arg(long, env = "ACTIVITY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim.
    #[arg(long, env = "ACTIVITY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Comma-separated groups; a caller must be in one of them (`groups` claim).
    #[arg(long, env = "ACTIVITY_ALLOWED_GROUPS", value_delimiter = ',')]
    pub allowed_groups: Vec<String>,

    /// Comma-separated origins allowed to call from a browser.
    #[arg(long, env = "ACTIVITY_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "ACTIVITY_REQUEST_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub request_timeout_secs: u64,

    /// Seconds a client may take to send a request's headers, and an idle
    /// keep-alive connection may stay open, before the connection is closed.
    #[arg(long, env = "ACTIVITY_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout_secs: u64,
    /// TOML file naming, per caller group, the target types its members may read
    /// (docs/api.md, Access); when unset every caller reads every record, and a
    /// warning at start says so.
    #[arg(long, env = "ACTIVITY_ACCESS_FILE")]
    pub access_file: Option<std::path::PathBuf>,

    /// The activity queue the listener reads; when set, writers may post
    /// activities, which are queued there (docs/api.md, Posting activities).
    /// Unset, the API is read-only.
    #[arg(long, env = "ACTIVITY_INGEST_QUEUE_URL")]
    pub ingest_queue_url: Option<String>,

    /// Key (32 bytes or more) that signs posted activities' queue messages; the
    /// listener's ACTIVITY_INGEST_KEY. Required with ACTIVITY_INGEST_QUEUE_URL.
    #[arg(long, env = "ACTIVITY_INGEST_KEY", hide_env_values = true)]
    pub ingest_key: Option<Secret>,

    /// Comma-separated groups whose members may post activities; none when unset.
    #[arg(long, env = "ACTIVITY_WRITER_GROUPS", value_delimiter = ',')]
    pub writer_groups: Vec<String>,

    /// The listener's mapping file, so posted activities are checked against the
    /// target types the listener records.
    #[arg(long, env = "ACTIVITY_MAPPING_FILE")]
    pub mapping_file: Option<std::path::PathBuf>,

    /// Name of the cookie the platform keeps the signed-in user's JWT in; the
    /// history viewer (/history/) signs in with it when it is readable by script.
    #[arg(long, env = "ACTIVITY_TOKEN_COOKIE", value_parser = cookie_name)]
    pub token_cookie: Option<String>,

    /// What to run; the server when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Extra commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an HS256 token signed with ACTIVITY_JWT_SECRET, for local development.
    DevToken {
        /// Subject claim.
        #[arg(long, default_value = "developer")]
        sub: String,
        /// Comma-separated groups claim.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Hours until it expires.
        #[arg(long, default_value_t = 12)]
        hours: u64,
    },
}

impl Config {
    /// The process's command line and environment, a blank value counting as not
    /// given ([`parse_blank_as_unset`]); on an error (or `--help`), says why and exits.
    pub fn load() -> Self {
        parse_blank_as_unset(std::env::args_os(), std::env::vars_os()).unwrap_or_else(|e| e.exit())
    }

    /// The verifier's settings.
    pub fn auth(&self) -> crate::auth::AuthConfig {
        crate::auth::AuthConfig {
            hs256_secret: self.jwt_secret.as_ref().map(|s| s.expose().to_vec()),
            jwks: self.jwks.as_deref().map(crate::auth::JwksSource::parse),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            allowed_groups: trimmed(&self.allowed_groups),
            jwks_refetch_after: crate::auth::REFETCH_AFTER,
        }
    }

    /// The groups whose members may post activities, trimmed, blanks dropped.
    pub fn writer_groups(&self) -> Vec<String> {
        trimmed(&self.writer_groups)
    }

    /// The router's cross-cutting settings.
    pub fn http(&self) -> crate::HttpSettings {
        crate::HttpSettings {
            cors_origins: trimmed(&self.cors_origins),
            token_cookie: self.token_cookie.clone(),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
            header_read_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
        }
    }
}

/// `ACTIVITY_TOKEN_COOKIE`: a cookie name (RFC 6265 token), or a clear refusal.
fn cookie_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if crate::http::viewer::is_cookie_name(name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "`{name}` is not a cookie name (letters, digits and !#$%&'*+-.^_`|~ only)"
        ))
    }
}

/// A comma-separated list's entries, trimmed, blanks dropped.
fn trimmed(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use domain::settings::{blank_variables, unbind};

    #[test]
    fn config_is_well_formed() {
        Config::command().debug_assert();
    }

    const TOKEN_KEY: &str = "page-token-key-0123456789";
    const JWT_SECRET: &str = "jwt-secret-that-is-at-least-32-bytes-long";

    fn parsed() -> Config {
        let args = [
            "activity-api",
            "--token-key",
            TOKEN_KEY,
            "--jwt-secret",
            JWT_SECRET,
        ];
        Config::try_parse_from(args).expect("valid arguments")
    }

    #[test]
    fn secrets_are_not_printed_when_the_config_is_logged() {
        let config = parsed();
        for printed in [format!("{config:?}"), format!("{config:#?}")] {
            assert!(!printed.contains(TOKEN_KEY), "{printed}");
            assert!(!printed.contains(JWT_SECRET), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
        assert_eq!(config.token_key.to_string(), "<redacted>");
    }

    #[test]
    fn secrets_reach_the_code_that_uses_them_intact() {
        let config = parsed();
        assert_eq!(config.token_key.expose(), TOKEN_KEY.as_bytes());
        assert_eq!(
            config.auth().hs256_secret.as_deref(),
            Some(JWT_SECRET.as_bytes())
        );
    }

    /// Parses `args` after the program name, in an environment of `env` only as
    /// far as blanks go (clap still reads the process's own variables).
    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, clap::Error> {
        let argv = std::iter::once("activity-api").chain(args.iter().copied());
        parse_blank_as_unset(argv, env.iter().copied())
    }

    #[test]
    fn an_option_whose_variable_is_blank_no_longer_reads_it() {
        let blank = blank_variables([("ACTIVITY_JWT_ISSUER", ""), ("ACTIVITY_TOKEN_KEY", " ")]);
        let cmd = unbind(Config::command(), &blank);
        let env_of = |id: &str| {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id);
            arg.and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env_of("jwt_issuer"), None);
        assert_eq!(env_of("token_key"), None);
        assert_eq!(
            env_of("jwt_audience").as_deref(),
            Some("ACTIVITY_JWT_AUDIENCE")
        );
    }

    #[test]
    fn blank_values_on_the_command_line_count_as_not_given() {
        let config = load(
            &[
                "--token-key",
                TOKEN_KEY,
                "--jwt-secret",
                JWT_SECRET,
                "--jwt-issuer",
                "",
                "--jwt-audience",
                "   ",
                "--jwks=",
                "--allowed-groups",
                "",
                "--cors-origins= ",
                "--table",
                "",
                "--addr",
                " ",
                "--request-timeout-secs",
                "",
                "--header-timeout-secs=",
            ],
            &[],
        )
        .expect("blank values are not values");
        assert_eq!(config.jwt_issuer, None);
        assert_eq!(config.jwt_audience, None);
        assert_eq!(config.jwks, None);
        assert!(config.allowed_groups.is_empty());
        assert!(config.cors_origins.is_empty());
        assert_eq!(config.table, domain::table::DEFAULT_TABLE);
        assert_eq!(config.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.request_timeout_secs, 10);
        assert_eq!(config.header_timeout_secs, 10);
    }

    #[test]
    fn values_that_are_not_blank_are_kept_as_given() {
        let config = load(
            &[
                "--token-key",
                TOKEN_KEY,
                "--jwt-issuer",
                "https://idp.example",
                "--allowed-groups",
                "housing-staff, ,finance-staff",
                "--request-timeout-secs=30",
            ],
            &[("ACTIVITY_JWT_ISSUER", "")],
        )
        .expect("valid arguments");
        assert_eq!(config.jwt_issuer.as_deref(), Some("https://idp.example"));
        assert_eq!(
            config.auth().allowed_groups,
            ["housing-staff", "finance-staff"]
        );
        assert_eq!(config.request_timeout_secs, 30);
    }

    #[test]
    fn a_blank_token_key_fails_with_clap_s_required_error() {
        for (args, env) in [
            (&["--token-key", ""][..], &[][..]),
            (&["--token-key= "][..], &[][..]),
            (&[][..], &[("ACTIVITY_TOKEN_KEY", "")][..]),
        ] {
            let err = load(args, env).expect_err("the token key is required");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
            assert!(err.to_string().contains("--token-key"), "{err}");
        }
    }

    #[test]
    fn blank_dev_token_options_take_their_defaults() {
        let config = load(
            &[
                "--token-key",
                TOKEN_KEY,
                "dev-token",
                "--sub",
                "",
                "--hours",
                " ",
                "--groups",
                "",
            ],
            &[],
        )
        .expect("valid arguments");
        let Some(Command::DevToken { sub, groups, hours }) = config.command else {
            panic!("dev-token");
        };
        assert_eq!((sub.as_str(), hours), ("developer", 12));
        assert!(groups.is_empty());
    }

    #[test]
    fn configuration_page_documents_every_environment_variable() {
        let page = include_str!("../../docs/configuration.md");
        let missing: Vec<String> = Config::command()
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().to_string()))
            .filter(|e| !page.contains(&format!("`{e}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks {missing:?}"
        );
    }
}
