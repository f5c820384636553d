//! The write path of activity-history: SQS messages in, activity records out.
//!
//! - [`aws`]: SDK clients built once from the standard AWS variables.
//! - [`provision`]: the table, topics, queues and subscriptions, created idempotently.
//! - [`cli`]: the `activity-listener` command line and its configuration.

pub mod aws;
pub mod cli;
pub mod provision;
