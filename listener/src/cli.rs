//! The `activity-listener` command line. Every option can also be set from the
//! environment variable named beside it; `--help` documents each.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Turns domain change events into activity records.
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
    pub command: Command,
}

/// The listener's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
