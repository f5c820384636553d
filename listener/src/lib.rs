//! The write path of activity-history: SQS messages in, activity records out.
//!
//! - [`handler`]: the per-message step every runner shares, with partial-failure
//!   and FIFO group semantics.
//! - [`store`]: batched, deduplicated, retried writes that fit the item size limit.
//! - [`worker`]: the long-polling runner (`activity-listener poll`).
//! - [`lambda`]: the AWS Lambda runner (`batchItemFailures`).
//! - [`dlq`]: dead-letter stats, peek, replay and export, losing nothing.
//! - [`publish`]: events from NDJSON, checked and published in batches (backfill).
//! - [`metrics`]: counters per outcome, CloudWatch Embedded Metric Format.
//! - [`provision`]: the table, topics, queues and subscriptions, created idempotently.
//! - [`table`]: creates the table with its indexes and TTL.
//! - [`sqs`]: the receive, delete, visibility, send and publish calls, ten at a time.
//! - [`backoff`]: jittered exponential waits for every retry loop.
//! - [`aws`]: SDK clients built once from the standard AWS variables.
//! - [`app`]: the program behind the `activity-listener` binary.
//! - [`cli`]: the `activity-listener` command line and its configuration.

pub mod app;
pub mod aws;
pub mod backoff;
pub mod cli;
pub mod dlq;
pub mod handler;
pub mod lambda;
pub mod metrics;
pub mod provision;
pub mod publish;
pub mod sqs;
pub mod store;
pub mod table;
pub mod worker;
