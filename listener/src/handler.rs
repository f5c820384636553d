//! The one per-message step every runner shares (Lambda, the long-poll worker and
//! dead-letter replay): messages in, a status per message out.
//!
//! A batch goes through three steps. [`plan`] is pure: each message's body
//! becomes the items it asks the table to hold, or a failure, and on a FIFO queue
//! a failure holds back the later messages of its group. Then every item of the
//! batch is written together ([`store::write_items`]: one BatchWriteItem for up to
//! 25 records, so ten events cost about one write request). [`settle`] is pure
//! again: it applies the write's outcome, holding back the group of a message whose
//! records could not be written, so the group's order is kept on redelivery. A bad
//! message fails alone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use domain::event::{EventError, EventLabels};
use domain::item::Item;
use domain::posted::IngestKey;
use domain::{Inbound, Mapping, Outcome, TransformError};
use tracing::{Instrument, Span, debug, info, info_span, warn};

use crate::metrics::{BatchCounts, Metrics};
use crate::store::{self, Fit, WriteOutcome};

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

/// Why a message failed. Its [`Failure::class`] is the reason class of logs,
/// `publish` reports and dead-letter tooling: this is the one place those names
/// are given (the metrics count each class under a camelCase name of its own).
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
    /// Its record exists, written by a different event that carried the same id:
    /// records are append-only, so it is kept for the dead-letter queue instead.
    Conflict,
}

/// The dead-letter tooling's class for a message that would be recorded now (it
/// failed to store, or its mapping was added since).
pub const RECORDABLE: &str = "recordable";

