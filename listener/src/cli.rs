//! The `activity-listener` command line. Every option can also be set from the
//! environment variable named beside it; a blank value counts as not given;
//! `--help` documents each.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use domain::settings::parse_blank_as_unset;

/// Turns domain change events into activity records.
///
/// With no command, runs as an AWS Lambda function when AWS_LAMBDA_RUNTIME_API is set.
#[derive(Debug, Parser)]
#[command(name = "activity-listener", version, about)]
pub struct Cli {
    /// DynamoDB table the records are written to.
    #[arg(long, env = "ACTIVITY_TABLE", default_value = domain::table::DEFAULT_TABLE, global = true)]
    pub table: String,

    /// TOML or JSON file that extends or overrides the built-in event-type table,
    /// masks fields per target type and sets retention per target type.
    #[arg(long, env = "ACTIVITY_MAPPING_FILE", global = true)]
    pub mapping_file: Option<PathBuf>,

    /// Key (32 bytes or more) the API signs posted activities with; the same as
    /// the API's. Unset, posted activities are refused as malformed.
    #[arg(long, env = "ACTIVITY_INGEST_KEY", hide_env_values = true, global = true, value_parser = ingest_key)]
    pub ingest_key: Option<domain::posted::IngestKey>,

    /// What to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Parses `ACTIVITY_INGEST_KEY`, refusing a short one.
fn ingest_key(k: &str) -> Result<domain::posted::IngestKey, String> {
    domain::posted::IngestKey::new(k.as_bytes()).ok_or_else(|| {
        format!(
            "the ingest key must be at least {} bytes",
            domain::posted::MIN_KEY_BYTES
        )
    })
}

/// The listener's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve invocations from the Lambda Runtime API (AWS_LAMBDA_RUNTIME_API).
    Lambda,
    /// Long-poll the activity queue until SIGTERM or Ctrl-C.
    Poll(crate::worker::WorkerConfig),
    /// Inspect and replay the dead-letter queue.
    Dlq(DlqArgs),
    /// Publish events from an NDJSON file (backfill, or activities created by hand),
    /// checked line by line with the listener's own parser and mapping.
    Publish(PublishArgs),
    /// Create the table, one FIFO topic per domain, the activity queue with its
    /// dead-letter queue and the subscriptions; existing ones are kept.
    Provision {
        /// Prefix for topic and queue names, to keep several stacks apart.
        #[arg(long, env = "ACTIVITY_STACK_PREFIX", default_value = "")]
        prefix: String,
        /// Create standard (non-FIFO) topics and queues instead of FIFO ones.
        #[arg(long)]
        standard: bool,
    },
}

/// Options of `activity-listener dlq`.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    /// The activity queue; its redrive policy names the dead-letter queue, and
    /// `replay` sends messages back to it.
    #[arg(long, env = "ACTIVITY_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// The dead-letter queue, when it cannot be found from the activity queue.
    #[arg(long)]
    pub dlq_url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// Dead-letter commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Count messages by reason class (malformed, unmapped, recordable) and event type.
    Stats,
    /// Show messages without consuming them (each is made visible again at once).
    Peek {
        /// At most this many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Include each message's body, which holds residents' data.
        #[arg(long)]
        show_data: bool,
    },
    /// Move messages back to the activity queue; each is deleted from the DLQ only
    /// after it was sent.
    Replay {
        /// Only messages of this event type.
        #[arg(long)]
        event_type: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Say what would be replayed, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many messages a second.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Write every message to an NDJSON file for offline inspection; nothing is deleted.
    Export {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Options of `activity-listener publish`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["topic", "queue_url"])))]
pub struct PublishArgs {
    /// SNS topic ARN to publish to.
    #[arg(long)]
    pub topic: Option<String>,
    /// SQS queue URL to send to instead.
    #[arg(long)]
    pub queue_url: Option<String>,
    /// NDJSON file of events, one per line; `-` reads standard input.
    pub file: PathBuf,
}

