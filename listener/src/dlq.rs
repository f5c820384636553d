//! Dead-letter tooling: see what failed, fix it, replay it, without losing a
//! message. Every command but `replay` leaves the dead-letter queue as it found it:
//! messages are received (hidden), read, and made visible again at once.
//!
//! On a FIFO dead-letter queue SQS hands out only the first message of each group
//! until that one is deleted, so `stats`, `peek` and `export` see the head of each
//! group, and `replay` works through a group in order.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::types::{MessageSystemAttributeName as A, QueueAttributeName};
use domain::event::EventLabels;
use domain::item::Item;
use domain::{Mapping, Outcome};
use serde::Serialize;

use crate::aws::err;
use crate::handler::{Failure, RECORDABLE};
use crate::sqs::Outgoing;

/// How long a message read by `stats`, `peek` or `export` stays hidden while the
/// rest of the queue is read; it is released at once after.
const SCAN_HOLD_SECS: i32 = 120;
/// How long `replay` hides a message between receiving and sending it. Short, so a
/// replay killed in between leaves its messages hidden only briefly.
const REPLAY_HOLD_SECS: i32 = 20;
/// SQS FIFO deduplication window.
const DEDUP_WINDOW_MS: u128 = 5 * 60 * 1000;

/// One dead-lettered message, as read.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// SQS message id.
    pub message_id: String,
    /// Handle to release or delete it.
    pub receipt_handle: String,
    /// The event as published.
    pub body: String,
    /// FIFO message group.
    pub group_id: Option<String>,
    /// FIFO deduplication id.
    pub dedup_id: Option<String>,
    /// Times received (on the source queue, then here).
    pub receive_count: Option<u32>,
    /// When it was first sent (epoch ms).
    pub sent_ms: Option<u128>,
    /// When it was first received (epoch ms).
    pub first_received_ms: Option<u128>,
}

/// What a dead letter is judged against: the current mapping and the table.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// The mapping the listener runs with now.
    pub mapping: &'a Mapping,
    /// The table client, to see whether a record with the message's ids exists.
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    /// The activity table.
    pub table: &'a str,
}

/// Why a message is in the dead-letter queue, judged against the current mapping
/// alone: `malformed`, `unmapped`, or [`RECORDABLE`].
pub fn reason_class(body: &str, mapping: &Mapping) -> &'static str {
    match domain::transform(body.as_bytes(), mapping) {
        Err(e) => Failure::of(&e).class(),
        // It would be recorded now: it failed to store, or its mapping was added since.
        Ok(_) => RECORDABLE,
    }
}

impl Judge<'_> {
    /// Why a message is in the dead-letter queue: [`reason_class`], or `conflict`
    /// when a record with its ids exists, written by a different event. Telling
    /// the two apart reads the table (`dynamodb:BatchGetItem`); when it cannot be
    /// read the answer is an error, not a guess.
    pub async fn reason_class(&self, body: &str) -> Result<&'static str> {
        let Ok(Outcome::Record(records)) = domain::transform(body.as_bytes(), self.mapping) else {
            return Ok(reason_class(body, self.mapping));
        };
        let items: Vec<Item> = records
            .iter()
            .filter_map(|a| crate::store::fit_item(a).ok().map(|(item, _)| item))
            .collect();
        let keys: Vec<_> = items.iter().map(crate::store::key_of).collect();
        let mut cost = crate::store::WriteStats::default();
        let existing =
            crate::store::existing_digests(self.dynamodb, self.table, &keys, &mut cost).await;
        let existing = existing.map_err(|()| {
            anyhow::anyhow!(
                "could not read table {} to tell conflicts from recordable messages (set ACTIVITY_TABLE; the caller needs dynamodb:BatchGetItem)",
                self.table
            )
        });
        let conflict = existing.map(|found| {
            let differs = |i: &Item| crate::store::rewrites_another_event(&found, i);
            items.iter().any(differs)
        });
        Ok(if conflict? {
            Failure::Conflict.class()
        } else {
            RECORDABLE
        })
    }
}

