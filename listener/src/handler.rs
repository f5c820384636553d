//! The one per-message step every runner shares (Lambda, the long-poll worker and
//! dead-letter replay): messages in, a status per message out.
//!
//! A batch is transformed message by message, then all of its records go to the
//! table together (one BatchWriteItem for up to 25 records), so a batch of ten
//! events costs about one write request. A bad message fails alone. On a FIFO
//! queue, once a message of a group fails, later messages of that group in the
//! batch are reported failed too, so the group's order is kept on redelivery.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use domain::event::EventLabels;
use domain::{Event, Mapping, Outcome, TransformError};
use tracing::{Instrument, info, info_span, warn};

use crate::metrics::{BatchCounts, Metrics};
use crate::store::{self, Fit};

/// One message, whatever runner fetched it.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The queue's message id: what Lambda's `batchItemFailures` names.
    pub message_id: String,
    /// The SNS message, delivered raw: one event.
    pub body: String,
    /// FIFO message group, when the queue is FIFO.
    pub group_id: Option<String>,
    /// How many times the queue has handed out this message, when known.
    pub receive_count: Option<u32>,
}

/// Why a message failed; also the reason class in logs and dead-letter tooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not a valid event.
    Malformed,
    /// The event type has no mapping.
    Unmapped,
    /// Its records could not be written.
    Store,
    /// FIFO: not processed because an earlier message of its group failed.
    HeldBack,
}

