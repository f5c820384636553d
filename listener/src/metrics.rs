//! Counters per outcome and batch latency. In Lambda mode each batch prints one
//! CloudWatch Embedded Metric Format line, which CloudWatch turns into metrics
//! without an API call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::handler::{Failure, Status};
use crate::store::WriteStats;

/// Running totals since the process started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages whose records were written.
    pub recorded: AtomicU64,
    /// Messages of an event type mapped to "no activity".
    pub ignored: AtomicU64,
    /// Messages that are not a valid event.
    pub malformed: AtomicU64,
    /// Messages of an event type with no mapping.
    pub unmapped: AtomicU64,
    /// Messages whose records could not be written.
    pub store_failed: AtomicU64,
    /// FIFO messages not processed because an earlier message of their group failed.
    pub held_back: AtomicU64,
    /// Messages whose record was written by a different event with the same id.
    pub conflicts: AtomicU64,
    /// Activity records written.
    pub records: AtomicU64,
    /// BatchWriteItem requests sent.
    pub write_requests: AtomicU64,
}

/// Counts of one batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCounts {
    /// Messages whose records were written.
    pub recorded: u64,
    /// Messages mapped to "no activity".
    pub ignored: u64,
    /// Messages that are not a valid event.
    pub malformed: u64,
    /// Messages with an unmapped event type.
    pub unmapped: u64,
    /// Messages whose records could not be written.
    pub store_failed: u64,
    /// FIFO messages held back behind a failure in their group.
    pub held_back: u64,
    /// Messages whose record was written by a different event with the same id.
    pub conflicts: u64,
    /// Records written.
    pub records: u64,
    /// BatchWriteItem requests sent.
    pub write_requests: u64,
    /// BatchGetItem requests sent to find existing records.
    pub read_requests: u64,
    /// Write capacity units consumed, as DynamoDB reported them.
    pub write_units: f64,
    /// Read capacity units consumed, as DynamoDB reported them.
    pub read_units: f64,
}

impl BatchCounts {
    /// The counts of a batch's statuses, and the write requests it cost.
    pub fn of(statuses: &[Status], cost: &WriteStats) -> Self {
        let mut c = Self {
            write_requests: cost.requests,
            read_requests: cost.reads,
            write_units: cost.write_units,
            read_units: cost.read_units,
            ..Self::default()
        };
        for s in statuses {
            match s {
                Status::Recorded { records } => {
                    c.recorded += 1;
                    c.records += *records as u64;
                }
                Status::Ignored => c.ignored += 1,
                Status::Failed(Failure::Malformed) => c.malformed += 1,
                Status::Failed(Failure::Unmapped) => c.unmapped += 1,
                Status::Failed(Failure::Store) => c.store_failed += 1,
                Status::Failed(Failure::HeldBack) => c.held_back += 1,
                Status::Failed(Failure::Conflict) => c.conflicts += 1,
            }
        }
        c
    }
}

impl Metrics {
    /// Adds one batch's counts to the totals.
    pub fn add(&self, c: &BatchCounts) {
        let add = |a: &AtomicU64, v| a.fetch_add(v, Ordering::Relaxed);
        add(&self.recorded, c.recorded);
        add(&self.ignored, c.ignored);
        add(&self.malformed, c.malformed);
        add(&self.unmapped, c.unmapped);
        add(&self.store_failed, c.store_failed);
        add(&self.held_back, c.held_back);
        add(&self.conflicts, c.conflicts);
        add(&self.records, c.records);
        add(&self.write_requests, c.write_requests);
    }
}

/// Namespace of the listener's CloudWatch metrics.
pub const NAMESPACE: &str = "ActivityHistory/Listener";

/// One Embedded Metric Format document for a batch.
pub fn emf_line(c: &BatchCounts, latency: Duration, now_ms: u128) -> String {
    let names = [
        "recorded",
        "ignored",
        "malformed",
        "unmapped",
        "storeFailed",
        "heldBack",
        "conflicts",
        "records",
        "writeRequests",
        "readRequests",
        "writeUnits",
        "readUnits",
    ];
    let mut metrics: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({ "Name": n, "Unit": "Count" }))
        .collect();
    metrics.push(serde_json::json!({ "Name": "batchLatency", "Unit": "Milliseconds" }));
    let mut doc = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = doc.as_object_mut() {
        o.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": now_ms as u64,
                "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": [[]], "Metrics": metrics }]
            }),
        );
        o.insert(
            "batchLatency".into(),
            serde_json::json!(latency.as_secs_f64() * 1000.0),
        );
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_every_value_it_carries() {
        let c = BatchCounts {
            recorded: 8,
            malformed: 1,
            unmapped: 1,
            ..Default::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&emf_line(&c, Duration::from_millis(12), 1_700_000_000_000))
                .unwrap();
        assert_eq!(v["recorded"], 8);
        assert_eq!(v["unmapped"], 1);
        let declared = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        for m in declared {
            let name = m["Name"].as_str().unwrap();
            assert!(v.get(name).is_some(), "{name} declared but missing");
        }
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }
}
