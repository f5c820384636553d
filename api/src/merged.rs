//! Several targets' histories as one (`targetId` repeated): keyset pagination
//! over each target's `createdAt` index, merged in one order. Each target keeps a
//! cursor of its own, carried in the page token; a page reads at most a page
//! from each target and never what an earlier page served. Ties between equal
//! `createdAt` values are broken by id, so the order is total.

use std::cmp::Ordering;
use std::collections::VecDeque;

use domain::token::PageKey;
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::Order;
use crate::store::{Entry, Scope, Store};

/// Where one target's history stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Nothing read yet.
    Start,
    /// Resume after this key.
    After(PageKey),
    /// Everything served.
    Done,
}

/// One cursor per target, in the order of the query's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursors(pub Vec<Cursor>);

impl Cursors {
    /// Every target at its start.
    pub fn start(targets: usize) -> Self {
        Self(vec![Cursor::Start; targets])
    }

    /// Whether every target is served to its end.
    pub fn done(&self) -> bool {
        self.0.iter().all(|c| *c == Cursor::Done)
    }

    /// A compact text for the page token: `s`, `d` or `createdAt|id` per target.
    pub fn encode(&self) -> String {
        let one = |c: &Cursor| match c {
            Cursor::Start => "s".to_owned(),
            Cursor::Done => "d".to_owned(),
            Cursor::After(k) => format!("{}|{}", k.created_at.as_deref().unwrap_or(""), k.id),
        };
        self.0.iter().map(one).collect::<Vec<_>>().join(",")
    }

    /// Reads [`Cursors::encode`]'s text back for `targets` targets.
    pub fn decode(text: &str, targets: usize) -> Option<Self> {
        let one = |part: &str| match part {
            "s" => Some(Cursor::Start),
            "d" => Some(Cursor::Done),
            other => {
                let (created_at, id) = other.split_once('|')?;
                Some(Cursor::After(PageKey {
                    id: id.to_owned(),
                    created_at: (!created_at.is_empty()).then(|| created_at.to_owned()),
                }))
            }
        };
        let cursors: Option<Vec<Cursor>> = text.split(',').map(one).collect();
        cursors.filter(|c| c.len() == targets).map(Self)
    }
}

/// The id a set of targets binds its page tokens to: the same set in any order
/// gives the same id, and it is never one target's own id.
pub fn set_id(targets: &[Uuid]) -> Uuid {
    let mut sorted = targets.to_vec();
    sorted.sort_unstable();
    let bytes: Vec<u8> = sorted.iter().flat_map(|t| *t.as_bytes()).collect();
    Uuid::new_v5(&domain::activity::ACTIVITY_ID_NAMESPACE, &bytes)
}

/// What one target's read returned: the keys of its entries in order, and where
/// its read ended (`None`: the end of its history).
#[derive(Debug)]
struct Stream {
    before: Cursor,
    keys: Vec<PageKey>,
    end: Option<PageKey>,
}

/// One merged read: the entries that may be served, in the merged order.
#[derive(Debug)]
pub struct Merged {
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// Per entry, the index of its target.
    owners: Vec<usize>,
    streams: Vec<Stream>,
}

/// The merged order: by `createdAt`, then by id, newest first unless ascending.
fn compare(a: &Entry, b: &Entry, order: Order) -> Ordering {
    let key = |e: &Entry| (e.activity.created_at, e.activity.id);
    let ascending = key(a).cmp(&key(b));
    if order == Order::Asc {
        ascending
    } else {
        ascending.reverse()
    }
}

impl Merged {
    /// The cursors once the first `taken` of [`Merged::entries`] are served.
    pub fn cursors_after(&self, taken: usize) -> Cursors {
        let mut counts = vec![0usize; self.streams.len()];
        for i in self.owners.iter().take(taken) {
            counts[*i] += 1;
        }
        let cursors = (self.streams.iter().zip(counts))
            .map(|(s, k)| match k {
                0 if !s.keys.is_empty() => s.before.clone(),
                k if k == s.keys.len() => s.end.clone().map_or(Cursor::Done, Cursor::After),
                k => Cursor::After(s.keys[k - 1].clone()),
            })
            .collect();
        Cursors(cursors)
    }
}

