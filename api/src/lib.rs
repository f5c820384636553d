//! The read-only HTTP API of activity-history. Routes arrive with the Read API work;
//! for now the crate only names its binary's entry point.

/// Placeholder entry point: the API is not served yet.
pub fn describe() -> &'static str {
    "activity-api: read API of activity-history"
}