impl Failure {
    /// The reason class as logged.
    pub fn class(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unmapped => "unmapped",
            Self::Store => "store",
            Self::HeldBack => "held_back",
            Self::Conflict => "conflict",
        }
    }

    /// What the log says of a message that failed this way.
    fn headline(self) -> &'static str {
        match self {
            Self::Malformed => "message is not a valid event",
            Self::Unmapped => "event type has no mapping",
            Self::Store => "records could not be written; left for redelivery",
            Self::HeldBack => "held back behind a failed message of its group",
            Self::Conflict => {
                "a record with this event's id was written by a different event; left unchanged"
            }
        }
    }

    /// What the log says of a message the write failed this way.
    fn write_headline(self) -> &'static str {
        match self {
            Self::Malformed => "DynamoDB refused the record as invalid",
            other => other.headline(),
        }
    }

    /// The failure a transform error stands for.
    pub fn of(e: &TransformError) -> Self {
        match e {
            TransformError::Malformed(_) => Self::Malformed,
            TransformError::Unmapped(_) => Self::Unmapped,
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
    /// Checks the signature of activities posted to the API; `None`: posted
    /// activities are refused (as malformed).
    pub ingest_key: Option<IngestKey>,
    /// Running totals.
    pub metrics: Arc<Metrics>,
}

impl Processor {
    /// Processes a batch; the result has one status per message, in order.
    pub async fn process_batch(&self, messages: &[Message]) -> (Vec<Status>, BatchCounts) {
        let started = Instant::now();
        let mut plan = plan(messages, &self.mapping, self.ingest_key.as_ref());
        let items = std::mem::take(&mut plan.items);
        // Boxed: the SDK's futures nest deep, and every runner awaits this one.
        let written = Box::pin(store::write_items(&self.dynamodb, &self.table, items))
            .instrument(info_span!("write", table = %self.table))
            .await;
        let ids = std::mem::take(&mut plan.ids);
        let statuses = settle(plan, messages, &written);
        let counts = BatchCounts::of(&statuses, &written.stats);
        self.metrics.add(&counts);
        log_batch(&counts, &ids, started);
        (statuses, counts)
    }
}

/// What [`prepare`] made of a message that did not fail.
#[derive(Debug)]
pub enum Prepared {
    /// Mapped to "no activity": nothing to write.
    Ignored,
    /// Its records, encoded and fitted under the item size limit.
    Items(Vec<Item>),
}

/// Why [`prepare`] refused a message, with the detail for the log.
#[derive(Debug)]
pub struct Rejected {
    /// The reason class.
    pub failure: Failure,
    /// What is wrong, never the event's data.
    pub error: String,
}

/// One parsed body becomes the items it asks the table to hold, or a failure.
/// No I/O: a record too large for the table is reduced here and logged.
pub fn prepare(
    parsed: Result<Inbound, EventError>,
    mapping: &Mapping,
) -> Result<Prepared, Rejected> {
    let records = match parsed
        .map_err(TransformError::from)
        .and_then(|m| domain::records_of(m, mapping))
    {
        Ok(Outcome::Ignored) => return Ok(Prepared::Ignored),
        Ok(Outcome::Record(records)) => records,
        Err(e) => {
            return Err(Rejected {
                failure: Failure::of(&e),
                error: e.to_string(),
            });
        }
    };
    let fit = |a: &domain::Activity| {
        let (item, fit) = store::fit_item(a).map_err(|e| Rejected {
            failure: Failure::Malformed,
            error: format!("event data cannot be stored: {e}"),
        })?;
        if fit != Fit::Plain {
            warn!(activity_id = %a.id, stored = ?fit, "record over the item limit or holding values DynamoDB refuses in maps; stored reduced");
        }
        Ok(item)
    };
    records
        .iter()
        .map(fit)
        .collect::<Result<_, _>>()
        .map(Prepared::Items)
}

/// A batch after [`plan`]: the statuses already decided, and the items waiting
/// on the write.
#[derive(Debug, Default)]
pub struct Plan {
    /// Per message: its status when already decided (failed or ignored), `None`
    /// while its records wait on the write.
    pub decided: Vec<Option<Status>>,
    /// Per message: how many records it has waiting.
    pub records: Vec<usize>,
    /// The items to write, each tagged with the index of its message.
    pub items: Vec<(usize, Item)>,
    /// Per message: the log span with its ids and correlation id, so the outcome
    /// logged by [`settle`] carries them too.
    pub spans: Vec<Span>,
    /// Per message: its event id and correlation id (empty when it has none),
    /// for the batch's line.
    pub ids: Vec<(String, String)>,
}

/// The first step of a batch, pure: every message prepared in order; on a FIFO
/// queue, a failed message holds back the later messages of its group unprocessed.
pub fn plan(messages: &[Message], mapping: &Mapping, key: Option<&IngestKey>) -> Plan {
    let mut plan = Plan {
        decided: vec![None; messages.len()],
        records: vec![0; messages.len()],
        ..Plan::default()
    };
    let mut failed_groups: HashSet<&str> = HashSet::new();
    for (i, m) in messages.iter().enumerate() {
        // Parse once: the span's labels come from the parsed event, and only a
        // body that does not parse is peeked at for what it can tell.
        let parsed = Inbound::parse(m.body.as_bytes(), key);
        let (span, ids) = message_span(m, &parsed);
        plan.ids.push(ids);
        let _enter = span.enter();
        let group = m.group_id.as_deref();
        plan.decided[i] = if group.is_some_and(|g| failed_groups.contains(g)) {
            info!(
                reason = Failure::HeldBack.class(),
                "message held back behind a failed message of its group"
            );
            Some(Status::Failed(Failure::HeldBack))
        } else {
            match prepare(parsed, mapping) {
                Ok(Prepared::Ignored) => {
                    debug!(outcome = "ignored", "event type records no activity");
                    Some(Status::Ignored)
                }
                Ok(Prepared::Items(items)) => {
                    plan.records[i] = items.len();
                    plan.items.extend(items.into_iter().map(|item| (i, item)));
                    None
                }
                Err(r) => {
                    warn!(reason = r.failure.class(), error = %r.error, "{}", r.failure.headline());
                    failed_groups.extend(group);
                    Some(Status::Failed(r.failure))
                }
            }
        };
        drop(_enter);
        plan.spans.push(span);
    }
    plan
}

/// The message's span, and its event id and correlation id for the batch's line.
fn message_span(m: &Message, parsed: &Result<Inbound, EventError>) -> (Span, (String, String)) {
    let labels = match parsed {
        Ok(inbound) => inbound.labels(),
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
    let ids = (labels.event_id, labels.correlation_id);
    (span, (ids.0.unwrap_or_default(), ids.1.unwrap_or_default()))
}

/// The last step of a batch, pure: the write's outcome applied. A message whose
/// records could not be written, were refused as invalid or conflict with a record
/// of another event fails; a later message of its group was written, but is
/// reported failed so the group is redelivered in order (its rewrite is
/// idempotent).
pub fn settle(plan: Plan, messages: &[Message], written: &WriteOutcome) -> Vec<Status> {
    let failure = |i: &usize| {
        let named = |v: &Vec<usize>| v.contains(i);
        if named(&written.conflicts) {
            Some(Failure::Conflict)
        } else if named(&written.rejected) {
            Some(Failure::Malformed)
        } else if named(&written.failed) {
            Some(Failure::Store)
        } else {
            None
        }
    };
    let mut failed_groups: HashSet<&str> = HashSet::new();
    let waiting = plan.decided.into_iter().zip(plan.records).zip(plan.spans);
    waiting
        .zip(messages)
        .enumerate()
        .map(|(i, (((decided, records), span), m))| {
            if let Some(status) = decided {
                return status;
            }
            let _enter = span.enter();
            let group = m.group_id.as_deref();
            if let Some(f) = failure(&i) {
                warn!(reason = f.class(), "{}", f.write_headline());
                failed_groups.extend(group);
                Status::Failed(f)
            } else if group.is_some_and(|g| failed_groups.contains(g)) {
                info!(
                    reason = Failure::HeldBack.class(),
                    "written, but reported failed behind a failed message of its group"
                );
                Status::Failed(Failure::HeldBack)
            } else {
                debug!(outcome = "recorded", records, "event recorded");
                Status::Recorded { records }
            }
        })
        .collect()
}

/// The one line every batch logs at `info`: its counts, and the event ids and
/// correlation ids of all its messages (in order, comma-separated), so each
/// event stays findable although a success has no line of its own.
fn log_batch(c: &BatchCounts, ids: &[(String, String)], started: Instant) {
    let joined = |f: fn(&(String, String)) -> &str| ids.iter().map(f).collect::<Vec<_>>().join(",");
    info!(
        messages = ids.len(),
        event_ids = %joined(|i| &i.0),
        correlation_ids = %joined(|i| &i.1),
        recorded = c.recorded,
        ignored = c.ignored,
        malformed = c.malformed,
        unmapped = c.unmapped,
        store_failed = c.store_failed,
        held_back = c.held_back,
        conflicts = c.conflicts,
        write_requests = c.write_requests,
        read_requests = c.read_requests,
        write_units = c.write_units,
        read_units = c.read_units,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "batch processed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::sample;
    use serde_json::json;
    use uuid::Uuid;

    fn message(body: impl Into<String>, group: Option<&str>) -> Message {
        Message {
            message_id: Uuid::new_v4().to_string(),
            body: body.into(),
            group_id: group.map(str::to_owned),
            receive_count: Some(1),
        }
    }

    fn good(group: Option<&str>) -> Message {
        message(sample::person_updated(Uuid::new_v4()), group)
    }

    fn of_type(event_type: &str, group: Option<&str>) -> Message {
        let e = sample::event(event_type, Uuid::new_v4(), json!({}), json!({"a": 1}));
        message(e.to_string(), group)
    }

    fn planned(messages: &[Message]) -> Vec<Option<Status>> {
        plan(messages, &Mapping::default(), None).decided
    }

    const MALFORMED: Option<Status> = Some(Status::Failed(Failure::Malformed));
    const UNMAPPED: Option<Status> = Some(Status::Failed(Failure::Unmapped));
    const HELD_BACK: Option<Status> = Some(Status::Failed(Failure::HeldBack));

    #[test]
    fn a_body_that_is_not_an_event_is_malformed() {
        let no_entity = sample::event("PersonUpdatedEvent", Uuid::nil(), json!({}), json!({}));
        let mut no_entity = no_entity;
        no_entity.as_object_mut().unwrap().remove("entityId");
        let bodies = [
            "not json".to_owned(),
            "[]".to_owned(),
            no_entity.to_string(),
            sample::person_updated(Uuid::new_v4()).replace("2024-03-01", "2024-13-01"),
        ];
        let messages: Vec<_> = bodies.iter().map(|b| message(b.clone(), None)).collect();
        assert_eq!(planned(&messages), [MALFORMED; 4]);
    }

    #[test]
    fn an_event_type_with_no_mapping_is_unmapped_and_an_ignored_one_is_done() {
        let messages = [
            of_type("WidgetFrobbedEvent", None),
            of_type("ContactDetailEditedEvent", None),
        ];
        assert_eq!(planned(&messages), [UNMAPPED, Some(Status::Ignored)]);
    }

    #[test]
    fn a_good_event_waits_on_the_write_with_its_records() {
        let finance = message(
            sample::transaction_created(Uuid::new_v4(), Uuid::new_v4()),
            None,
        );
        let p = plan(&[good(None), finance], &Mapping::default(), None);
        assert_eq!(p.decided, [None, None]);
        assert_eq!(p.records, [1, 2]);
        let owners: Vec<usize> = p.items.iter().map(|(i, _)| *i).collect();
        assert_eq!(owners, [0, 1, 1]);
    }

    fn key() -> IngestKey {
        IngestKey::new([9u8; 32]).unwrap()
    }

    /// A posted activity's message, signed with `key`.
    fn posted(target_type: &str, key: &IngestKey) -> String {
        let activity = json!({
            "id": Uuid::new_v4(), "type": "create", "targetType": target_type,
            "targetId": Uuid::new_v4(), "createdAt": "2021-02-19T15:12:00Z", "newData": {"a": 1},
            "authorDetails": {"fullName": "Ann Officer", "email": ""}
        });
        let p = domain::PostedActivity::from_value(activity, None, domain::Timestamp::now());
        let p = p.unwrap();
        p.to_message(&p.digest(), &domain::posted::Posting::default(), key)
    }

    #[test]
    fn a_posted_activity_is_recorded_with_its_id_if_signed_and_of_a_known_target_type() {
        let body = posted("tenure", &key());
        let messages = [
            message(body.clone(), None),
            message(posted("tenancy", &key()), None),
            message(posted("tenure", &IngestKey::new([1u8; 32]).unwrap()), None),
        ];
        let p = plan(&messages, &Mapping::default(), Some(&key()));
        assert_eq!(p.decided, [None, MALFORMED, MALFORMED]);
        assert_eq!(
            plan(&messages[..1], &Mapping::default(), None).decided,
            [MALFORMED],
            "without a key"
        );
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].clone();
        let stored = p.items[0].1.get("id").and_then(|v| v.as_s().ok()).cloned();
        assert_eq!(stored.as_deref(), id.as_str());
    }

    #[test]
    fn a_failure_holds_back_the_later_messages_of_its_group_only() {
        let messages = [
            good(Some("a")),
            message("not json", Some("a")),
            good(Some("a")),
            of_type("WidgetFrobbedEvent", Some("a")),
            good(Some("b")),
        ];
        assert_eq!(
            planned(&messages),
            [None, MALFORMED, HELD_BACK, HELD_BACK, None]
        );
    }

    #[test]
    fn without_groups_a_failure_holds_back_nothing() {
        let messages = [message("not json", None), good(None), good(None)];
        assert_eq!(planned(&messages), [MALFORMED, None, None]);
    }

    #[test]
    fn a_failed_write_fails_its_message_and_holds_back_the_rest_of_its_group() {
        let messages = [
            good(Some("a")),
            good(Some("a")),
            good(Some("a")),
            good(Some("b")),
            of_type("ContactDetailEditedEvent", Some("a")),
        ];
        let p = plan(&messages, &Mapping::default(), None);
        let statuses = settle(p, &messages, &failed(&[1]));
        let recorded = Status::Recorded { records: 1 };
        assert_eq!(
            statuses,
            [
                recorded,
                Status::Failed(Failure::Store),
                Status::Failed(Failure::HeldBack),
                recorded,
                // Nothing to write, so nothing to keep in order: done.
                Status::Ignored,
            ]
        );
    }

    #[test]
    fn a_successful_write_records_every_waiting_message() {
        let messages = [good(None), message("not json", None), good(None)];
        let p = plan(&messages, &Mapping::default(), None);
        let statuses = settle(p, &messages, &failed(&[]));
        let counts = BatchCounts::of(&statuses, &store::WriteStats::default());
        assert_eq!(
            (counts.recorded, counts.records, counts.malformed),
            (2, 2, 1)
        );
        assert!(statuses[0].is_done() && !statuses[1].is_done() && statuses[2].is_done());
    }

    fn failed(store: &[usize]) -> WriteOutcome {
        WriteOutcome {
            failed: store.to_vec(),
            ..WriteOutcome::default()
        }
    }

    #[test]
    fn a_conflict_or_a_refused_record_fails_its_message_and_holds_back_its_group() {
        let messages = [
            good(Some("a")),
            good(Some("a")),
            good(Some("b")),
            good(Some("b")),
            good(None),
        ];
        let p = plan(&messages, &Mapping::default(), None);
        let written = WriteOutcome {
            conflicts: vec![0],
            rejected: vec![2],
            ..WriteOutcome::default()
        };
        assert_eq!(
            settle(p, &messages, &written),
            [
                Status::Failed(Failure::Conflict),
                Status::Failed(Failure::HeldBack),
                Status::Failed(Failure::Malformed),
                Status::Failed(Failure::HeldBack),
                Status::Recorded { records: 1 },
            ]
        );
    }

    #[test]
    fn reason_classes_are_the_names_operators_see() {
        let classes: Vec<_> = [
            Failure::Malformed,
            Failure::Unmapped,
            Failure::Store,
            Failure::HeldBack,
            Failure::Conflict,
        ]
        .map(Failure::class)
        .into();
        assert_eq!(
            classes,
            ["malformed", "unmapped", "store", "held_back", "conflict"]
        );
    }
}