/// Queries one target may make for one merged page: with ten targets, at most
/// 40 queries a page.
pub const REQUESTS_PER_TARGET: usize = 4;

/// Merges the targets' entries, each target's in the order read: always the best
/// of the targets' next entries, never reordering one target's own. Stops at
/// `limit`, or once a target that has more than it read has run out of what it
/// read (its unread entries could come next).
fn merge_heads(
    mut queues: Vec<(VecDeque<Entry>, bool)>,
    order: Order,
    limit: usize,
) -> (Vec<Entry>, Vec<usize>) {
    let (mut entries, mut owners) = (Vec::new(), Vec::new());
    while entries.len() < limit {
        if queues.iter().any(|(q, more)| q.is_empty() && *more) {
            break;
        }
        let best = (queues.iter().enumerate())
            .filter_map(|(i, (q, _))| q.front().map(|e| (i, e)))
            .min_by(|(_, a), (_, b)| compare(a, b, order))
            .map(|(i, _)| i);
        let Some(e) = best.and_then(|i| Some((i, queues.get_mut(i)?.0.pop_front()?))) else {
            break;
        };
        owners.push(e.0);
        entries.push(e.1);
    }
    (entries, owners)
}

impl Store {
    /// Reads up to `size` entries from each target not yet done (each scope is
    /// one target's, with the same filters) and merges at most `size` of them.
    pub async fn merged(
        &self,
        scopes: &[Scope<'_>],
        cursors: &Cursors,
        size: usize,
        order: Order,
    ) -> Result<Merged, ApiError> {
        let reads = scopes
            .iter()
            .zip(&cursors.0)
            .map(|(scope, cursor)| async move {
                let start = match cursor {
                    Cursor::Done => return Ok(None),
                    Cursor::Start => None,
                    Cursor::After(k) => Some(k.clone()),
                };
                self.read(scope, start, size, REQUESTS_PER_TARGET)
                    .await
                    .map(Some)
            });
        let pages = futures::future::try_join_all(reads).await?;
        let mut queues = Vec::with_capacity(pages.len());
        let mut streams = Vec::with_capacity(pages.len());
        for (page, before) in pages.into_iter().zip(&cursors.0) {
            let Some(page) = page else {
                streams.push(Stream {
                    before: Cursor::Done,
                    keys: Vec::new(),
                    end: None,
                });
                queues.push((VecDeque::new(), false));
                continue;
            };
            let keys = page.entries.iter().map(|e| e.key.clone()).collect();
            queues.push((page.entries.into(), page.next.is_some()));
            streams.push(Stream {
                before: before.clone(),
                keys,
                end: page.next,
            });
        }
        let (entries, owners) = merge_heads(queues, order, size);
        Ok(Merged {
            entries,
            owners,
            streams,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str, id: &str) -> PageKey {
        PageKey {
            id: id.into(),
            created_at: Some(c.into()),
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_the_wrong_count() {
        let c = Cursors(vec![
            Cursor::Start,
            Cursor::Done,
            Cursor::After(key(
                "2024-03-01T09:30:00.0000000Z",
                "a5b4c3d2-e1f0-4a5b-8c7d-6e5f4a3b2c1d",
            )),
        ]);
        assert_eq!(Cursors::decode(&c.encode(), 3), Some(c.clone()));
        assert_eq!(Cursors::decode(&c.encode(), 2), None);
        assert_eq!(Cursors::decode("x,y", 2), None);
        assert!(!c.done());
        assert!(Cursors(vec![Cursor::Done; 2]).done());
    }

    #[test]
    fn a_set_of_targets_has_one_id_whatever_their_order_and_not_a_targets_own() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(set_id(&[a, b]), set_id(&[b, a]));
        assert_ne!(set_id(&[a, b]), a);
        assert_ne!(set_id(&[a]), a);
    }

    fn entry(created: &str, id: u128) -> Entry {
        let created_at = domain::Timestamp::parse(created).unwrap();
        let activity = domain::Activity {
            id: Uuid::from_u128(id),
            target_id: Uuid::nil(),
            target_type: "person".into(),
            activity_type: domain::ActivityType::Update,
            created_at,
            old_data: None,
            new_data: None,
            changes: None,
            author: domain::Author::default(),
            source_domain: String::new(),
            ttl: None,
            provenance: None,
            truncated: false,
        };
        let key = key(&created_at.to_table_string(), &activity.id.to_string());
        Entry { activity, key }
    }

    fn ids(entries: &[Entry]) -> Vec<u128> {
        entries.iter().map(|e| e.activity.id.as_u128()).collect()
    }

    #[test]
    fn heads_merge_newest_first_ties_by_id_without_reordering_a_target() {
        let a = VecDeque::from([
            entry("2024-03-03T00:00:00Z", 1),
            entry("2024-03-01T00:00:00Z", 2),
        ]);
        let b = VecDeque::from([
            entry("2024-03-03T00:00:00Z", 3),
            entry("2024-03-02T00:00:00Z", 4),
        ]);
        let (merged, owners) = merge_heads(
            vec![(a.clone(), false), (b.clone(), false)],
            Order::Desc,
            10,
        );
        assert_eq!(
            ids(&merged),
            [3, 1, 4, 2],
            "equal times: the larger id first when newest first"
        );
        assert_eq!(owners, [1, 0, 1, 0]);
        let (limited, _) = merge_heads(vec![(a, false), (b, false)], Order::Desc, 2);
        assert_eq!(ids(&limited), [3, 1]);
        // A target's own order is kept even where it disagrees with the merge key.
        let odd = VecDeque::from([
            entry("2024-03-01T00:00:00Z", 9),
            entry("2024-03-05T00:00:00Z", 8),
        ]);
        let (merged, _) = merge_heads(vec![(odd, false)], Order::Desc, 10);
        assert_eq!(ids(&merged), [9, 8]);
    }

    #[test]
    fn a_target_with_more_than_it_read_stops_the_merge_where_its_reads_end() {
        let short = VecDeque::from([entry("2024-03-05T00:00:00Z", 1)]);
        let full = VecDeque::from([
            entry("2024-03-04T00:00:00Z", 2),
            entry("2024-03-01T00:00:00Z", 3),
        ]);
        let (merged, _) = merge_heads(vec![(short, true), (full, false)], Order::Desc, 10);
        assert_eq!(
            ids(&merged),
            [1],
            "the short target's unread records may be newer than 2"
        );
    }

    #[test]
    fn cursors_after_resume_each_target_after_what_it_served() {
        let stream = |before, keys: &[&str], end: Option<&str>| Stream {
            before,
            keys: keys.iter().map(|k| key("t", k)).collect(),
            end: end.map(|k| key("t", k)),
        };
        let merged = Merged {
            entries: Vec::new(),
            owners: vec![0, 1, 0],
            streams: vec![
                stream(Cursor::Start, &["a1", "a2", "a3"], Some("a3")),
                stream(Cursor::Start, &["b1"], None),
                stream(Cursor::After(key("t", "c0")), &["c1"], None),
                stream(Cursor::Done, &[], None),
            ],
        };
        let after = merged.cursors_after(3);
        assert_eq!(
            after,
            Cursors(vec![
                Cursor::After(key("t", "a2")),
                Cursor::Done,
                Cursor::After(key("t", "c0")),
                Cursor::Done,
            ])
        );
        assert_eq!(merged.cursors_after(0).0[0], Cursor::Start);
    }
}
