//! The domain of activity-history: everything the listener and the API agree on,
//! with no network I/O.
//!
//! - [`event`]: the change event of docs/contracts.md §1, parsed tolerantly, rejected precisely.
//! - [`time`]: .NET date-times in, the table's 7-digit `createdAt` out.
//! - [`mapping`]: which event type records what (docs/contracts.md §2), masks, retention.
//! - [`diff`]: old/new data reduced to what changed, and masking.
//! - [`activity`]: the activity record and the transform from an event.
//! - [`posted`]: activities posted over HTTP, and the queue message that carries them.
//! - [`search`]: what the field, author and domain filters query, and when a record matches.
//! - [`fold`]: an entity as it was, its records folded.
//! - [`item`]: the DynamoDB item codec, compatible with the existing table.
//! - [`token`]: opaque, HMAC-authenticated page tokens.
//! - [`table`]: the table's names: key attributes, indexes, TTL attribute.
//! - [`settings`]: blank settings count as not given, for both binaries.
//! - `sample` (feature `sample`): sample events for every crate's tests.

pub mod activity;
pub mod diff;
pub mod event;
pub mod fold;
pub mod item;
pub mod mapping;
pub mod posted;
#[cfg(feature = "sample")]
pub mod sample;
pub mod search;
pub mod settings;
pub mod table;
pub mod time;
pub mod token;

pub use activity::{
    Activity, Author, Outcome, Provenance, TransformError, activity_id, records_from, records_of,
    transform,
};
pub use event::{Event, EventError};
pub use mapping::{ActivityType, Mapping};
pub use posted::{Inbound, PostedActivity};
pub use time::Timestamp;