impl Cli {
    /// The process's command line and environment, a blank value counting as not
    /// given ([`parse_blank_as_unset`]); on an error (or `--help`), says why and exits.
    pub fn load() -> Self {
        parse_blank_as_unset(std::env::args_os(), std::env::vars_os()).unwrap_or_else(|e| e.exit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use domain::settings::{blank_variables, unbind};

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Parses `args` after the program name, in an environment of `env` only as
    /// far as blanks go (clap still reads the process's own variables).
    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("activity-listener").chain(args.iter().copied());
        parse_blank_as_unset(argv, env.iter().copied())
    }

    fn poll(args: &[&str]) -> crate::worker::WorkerConfig {
        match load(args, &[]).expect("valid arguments").command {
            Some(Command::Poll(cfg)) => cfg,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_whose_variable_is_blank_no_longer_read_it_in_any_subcommand() {
        let blank = blank_variables([("ACTIVITY_QUEUE_URL", ""), ("ACTIVITY_TABLE", "")]);
        let cmd = unbind(Cli::command(), &blank);
        let mut bound = Vec::new();
        let mut record = |c: &clap::Command| {
            for a in c.get_arguments() {
                if let Some(env) = a.get_env() {
                    bound.push(env.to_string_lossy().into_owned());
                }
            }
        };
        record(&cmd);
        for sub in cmd.get_subcommands() {
            record(sub);
        }
        assert!(
            !bound
                .iter()
                .any(|e| e == "ACTIVITY_QUEUE_URL" || e == "ACTIVITY_TABLE"),
            "{bound:?}"
        );
        assert!(bound.iter().any(|e| e == "ACTIVITY_WAIT_SECS"), "{bound:?}");
    }

    #[test]
    fn blank_poll_options_take_their_defaults() {
        let cfg = poll(&[
            "--table",
            "",
            "--mapping-file= ",
            "poll",
            "--queue-url",
            "https://q",
            "--concurrency",
            "",
            "--wait-secs",
            " ",
            "--visibility-secs=",
            "--retry-delay-secs",
            "",
            "--store-retry-secs",
            "",
        ]);
        let defaults = crate::worker::WorkerConfig::new("https://q");
        assert_eq!(
            (
                cfg.concurrency,
                cfg.wait_secs,
                cfg.visibility_secs,
                cfg.retry_delay_secs,
                cfg.store_retry_secs
            ),
            (
                defaults.concurrency,
                defaults.wait_secs,
                defaults.visibility_secs,
                defaults.retry_delay_secs,
                defaults.store_retry_secs
            ),
        );
        let cli = load(&["--table", "", "--mapping-file", " ", "lambda"], &[]).expect("valid");
        assert_eq!(cli.table, domain::table::DEFAULT_TABLE);
        assert_eq!(cli.mapping_file, None);
    }

    #[test]
    fn a_blank_queue_url_for_poll_fails_with_clap_s_required_error() {
        for (args, env) in [
            (&["poll", "--queue-url", ""][..], &[][..]),
            (&["poll", "--queue-url=  "][..], &[][..]),
            (&["poll"][..], &[("ACTIVITY_QUEUE_URL", "")][..]),
        ] {
            let err = load(args, env).expect_err("the queue is required");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
            assert!(err.to_string().contains("--queue-url"), "{err}");
        }
    }

    #[test]
    fn blank_dead_letter_options_are_unset() {
        let cli = load(
            &[
                "dlq",
                "--queue-url",
                "",
                "--dlq-url",
                " ",
                "replay",
                "--event-type",
                "",
                "--limit",
                "",
                "--rate=",
            ],
            &[],
        )
        .expect("valid arguments");
        let Some(Command::Dlq(dlq)) = cli.command else {
            panic!("dlq")
        };
        assert_eq!((dlq.queue_url, dlq.dlq_url), (None, None));
        let DlqCommand::Replay {
            event_type,
            limit,
            rate,
            ..
        } = dlq.command
        else {
            panic!("replay")
        };
        assert_eq!((event_type, limit, rate), (None, None, None));
        let cli = load(&["dlq", "peek", "--limit", ""], &[]).expect("valid arguments");
        let Some(Command::Dlq(DlqArgs {
            command: DlqCommand::Peek { limit, .. },
            ..
        })) = cli.command
        else {
            panic!("peek")
        };
        assert_eq!(limit, 10);
    }

    #[test]
    fn publish_needs_a_destination_and_a_file_that_are_not_blank() {
        let cli = load(
            &[
                "publish",
                "--topic",
                "",
                "--queue-url",
                "https://q",
                "events.ndjson",
            ],
            &[],
        )
        .expect("valid");
        let Some(Command::Publish(p)) = cli.command else {
            panic!("publish")
        };
        assert_eq!((p.topic, p.queue_url.as_deref()), (None, Some("https://q")));
        for args in [
            &["publish", "--topic", " ", "events.ndjson"][..],
            &["publish", "--topic", "arn:t", ""][..],
        ] {
            let err = load(args, &[]).expect_err("required");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
        }
        let cli = load(&["provision", "--prefix", ""], &[]).expect("valid");
        assert!(
            matches!(cli.command, Some(Command::Provision { prefix, .. }) if prefix.is_empty())
        );
    }

    /// The configuration page lists every variable the listener reads.
    #[test]
    fn configuration_page_documents_every_environment_variable() {
        let page = include_str!("../../docs/configuration.md");
        let mut cmd = Cli::command();
        let mut missing = Vec::new();
        let mut check = |c: &clap::Command| {
            for a in c.get_arguments() {
                if let Some(env) = a.get_env() {
                    let env = env.to_string_lossy().to_string();
                    if !page.contains(&format!("`{env}`")) {
                        missing.push(env);
                    }
                }
            }
        };
        check(&cmd);
        for sub in cmd.get_subcommands_mut() {
            check(sub);
        }
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks {missing:?}"
        );
    }
}
