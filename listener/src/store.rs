//! Writes activity items to the table: batched, deduplicated, retried, and fitted
//! under DynamoDB's 400 KB item limit.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, KeysAndAttributes, PutRequest, ReturnConsumedCapacity,
    WriteRequest,
};
use domain::Activity;
use domain::item::{self, EVENT_DIGEST, Item, Layout};
use tracing::warn;

use crate::backoff::Backoff;

/// DynamoDB's item size limit is 400 KB; keep a margin for the size estimate.
pub const MAX_ITEM_BYTES: usize = 400 * 1024 - 2 * 1024;
/// BatchWriteItem takes at most 25 requests.
const BATCH: usize = 25;
/// BatchGetItem takes at most 100 keys.
const MAX_GET: usize = 100;
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
    /// Too large as maps, or holding values DynamoDB refuses in maps (too deep,
    /// numbers out of its range, empty keys): data gzip-compressed into one attribute.
    Compressed,
    /// Too large even compressed: only the changed paths are kept, marked `truncated`.
    Truncated,
}

/// Encodes an activity as an item that fits the item size limit, degrading from
/// plain to compressed to the list of changed paths.
pub fn fit_item(a: &Activity) -> Result<(Item, Fit), item::ItemError> {
    if item::storable_as_maps(a) {
        let plain = item::to_item(a)?;
        if item::item_size(&plain) <= MAX_ITEM_BYTES {
            return Ok((plain, Fit::Plain));
        }
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
pub type Key = (String, String);

/// The key of an item.
pub fn key_of(item: &Item) -> Key {
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

/// What became of a batch's items, each named by the index of the message it
/// came from.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteOutcome {
    /// Messages whose items could not all be written (an outage, throttling past
    /// the retries): offered again later.
    pub failed: Vec<usize>,
    /// Messages with an item DynamoDB refused as invalid even when written alone.
    pub rejected: Vec<usize>,
    /// Messages whose record already exists, written by a different event that
    /// carried the same id: the record is left as it is.
    pub conflicts: Vec<usize>,
    /// What the write cost.
    pub stats: WriteStats,
}

/// Writes `items`, each tagged with the index of the message it came from, as an
/// append-only log: a record is rewritten only by the event that wrote it (a
/// redelivery, or a replay after a mapping change).
pub async fn write_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<(usize, Item)>,
) -> WriteOutcome {
    let mut stats = WriteStats::default();
    let mut batch = Batch::of(items);
    let existing = existing_digests(client, table, &batch.keys(), &mut stats).await;
    let Ok(existing) = existing else {
        // Without knowing what exists nothing is written: the messages come back.
        let owned = batch.by_key.values().flatten();
        let failed = owned.map(|(owner, _, _)| *owner).collect();
        let written = Written {
            failed,
            ..Written::default()
        };
        return batch.outcome(written, stats);
    };
    let (unique, mut written) = batch.resolve(&existing);
    // Items move into the requests: nothing is copied on the way to the SDK.
    let mut unique = unique.into_iter().peekable();
    while unique.peek().is_some() {
        let chunk: Vec<Item> = unique.by_ref().take(BATCH).collect();
        written.merge(write_chunk(client, table, chunk, &mut stats).await);
    }
    batch.outcome(written, stats)
}

/// A batch's items by key. One request may not name the same key twice; a
/// redelivered duplicate in the same batch writes the same content, so one copy
/// serves every message that owns it. Of items with one key but different event
/// digests, the one whose digest the stored record has wins (or, with no record
/// yet, the first in the batch); the others conflict.
struct Batch {
    /// Keys in the order they first came.
    order: Vec<Key>,
    /// Per key: each message's index, its item's digest and the item.
    by_key: HashMap<Key, Vec<(usize, Option<String>, Item)>>,
    /// The messages each written key stands for, once resolved.
    owners: HashMap<Key, Vec<usize>>,
    /// Messages whose item lost to another event's digest.
    conflicts: Vec<usize>,
}

impl Batch {
    fn of(items: Vec<(usize, Item)>) -> Self {
        let mut batch = Self {
            order: Vec::new(),
            by_key: HashMap::new(),
            owners: HashMap::new(),
            conflicts: Vec::new(),
        };
        for (owner, item) in items {
            let key = key_of(&item);
            let digest = digest_of(&item).map(str::to_owned);
            let entry = batch.by_key.entry(key.clone()).or_default();
            if entry.is_empty() {
                batch.order.push(key);
            }
            entry.push((owner, digest, item));
        }
        batch
    }

    fn keys(&self) -> Vec<Key> {
        self.order.clone()
    }

    /// One item per key to write, the stored digests deciding each key's winner.
    fn resolve(&mut self, existing: &HashMap<Key, Option<String>>) -> (Vec<Item>, Written) {
        let mut keep = Vec::with_capacity(self.order.len());
        for key in &self.order {
            let Some(entries) = self.by_key.remove(key) else {
                continue;
            };
            let winner = match existing.get(key) {
                // A record without a digest cannot show it was this event's:
                // it is never rewritten.
                Some(None) => {
                    self.conflicts
                        .extend(entries.iter().map(|(owner, _, _)| *owner));
                    continue;
                }
                Some(Some(stored)) => Some(stored.clone()),
                None => entries.first().and_then(|(_, d, _)| d.clone()),
            };
            let mut written_one = false;
            for (owner, digest, item) in entries {
                if digest != winner {
                    self.conflicts.push(owner);
                    continue;
                }
                self.owners.entry(key.clone()).or_default().push(owner);
                if !written_one {
                    keep.push(item);
                    written_one = true;
                }
            }
        }
        (keep, Written::default())
    }

    /// Names the messages behind each key that was not written.
    fn outcome(&self, w: Written, stats: WriteStats) -> WriteOutcome {
        let owners = |keys: &[Key]| -> Vec<usize> {
            let owned = keys.iter().filter_map(|k| self.owners.get(k)).flatten();
            let mut v: Vec<usize> = owned.copied().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut conflicts = self.conflicts.clone();
        conflicts.sort_unstable();
        let mut failed = owners(&w.not_written);
        failed.extend(w.failed);
        failed.sort_unstable();
        failed.dedup();
        WriteOutcome {
            failed,
            rejected: owners(&w.rejected),
            conflicts,
            stats,
        }
    }
}

/// Whether writing `item` would rewrite a record another event wrote: one with
/// another digest, or one without any (it cannot show which event wrote it).
pub fn rewrites_another_event(existing: &HashMap<Key, Option<String>>, item: &Item) -> bool {
    existing
        .get(&key_of(item))
        .is_some_and(|stored| stored.as_deref() != digest_of(item))
}

fn digest_of(item: &Item) -> Option<&str> {
    let digest = item.get(EVENT_DIGEST).and_then(|v| v.as_s().ok());
    digest.map(String::as_str)
}

/// The keys a write left behind, by why.
#[derive(Debug, Default)]
struct Written {
    /// Messages that failed as a whole (the existence check failed).
    failed: Vec<usize>,
    /// Keys not written: retries ran out or the request failed.
    not_written: Vec<Key>,
    /// Keys DynamoDB refused as invalid when written alone.
    rejected: Vec<Key>,
}

impl Written {
    fn merge(&mut self, other: Written) {
        self.failed.extend(other.failed);
        self.not_written.extend(other.not_written);
        self.rejected.extend(other.rejected);
    }
}

/// The records that already exist among `keys`, with their digests (`None` for a
/// record written before digests were kept). Read consistently, so a record
/// written a moment ago is seen. `Err` when the table cannot say.
pub async fn existing_digests(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: &[Key],
    stats: &mut WriteStats,
) -> Result<HashMap<Key, Option<String>>, ()> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(MAX_GET) {
        let mut pending = chunk.iter().map(|(t, i)| key_attributes(t, i)).collect();
        for attempt in 1..=ATTEMPTS {
            let got = get_digests(client, table, pending, stats).await?;
            found.extend(got.digests);
            pending = got.unprocessed;
            if pending.is_empty() {
                break;
            }
            if attempt == ATTEMPTS {
                return Err(());
            }
            tokio::time::sleep(RETRY.wait(attempt)).await;
        }
    }
    Ok(found)
}

/// What one BatchGetItem returned.
struct Got {
    /// Each record found, with its digest if it has one.
    digests: HashMap<Key, Option<String>>,
    /// Keys DynamoDB did not get to (throttling), to ask again.
    unprocessed: Vec<Item>,
}

async fn get_digests(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    stats: &mut WriteStats,
) -> Result<Got, ()> {
    let request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .projection_expression("#t, #i, #d")
        .expression_attribute_names("#t", "targetId")
        .expression_attribute_names("#i", "id")
        .expression_attribute_names("#d", EVENT_DIGEST)
        .consistent_read(true)
        .build()
        .map_err(|_| ())?;
    stats.reads += 1;
    let out = client
        .batch_get_item()
        .request_items(table, request)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .map_err(
            |e| warn!(table, error = %crate::aws::err(e), "reading existing records failed"),
        )?;
    stats.read_units += units(out.consumed_capacity());
    let items = out.responses.and_then(|mut r| r.remove(table));
    let digests = (items.iter().flatten())
        .map(|i| (key_of(i), digest_of(i).map(str::to_owned)))
        .collect();
    let unprocessed = out.unprocessed_keys.and_then(|mut u| u.remove(table));
    Ok(Got {
        digests,
        unprocessed: unprocessed.map(|k| k.keys).unwrap_or_default(),
    })
}

fn key_attributes(target: &str, id: &str) -> Item {
    HashMap::from([
        ("targetId".to_owned(), AttributeValue::S(target.to_owned())),
        ("id".to_owned(), AttributeValue::S(id.to_owned())),
    ])
}

fn units(consumed: &[ConsumedCapacity]) -> f64 {
    consumed.iter().filter_map(|c| c.capacity_units()).sum()
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

/// Writes up to 25 items. DynamoDB refuses a whole request for one invalid item,
/// so when it does, each item is written alone and only the invalid one fails.
async fn write_chunk(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
    stats: &mut WriteStats,
) -> Written {
    // Kept only for that rare case; a request that passed validation once is
    // never refused as invalid on its retries.
    let copies = (items.len() > 1).then(|| items.clone());
    let requests = items.into_iter().map(put_request).collect();
    let mut written = Written::default();
    match (write_batch(client, table, requests, stats).await, copies) {
        (Ok(not_written), _) => written.not_written = not_written,
        (Err(Invalid(keys)), None) => written.rejected = keys,
        (Err(Invalid(_)), Some(copies)) => {
            for item in copies {
                match write_batch(client, table, vec![put_request(item)], stats).await {
                    Ok(not_written) => written.not_written.extend(not_written),
                    Err(Invalid(keys)) => written.rejected.extend(keys),
                }
            }
        }
    }
    written
}

/// DynamoDB refused the request as invalid; the keys it held.
struct Invalid(Vec<Key>);

/// Writes up to 25 items, retrying those DynamoDB leaves unprocessed (throttling)
/// with backoff; returns the keys that were not written.
async fn write_batch(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
    stats: &mut WriteStats,
) -> Result<Vec<Key>, Invalid> {
    for attempt in 1..=ATTEMPTS {
        stats.requests += 1;
        let sent = keys(&pending);
        let result = client
            .batch_write_item()
            .request_items(table, pending)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        pending = match result {
            Ok(out) => {
                stats.write_units += units(out.consumed_capacity());
                let unprocessed = out.unprocessed_items.and_then(|mut m| m.remove(table));
                unprocessed.unwrap_or_default()
            }
            Err(e) if e.code() == Some("ValidationException") => {
                warn!(table, items = sent.len(), error = %crate::aws::err(e), "DynamoDB refused a write as invalid");
                return Err(Invalid(sent));
            }
            // The SDK has already retried transient errors; the request is gone
            // with its items, whose messages come back after the store retry delay.
            Err(e) => {
                warn!(table, attempt, error = %crate::aws::err(e), "batch write failed");
                return Ok(sent);
            }
        };
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(RETRY.wait(attempt)).await;
        }
    }
    Ok(keys(&pending))
}

/// What a write cost.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct WriteStats {
    /// BatchWriteItem requests sent, retries included.
    pub requests: u64,
    /// BatchGetItem requests sent to find records that already exist.
    pub reads: u64,
    /// Read capacity units those reads consumed, as DynamoDB reported them.
    pub read_units: f64,
    /// Write capacity units the writes consumed, as DynamoDB reported them.
    pub write_units: f64,
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
