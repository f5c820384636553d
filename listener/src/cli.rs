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
    Poll(PollArgs),
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

/// Options of `activity-listener poll`.
#[derive(Debug, clap::Args)]
pub struct PollArgs {
    /// URL of the activity queue.
    #[arg(long, env = "ACTIVITY_QUEUE_URL")]
    pub queue_url: String,
    /// Receive loops running at once.
    #[arg(long, env = "ACTIVITY_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Long-poll wait in seconds (0-20).
    #[arg(long, env = "ACTIVITY_WAIT_SECS", default_value_t = 20, value_parser = clap::value_parser!(i32).range(0..=20))]
    pub wait_secs: i32,
    /// Seconds a received batch stays hidden from other consumers; extended while
    /// a batch runs long.
    #[arg(long, env = "ACTIVITY_VISIBILITY_SECS", default_value_t = 60, value_parser = clap::value_parser!(i32).range(2..=43_200))]
    pub visibility_secs: i32,
    /// Seconds before a failed message is offered again.
    #[arg(long, env = "ACTIVITY_RETRY_DELAY_SECS", default_value_t = 10, value_parser = clap::value_parser!(i32).range(0..=43_200))]
    pub retry_delay_secs: i32,
}

impl PollArgs {
    /// The worker configuration these options describe.
    pub fn worker_config(&self) -> crate::worker::WorkerConfig {
        crate::worker::WorkerConfig {
            queue_url: self.queue_url.clone(),
            concurrency: usize::from(self.concurrency),
            wait_secs: self.wait_secs,
            batch_size: 10,
            visibility_secs: self.visibility_secs,
            retry_delay_secs: self.retry_delay_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// The README's configuration table lists every variable the listener reads.
    #[test]
    fn readme_documents_every_environment_variable() {
        let readme = include_str!("../../README.md");
        let mut cmd = Cli::command();
        let mut missing = Vec::new();
        let mut check = |c: &clap::Command| {
            for a in c.get_arguments() {
                if let Some(env) = a.get_env() {
                    let env = env.to_string_lossy().to_string();
                    if !readme.contains(&format!("`{env}`")) {
                        missing.push(env);
                    }
                }
            }
        };
        check(&cmd);
        for sub in cmd.get_subcommands_mut() {
            check(sub);
        }
        assert!(missing.is_empty(), "README.md lacks {missing:?}");
    }
}
