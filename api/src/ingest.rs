//! Posting activities: the API never writes the table. A posted activity is
//! validated here with the listener's own rules ([`domain::posted`]) and sent to
//! the activity queue the listener reads, which records it like any event.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use domain::PostedActivity;
use domain::posted::IngestKey;

/// Most activities one post may carry.
pub const MAX_ITEMS: usize = 25;

/// Most bytes a post's body may have.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Messages one SQS `SendMessageBatch` takes.
const SQS_BATCH: usize = 10;

/// Most bytes one activity's queue message may have: what an SNS event may have
/// (256 KiB), so a posted activity is never larger than an event, a batch of ten
/// stays well inside Lambda's 6 MB event, and a queue at SQS's old default takes it.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Where posted activities go, and who may post them.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// The SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The activity queue (FIFO) the listener reads.
    pub queue_url: String,
    /// Groups whose members may post; empty: nobody.
    pub writer_groups: Vec<String>,
    /// Signs each message, so the listener knows it came from this API.
    pub key: IngestKey,
}

/// A send that stopped part way.
#[derive(Debug)]
pub struct SendFailed {
    /// The indexes of the items that were queued (and will be recorded).
    pub accepted: Vec<usize>,
    /// What went wrong, for the log.
    pub error: String,
}

impl Ingest {
    /// Whether a caller in `groups` may post.
    pub fn is_writer(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.writer_groups.contains(g))
    }

    /// Queues `items` with their `messages` and digests, in order, in batches SQS takes: FIFO
    /// group = target id, so each target's activities are recorded in order;
    /// deduplication id = the activity's digest, so the queue itself drops an
    /// exact repeat within five minutes, and nothing else. Stops after the first
    /// request that fails or has a refused entry.
    pub async fn send(
        &self,
        items: &[PostedActivity],
        messages: &[String],
        digests: &[String],
    ) -> Result<(), SendFailed> {
        let mut accepted = Vec::with_capacity(items.len());
        for (first, end) in batches(messages) {
            let chunk = &items[first..end];
            let refused = self
                .send_batch(chunk, &messages[first..end], &digests[first..end], first)
                .await
                .map_err(|error| SendFailed {
                    accepted: accepted.clone(),
                    error,
                })?;
            let sent = (first..first + chunk.len()).filter(|i| !refused.contains(i));
            accepted.extend(sent);
            if !refused.is_empty() {
                let error = format!("the queue refused items {refused:?}");
                return Err(SendFailed { accepted, error });
            }
        }
        Ok(())
    }

    /// Sends one batch whose first item is item `first`; the indexes of the
    /// entries the queue refused, or why the whole request failed.
    async fn send_batch(
        &self,
        chunk: &[PostedActivity],
        messages: &[String],
        digests: &[String],
        first: usize,
    ) -> Result<Vec<usize>, String> {
        let entries = (chunk.iter().zip(messages).zip(digests))
            .enumerate()
            .map(|(i, ((p, body), digest))| {
                SendMessageBatchRequestEntry::builder()
                    .id((first + i).to_string())
                    .message_body(body)
                    .message_group_id(p.target_id.to_string())
                    .message_deduplication_id(digest)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let out = self
            .sqs
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        // An entry id the queue did not send back as given: count the whole
        // batch refused rather than guess.
        let named: Option<Vec<usize>> = out.failed().iter().map(|f| f.id().parse().ok()).collect();
        let mut refused = named.unwrap_or_else(|| (first..first + chunk.len()).collect());
        refused.sort_unstable();
        Ok(refused)
    }
}

/// The messages cut into batches SQS takes, in order: at most ten, and at most
/// [`MAX_MESSAGE_BYTES`] together. Each range is `(first, end)`.
fn batches(messages: &[String]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut first, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let full = i - first == SQS_BATCH || bytes + m.len() > MAX_MESSAGE_BYTES;
        if i > first && full {
            out.push((first, i));
            (first, bytes) = (i, 0);
        }
        bytes += m.len();
    }
    if first < messages.len() {
        out.push((first, messages.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_ten_messages_and_256_kib_in_order() {
        let small = vec!["x".repeat(100); 25];
        assert_eq!(batches(&small), [(0, 10), (10, 20), (20, 25)]);
        let big = vec!["x".repeat(100 * 1024); 5];
        assert_eq!(batches(&big), [(0, 2), (2, 4), (4, 5)]);
        assert_eq!(batches(&[]), []);
    }
}
