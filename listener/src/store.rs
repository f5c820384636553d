//! Writes activity items to the table: batched, deduplicated, retried, and fitted
//! under DynamoDB's 400 KB item limit.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use domain::Activity;
use domain::item::{self, Item, Layout};
use tracing::warn;

use crate::backoff::Backoff;

/// DynamoDB's item size limit is 400 KB; keep a margin for the size estimate.
pub const MAX_ITEM_BYTES: usize = 400 * 1024 - 2 * 1024;
/// BatchWriteItem takes at most 25 requests.
const BATCH: usize = 25;
/// Attempts at items DynamoDB leaves unprocessed (throttling) before the
/// messages behind them are reported failed and left for redelivery. A request
/// that fails outright (after the SDK's own retries of transient errors) fails
/// its messages at once.
const ATTEMPTS: u32 = 6;

/// How an activity had to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// As maps, readable by the old reader.
    Plain,
    /// Too large as maps: data gzip-compressed into one attribute.
    Compressed,
    /// Too large even compressed: only the changed paths are kept, marked `truncated`.
    Truncated,
}

/// Encodes an activity as an item that fits the item size limit, degrading from
/// plain to compressed to the list of changed paths.
pub fn fit_item(a: &Activity) -> Result<(Item, Fit), item::ItemError> {
    let plain = item::to_item(a)?;
    if item::item_size(&plain) <= MAX_ITEM_BYTES {
        return Ok((plain, Fit::Plain));
    }
    let packed = item::to_item_with(a, Layout::Compressed)?;
    if item::item_size(&packed) <= MAX_ITEM_BYTES {
        return Ok((packed, Fit::Compressed));
    }
    let mut t = a.clone();
    t.old_data = None;
    t.new_data = None;
    t.truncated = true;
    let mut changes: Vec<_> = a
        .changes
        .iter()
        .flatten()
        .map(|c| domain::diff::Change {
            path: c.path.clone(),
            old: serde_json::Value::Null,
            new: serde_json::Value::Null,
        })
        .collect();
    loop {
        t.changes = Some(changes.clone());
        let packed = item::to_item_with(&t, Layout::Compressed)?;
        if item::item_size(&packed) <= MAX_ITEM_BYTES || changes.is_empty() {
            return Ok((packed, Fit::Truncated));
        }
        // Millions of changed paths: keep as many as fit.
        changes.truncate(changes.len() / 2);
    }
}

/// An item's key: what deduplicates within one request and maps failures back.
type Key = (String, String);

fn key_of(item: &Item) -> Key {
    let s = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    (s("targetId"), s("id"))
}

/// Waits between attempts at unprocessed items.
const RETRY: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(2),
};

/// Writes `items`, each tagged with the index of the message it came from.
/// Returns the indices whose items could not all be written.
pub async fn write_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<(usize, Item)>,
) -> (Vec<usize>, WriteStats) {
    let mut stats = WriteStats::default();
    let (owners, unique) = dedupe(items);
    let mut not_written = Vec::new();
    // Items move into the requests: nothing is copied on the way to the SDK.
    let mut unique = unique.into_iter().peekable();
    while unique.peek().is_some() {
        let requests = unique.by_ref().take(BATCH).map(put_request).collect();
        not_written.extend(write_batch(client, table, requests, &mut stats).await);
    }
    let mut failed: Vec<usize> = not_written
        .iter()
        .filter_map(|k| owners.get(k))
        .flatten()
        .copied()
        .collect();
    failed.sort_unstable();
    failed.dedup();
    (failed, stats)
}

/// One request may not name the same key twice; a redelivered duplicate in the
/// same batch writes the same content, so one copy serves every message that
/// owns it.
fn dedupe(items: Vec<(usize, Item)>) -> (HashMap<Key, Vec<usize>>, Vec<Item>) {
    let mut owners: HashMap<Key, Vec<usize>> = HashMap::new();
    let mut unique = Vec::new();
    for (owner, item) in items {
        let e = owners.entry(key_of(&item)).or_default();
        if e.is_empty() {
            unique.push(item);
        }
        e.push(owner);
    }
    (owners, unique)
}

fn put_request(item: Item) -> WriteRequest {
    let put = PutRequest::builder().set_item(Some(item)).build();
    // set_item(Some) satisfies the only required field.
    let put = put.unwrap_or_else(|_| unreachable!());
    WriteRequest::builder().put_request(put).build()
}

fn keys(requests: &[WriteRequest]) -> Vec<Key> {
    let puts = requests.iter().filter_map(|r| r.put_request());
    puts.map(|p| key_of(p.item())).collect()
}

/// Writes up to 25 items, retrying those DynamoDB leaves unprocessed (throttling)
/// with backoff; returns the keys that were not written.
async fn write_batch(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
    stats: &mut WriteStats,
) -> Vec<Key> {
    for attempt in 1..=ATTEMPTS {
        stats.requests += 1;
        let sent = keys(&pending);
        let result = client
            .batch_write_item()
            .request_items(table, pending)
            .send()
            .await;
        pending = match result {
            Ok(out) => out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default(),
            // The SDK has already retried transient errors; the request is gone
            // with its items, whose messages come back after the store retry delay.
            Err(e) => {
                warn!(table, attempt, error = %crate::aws::err(e), "batch write failed");
                return sent;
            }
        };
        if pending.is_empty() {
            return Vec::new();
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(RETRY.wait(attempt)).await;
        }
    }
    keys(&pending)
}

/// What a write cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// BatchWriteItem requests sent, retries included.
    pub requests: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Mapping, Outcome, transform};
    use serde_json::json;

    fn activity(new: serde_json::Value) -> Activity {
        let body =
            domain::sample::event("PersonUpdatedEvent", uuid::Uuid::new_v4(), json!({}), new);
        match transform(body.to_string().as_bytes(), &Mapping::default()).unwrap() {
            Outcome::Record(mut r) => r.remove(0),
            Outcome::Ignored => panic!("expected a record"),
        }
    }

    #[test]
    fn small_records_are_stored_plain() {
        let (_, fit) = fit_item(&activity(json!({"a": 1}))).unwrap();
        assert_eq!(fit, Fit::Plain);
    }

    #[test]
    fn large_compressible_records_are_compressed_and_read_back_whole() {
        let a = activity(json!({"notes": "repetitive text ".repeat(40_000)}));
        let (item, fit) = fit_item(&a).unwrap();
        assert_eq!(fit, Fit::Compressed);
        assert!(item::item_size(&item) <= MAX_ITEM_BYTES);
        assert_eq!(item::from_item(item).unwrap(), a);
    }

    #[test]
    fn incompressible_records_keep_the_changed_paths() {
        // Random-looking text does not compress below the limit.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: String = (0..700_000)
            .map(|_| {
                // xorshift64: no repetition gzip could use.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8)
            })
            .collect();
        let a = activity(json!({"blob": noise, "name": "x"}));
        let (item, fit) = fit_item(&a).unwrap();
        assert_eq!(fit, Fit::Truncated);
        assert!(item::item_size(&item) <= MAX_ITEM_BYTES);
        let back = item::from_item(item).unwrap();
        assert!(back.truncated);
        let paths: Vec<_> = back.changes.unwrap().into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["/blob", "/name"]);
    }
}
