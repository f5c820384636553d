//! The `ActivityHistory` table's names (docs/contracts.md §3 plus the `ActivityById`
//! index and TTL on `ttl`): what the writer, the reader and the provisioning share.
//! Creating the table is network I/O and lives with provisioning
//! (`listener::table`).

/// Default table name (`ACTIVITY_TABLE`).
pub const DEFAULT_TABLE: &str = "ActivityHistory";
/// Local index: a target's history in `createdAt` order.
pub const BY_CREATED_AT: &str = "ActivityHistoryByCreatedAt";
/// Global index: one activity by its id.
pub const BY_ID: &str = "ActivityById";
/// The attribute DynamoDB's TTL reads.
pub const TTL_ATTRIBUTE: &str = "ttl";