/// Finds the dead-letter queue of `queue_url` from its redrive policy.
pub async fn dlq_of(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<String> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(err)
        .with_context(|| format!("reading the redrive policy of {queue_url}"))?;
    let policy = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .with_context(|| {
            format!("{queue_url} has no redrive policy; name the DLQ with --dlq-url")
        })?;
    let v: serde_json::Value =
        serde_json::from_str(policy).context("redrive policy is not JSON")?;
    let arn = v["deadLetterTargetArn"]
        .as_str()
        .context("redrive policy has no deadLetterTargetArn")?;
    // arn:aws:sqs:REGION:ACCOUNT:NAME
    let parts: Vec<&str> = arn.split(':').collect();
    let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
        bail!("dead-letter ARN {arn} is not an SQS queue ARN");
    };
    let out = sqs
        .get_queue_url()
        .queue_name(*name)
        .queue_owner_aws_account_id(*account)
        .send()
        .await
        .map_err(err)
        .with_context(|| format!("looking up the queue URL of {arn}"))?;
    out.queue_url()
        .map(str::to_owned)
        .context("no URL for the dead-letter queue")
}

fn ms(v: Option<&String>) -> Option<u128> {
    v.and_then(|s| s.parse().ok())
}

async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: usize,
    hold_secs: i32,
) -> Result<Vec<DeadLetter>> {
    let how = crate::sqs::Receive {
        max: max.min(crate::sqs::MAX_BATCH) as i32,
        wait_secs: 1,
        visibility_secs: hold_secs,
        attributes: &[A::All],
    };
    let received = crate::sqs::receive(sqs, url, how).await?;
    Ok(received
        .into_iter()
        .map(|m| {
            let attr = |n: A| crate::sqs::attribute(&m, n);
            DeadLetter {
                group_id: attr(A::MessageGroupId).cloned(),
                dedup_id: attr(A::MessageDeduplicationId).cloned(),
                receive_count: attr(A::ApproximateReceiveCount).and_then(|c| c.parse().ok()),
                sent_ms: ms(attr(A::SentTimestamp)),
                first_received_ms: ms(attr(A::ApproximateFirstReceiveTimestamp)),
                message_id: m.message_id.clone().unwrap_or_default(),
                receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
                body: m.body.clone().unwrap_or_default(),
            }
        })
        .collect())
}

/// Reads up to `limit` messages (all when `None`), keeping them hidden; call
/// [`release`] to make them visible again.
pub async fn scan(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    limit: Option<usize>,
) -> Result<Vec<DeadLetter>> {
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    let mut empty_receives = 0;
    loop {
        let want = limit.map_or(10, |l| l.saturating_sub(all.len()).min(10));
        if want == 0 {
            break;
        }
        let batch = receive(sqs, url, want, SCAN_HOLD_SECS).await?;
        if batch.is_empty() {
            // An empty receive can be a sampling miss on a large queue; two in a row is the end.
            empty_receives += 1;
            if empty_receives >= 2 {
                break;
            }
            continue;
        }
        empty_receives = 0;
        for m in batch {
            if seen.insert(m.message_id.clone()) {
                all.push(m);
            }
        }
    }
    Ok(all)
}

/// Makes messages visible again at once. A message SQS refuses to release (its
/// hiding time already ran out, so it is visible anyway, or it was handed out
/// again) is only logged; a request that fails whole is an error.
pub async fn release(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[DeadLetter]) -> Result<()> {
    let handles: Vec<&str> = messages.iter().map(|m| m.receipt_handle.as_str()).collect();
    let outcome = crate::sqs::set_visibility(sqs, url, &handles, 0).await;
    if let Some(why) = outcome.request_error {
        bail!(
            "messages could not be released at once ({why}); they reappear when their hiding time ends"
        );
    }
    if let Some((_, code)) = outcome.failed.first() {
        tracing::warn!(refused = outcome.failed.len(), code = %code, "some messages were not released; they reappear when their hiding time ends");
    }
    Ok(())
}

/// Counts by reason class and event type.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Messages read.
    pub total: usize,
    /// reason class → event type → count (`(none)` when the body names no type).
    pub by_reason: BTreeMap<String, BTreeMap<String, usize>>,
}

/// `dlq stats`.
pub async fn stats(sqs: &aws_sdk_sqs::Client, url: &str, judge: &Judge<'_>) -> Result<Stats> {
    let messages = scan(sqs, url, None).await?;
    release(sqs, url, &messages).await?;
    let mut by_reason: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for m in &messages {
        let event_type = EventLabels::peek(m.body.as_bytes())
            .event_type
            .unwrap_or_else(|| "(none)".into());
        *by_reason
            .entry(judge.reason_class(&m.body).await?.to_owned())
            .or_default()
            .entry(event_type)
            .or_default() += 1;
    }
    Ok(Stats {
        total: messages.len(),
        by_reason,
    })
}

