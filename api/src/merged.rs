//! Several targets' histories as one (`targetId` repeated): keyset pagination
//! over each target's `createdAt` index, merged in one order. Each target keeps a
//! cursor of its own, carried in the page token; a page reads at most a page
//! from each target and never what an earlier page served. Ties between equal
//! `createdAt` values are broken by id, so the order is total.

use std::cmp::Ordering;

use domain::token::PageKey;
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::Order;
use crate::store::{Entry, MAX_REQUESTS_PER_PAGE, Scope, Store};

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

/// One merged read: every entry read, in the merged order; serve at most the
/// page size of them.
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
    /// The cursors once the first `taken` entries are served (at most the page
    /// size the read used, so no target is served past what it read).
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

impl Store {
    /// Reads up to `size` entries from each target not yet done (each scope is
    /// one target's, with the same filters) and merges them.
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
                self.read(scope, start, size, MAX_REQUESTS_PER_PAGE)
                    .await
                    .map(Some)
            });
        let pages = futures::future::try_join_all(reads).await?;
        let mut entries = Vec::new();
        let mut streams = Vec::with_capacity(pages.len());
        for (i, (page, before)) in pages.into_iter().zip(&cursors.0).enumerate() {
            let Some(page) = page else {
                streams.push(Stream {
                    before: Cursor::Done,
                    keys: Vec::new(),
                    end: None,
                });
                continue;
            };
            let keys = page.entries.iter().map(|e| e.key.clone()).collect();
            streams.push(Stream {
                before: before.clone(),
                keys,
                end: page.next,
            });
            entries.extend(page.entries.into_iter().map(|e| (i, e)));
        }
        // Each target's entries arrive in order; a stable sort keeps them so.
        entries.sort_by(|(_, a), (_, b)| compare(a, b, order));
        let (owners, entries) = entries.into_iter().unzip();
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
}