impl Failure {
    /// The reason class as logged.
    pub fn class(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unmapped => "unmapped",
            Self::Store => "store",
            Self::HeldBack => "held_back",
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its records are in the table.
    Recorded {
        /// How many records (two for finance events).
        records: usize,
    },
    /// Mapped to "no activity": acknowledged and counted.
    Ignored,
    /// Left on the queue for redelivery (and, in the end, the dead-letter queue).
    Failed(Failure),
}

impl Status {
    /// Whether the message may be deleted from the queue.
    pub fn is_done(self) -> bool {
        !matches!(self, Self::Failed(_))
    }
}

/// Everything the per-message step needs; built once per process.
#[derive(Debug, Clone)]
pub struct Processor {
    /// The table client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The table name.
    pub table: String,
    /// The event-type table, masks and retention.
    pub mapping: Arc<Mapping>,
    /// Running totals.
    pub metrics: Arc<Metrics>,
}

impl Processor {
    /// Processes a batch; the result has one status per message, in order.
    pub async fn process_batch(&self, messages: &[Message]) -> (Vec<Status>, BatchCounts) {
        let started = Instant::now();
        let mut statuses: Vec<Option<Status>> = vec![None; messages.len()];
        let mut failed_groups: HashSet<&str> = HashSet::new();
        let mut items = Vec::new();
        let mut record_counts = vec![0usize; messages.len()];
        let mut spans = Vec::with_capacity(messages.len());

        for (i, m) in messages.iter().enumerate() {
            // Parse once: the labels of the log span come from the parsed event, and
            // only a body that does not parse is peeked at for what it can tell.
            let parsed = Event::parse(m.body.as_bytes());
            let labels = match &parsed {
                Ok(e) => EventLabels::of(e),
                Err(_) => EventLabels::peek(m.body.as_bytes()),
            };
            let span = info_span!(
                "message",
                message_id = %m.message_id,
                event_id = labels.event_id.as_deref().unwrap_or(""),
                event_type = labels.event_type.as_deref().unwrap_or(""),
                correlation_id = labels.correlation_id.as_deref().unwrap_or(""),
                receive_count = m.receive_count,
            );
            spans.push(span.clone());
            let _enter = span.enter();
            if let Some(g) = m.group_id.as_deref()
                && failed_groups.contains(g)
            {
                statuses[i] = Some(Status::Failed(Failure::HeldBack));
                info!(
                    reason = "held_back",
                    "message held back behind a failed message of its group"
                );
                continue;
            }
            let outcome = parsed
                .map_err(TransformError::from)
                .and_then(|e| domain::records_from(e, &self.mapping));
            let failure = match outcome {
                Ok(Outcome::Ignored) => {
                    statuses[i] = Some(Status::Ignored);
                    info!(outcome = "ignored", "event type records no activity");
                    None
                }
                Ok(Outcome::Record(records)) => {
                    let mut encoded = Vec::with_capacity(records.len());
                    let mut bad = None;
                    for a in &records {
                        match store::fit_item(a) {
                            Ok((item, fit)) => {
                                if fit != Fit::Plain {
                                    warn!(
                                        activity_id = %a.id,
                                        stored = ?fit,
                                        "record over the DynamoDB item limit; stored reduced"
                                    );
                                }
                                encoded.push((i, item));
                            }
                            Err(e) => bad = Some(e),
                        }
                    }
                    match bad {
                        Some(e) => {
                            warn!(reason = "malformed", error = %e, "event data cannot be stored");
                            Some(Failure::Malformed)
                        }
                        None => {
                            record_counts[i] = encoded.len();
                            items.extend(encoded);
                            None
                        }
                    }
                }
                Err(e @ TransformError::Malformed(_)) => {
                    warn!(reason = "malformed", error = %e, "message is not a valid event");
                    Some(Failure::Malformed)
                }
                Err(e @ TransformError::Unmapped(_)) => {
                    warn!(reason = "unmapped", error = %e, "event type has no mapping");
                    Some(Failure::Unmapped)
                }
            };
            if let Some(f) = failure {
                statuses[i] = Some(Status::Failed(f));
                if let Some(g) = m.group_id.as_deref() {
                    failed_groups.insert(g);
                }
            }
        }

        let (store_failed, stats) = store::write_items(&self.dynamodb, &self.table, items)
            .instrument(info_span!("write", table = %self.table))
            .await;
        let store_failed: HashSet<usize> = store_failed.into_iter().collect();
        // A later message of a group whose earlier message failed to store was
        // written, but is reported failed so the group is redelivered in order;
        // its rewrite is idempotent.
        let mut store_failed_groups: HashSet<&str> = HashSet::new();
        for (i, m) in messages.iter().enumerate() {
            if statuses[i].is_some() {
                continue;
            }
            let held = m
                .group_id
                .as_deref()
                .is_some_and(|g| store_failed_groups.contains(g));
            // Each outcome is logged in its message's span: ids and correlation id.
            let _enter = spans[i].enter();
            statuses[i] = Some(if store_failed.contains(&i) {
                warn!(
                    reason = "store",
                    "records could not be written; left for redelivery"
                );
                if let Some(g) = m.group_id.as_deref() {
                    store_failed_groups.insert(g);
                }
                Status::Failed(Failure::Store)
            } else if held {
                info!(
                    reason = "held_back",
                    "written, but reported failed behind a failed message of its group"
                );
                Status::Failed(Failure::HeldBack)
            } else {
                info!(
                    outcome = "recorded",
                    records = record_counts[i],
                    "event recorded"
                );
                Status::Recorded {
                    records: record_counts[i],
                }
            });
        }

        let statuses: Vec<Status> = statuses
            .into_iter()
            .map(|s| s.unwrap_or(Status::Failed(Failure::Store)))
            .collect();
        let mut c = BatchCounts {
            write_requests: stats.requests,
            ..Default::default()
        };
        for s in &statuses {
            match s {
                Status::Recorded { records } => {
                    c.recorded += 1;
                    c.records += *records as u64;
                }
                Status::Ignored => c.ignored += 1,
                Status::Failed(Failure::Malformed) => c.malformed += 1,
                Status::Failed(Failure::Unmapped) => c.unmapped += 1,
                Status::Failed(Failure::Store) => c.store_failed += 1,
                Status::Failed(Failure::HeldBack) => c.held_back += 1,
            }
        }
        self.metrics.add(&c);
        info!(
            messages = messages.len(),
            recorded = c.recorded,
            ignored = c.ignored,
            malformed = c.malformed,
            unmapped = c.unmapped,
            store_failed = c.store_failed,
            held_back = c.held_back,
            write_requests = c.write_requests,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "batch processed"
        );
        (statuses, c)
    }
}