/// One line of `dlq peek`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeekRow {
    /// SQS message id.
    pub message_id: String,
    /// The event's id, if readable.
    pub event_id: Option<String>,
    /// The event's type, if readable.
    pub event_type: Option<String>,
    /// `malformed`, `unmapped`, `conflict` or `recordable`.
    pub reason_class: &'static str,
    /// Times received.
    pub receive_count: Option<u32>,
    /// When first received, epoch milliseconds.
    pub first_seen_ms: Option<u128>,
    /// The body, only with `--show-data` (it holds residents' data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// `dlq peek`.
pub async fn peek(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    judge: &Judge<'_>,
    limit: usize,
    show_data: bool,
) -> Result<Vec<PeekRow>> {
    let messages = scan(sqs, url, Some(limit)).await?;
    release(sqs, url, &messages).await?;
    let mut rows = Vec::with_capacity(messages.len());
    for m in messages {
        let labels = EventLabels::peek(m.body.as_bytes());
        rows.push(PeekRow {
            reason_class: judge.reason_class(&m.body).await?,
            message_id: m.message_id,
            event_id: labels.event_id,
            event_type: labels.event_type,
            receive_count: m.receive_count,
            first_seen_ms: m.first_received_ms.or(m.sent_ms),
            body: show_data.then_some(m.body),
        });
    }
    Ok(rows)
}

/// `dlq export`: every readable message to NDJSON, nothing deleted.
pub async fn export(sqs: &aws_sdk_sqs::Client, url: &str, out: &Path) -> Result<usize> {
    let messages = scan(sqs, url, None).await?;
    let written = (|| -> Result<()> {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
        );
        for m in &messages {
            let line = serde_json::json!({
                "messageId": m.message_id,
                "messageGroupId": m.group_id,
                "messageDeduplicationId": m.dedup_id,
                "receiveCount": m.receive_count,
                "sentTimestamp": m.sent_ms.map(|v| v as u64),
                "body": m.body,
            });
            writeln!(f, "{line}")?;
        }
        f.flush()?;
        Ok(())
    })();
    // Release whatever happened to the file.
    release(sqs, url, &messages).await?;
    written?;
    Ok(messages.len())
}

/// What `replay` should do.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Only messages of this event type.
    pub event_type: Option<String>,
    /// At most this many messages.
    pub limit: Option<usize>,
    /// Report what would be replayed; change nothing.
    pub dry_run: bool,
    /// At most this many messages a second.
    pub rate: Option<f64>,
}

/// What `replay` did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Sent back to the source queue and deleted from the DLQ.
    pub replayed: usize,
    /// Would have been replayed (dry run).
    pub would_replay: usize,
    /// Left in the DLQ because they do not match the filter.
    pub skipped: usize,
    /// Sent, but could not be deleted from the DLQ (they will be replayed again; harmless).
    pub not_deleted: usize,
    /// Could not be sent; still in the DLQ.
    pub send_failed: usize,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// `dlq replay`: moves messages back to the source queue. A message is deleted from
/// the DLQ only after its send succeeded, so a replay killed part way loses nothing
/// (a message sent twice is harmless: records are idempotent).
pub async fn replay(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    source_url: &str,
    options: &ReplayOptions,
) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let mut held: Vec<DeadLetter> = Vec::new();
    let mut seen = HashSet::new();
    let pace = Pace::new(options.rate);
    let mut empty_receives = 0;
    loop {
        let done = report.replayed + report.would_replay + report.not_deleted;
        let want = match options.limit {
            Some(l) if done >= l => break,
            Some(l) => (l - done).min(10),
            None => 10,
        };
        let batch = receive(sqs, dlq_url, want, REPLAY_HOLD_SECS).await?;
        if batch.is_empty() {
            // An empty receive can be a sampling miss on a large queue; two in a row is the end.
            empty_receives += 1;
            if empty_receives >= 2 {
                break;
            }
            continue;
        }
        empty_receives = 0;
        let to_send = sort_out(batch, options, &mut seen, &mut held, &mut report);
        if !to_send.is_empty() {
            pace.wait_for(report.replayed + report.not_deleted + to_send.len())
                .await;
            send_back(sqs, dlq_url, source_url, &to_send, &mut report).await;
        }
    }
    if let Err(e) = release(sqs, dlq_url, &held).await {
        // They become visible by themselves when their hiding time ends.
        tracing::warn!(error = %e, "could not release held messages at once");
    }
    Ok(report)
}

