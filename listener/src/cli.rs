//! The `activity-listener` command line. Every option can also be set from the
//! environment variable named beside it; `--help` documents each.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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

    /// What to run.
    #[command(subcommand)]
    pub command: Option<Command>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
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