/// Splits a received batch: messages to send back now, and messages to hold
/// (filtered out, or a dry run) until the replay ends.
fn sort_out(
    batch: Vec<DeadLetter>,
    options: &ReplayOptions,
    seen: &mut HashSet<String>,
    held: &mut Vec<DeadLetter>,
    report: &mut ReplayReport,
) -> Vec<DeadLetter> {
    let mut to_send = Vec::new();
    for m in batch {
        if !seen.insert(m.message_id.clone()) {
            // Held past its hiding time and handed out again: keep the new handle.
            if let Some(h) = held.iter_mut().find(|h| h.message_id == m.message_id) {
                h.receipt_handle = m.receipt_handle;
            }
            continue;
        }
        let matches = options
            .event_type
            .as_deref()
            .is_none_or(|t| EventLabels::peek(m.body.as_bytes()).event_type.as_deref() == Some(t));
        if !matches {
            report.skipped += 1;
            held.push(m);
        } else if options.dry_run {
            report.would_replay += 1;
            held.push(m);
        } else {
            to_send.push(m);
        }
    }
    to_send
}

/// Keeps the replay at most `rate` messages a second.
struct Pace {
    /// Messages a second at most; `None` for as fast as SQS takes them.
    rate: Option<f64>,
    /// When the replay began: the pace is kept over the whole run, not per batch.
    started: Instant,
}

impl Pace {
    fn new(rate: Option<f64>) -> Self {
        Self {
            rate: rate.filter(|r| *r > 0.0),
            started: Instant::now(),
        }
    }

    /// Waits until `total` messages may have been sent.
    async fn wait_for(&self, total: usize) {
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(total as f64 / rate);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The message to send back for a dead letter. On FIFO it keeps its group and its
/// original deduplication id, unless that is still inside SQS's five-minute window:
/// then SQS would silently drop the replay as a duplicate and the message, already
/// gone from the DLQ, would be lost.
fn outgoing(m: &DeadLetter, now_ms: u128) -> Outgoing<'_> {
    let original = m.dedup_id.clone().unwrap_or_else(|| m.message_id.clone());
    let recent = m
        .sent_ms
        .is_none_or(|s| now_ms.saturating_sub(s) < DEDUP_WINDOW_MS);
    let dedup_id = if recent {
        let n = m.receive_count.unwrap_or(0);
        format!("{}-replay-{n}", truncate(&original, 100))
    } else {
        original
    };
    Outgoing {
        body: &m.body,
        group_id: m.group_id.clone().unwrap_or_else(|| "replay".into()),
        dedup_id,
    }
}

/// Sends messages to the source queue, then deletes from the DLQ those that went.
async fn send_back(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    source_url: &str,
    to_send: &[DeadLetter],
    report: &mut ReplayReport,
) {
    let now = now_ms();
    let messages: Vec<Outgoing> = to_send.iter().map(|m| outgoing(m, now)).collect();
    let sent = crate::sqs::send(sqs, source_url, &messages).await;
    if let Some((_, why)) = sent.failed.first() {
        tracing::warn!(failed = sent.failed.len(), error = %why, "messages could not be sent to the source queue; they stay in the DLQ");
    }
    report.send_failed += sent.failed.len();
    let handles: Vec<&str> = (sent.succeeded.iter())
        .filter_map(|&i| to_send.get(i).map(|m| m.receipt_handle.as_str()))
        .collect();
    if handles.is_empty() {
        return;
    }
    let deleted = crate::sqs::delete(sqs, dlq_url, &handles).await;
    if let Some((_, why)) = deleted.failed.first() {
        tracing::warn!(failed = deleted.failed.len(), error = %why, "sent messages could not be deleted from the DLQ; they may be replayed twice");
    }
    report.replayed += deleted.succeeded.len();
    report.not_deleted += deleted.failed.len();
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_class_is_judged_against_the_current_mapping() {
        let m = Mapping::default();
        assert_eq!(reason_class("nope", &m), "malformed");
        let ev = domain::sample::event(
            "WidgetEvent",
            uuid::Uuid::new_v4(),
            serde_json::Value::Null,
            serde_json::json!({}),
        )
        .to_string();
        assert_eq!(reason_class(&ev, &m), "unmapped");
        let mut fixed = Mapping::default();
        fixed
            .overlay_str(
                "[events]\nWidgetEvent = { activity = \"create\", targetType = \"widget\" }",
                false,
            )
            .unwrap();
        assert_eq!(reason_class(&ev, &fixed), "recordable");
    }
}
