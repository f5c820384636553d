//! Backfill and manual creation: events from an NDJSON file, checked with the
//! listener's own parser and mapping, published in batches. Bad lines are
//! reported by line number with the reason and are not published.

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use domain::{Event, Mapping, TransformError};
use serde::Serialize;

use crate::aws::Clients;
use crate::sqs::Outgoing;

/// Where to publish.
#[derive(Debug, Clone)]
pub enum Destination {
    /// An SNS topic (the domain's topic, as a publisher would).
    Topic(String),
    /// The activity queue directly.
    Queue(String),
}

impl Destination {
    fn name(&self) -> &str {
        match self {
            Self::Topic(arn) => arn,
            Self::Queue(url) => url,
        }
    }
}

/// A line that was not published.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// `malformed` or `unmapped`.
    pub reason_class: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// What `publish` did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublishReport {
    /// Events published.
    pub published: usize,
    /// Lines refused, with reasons.
    pub bad_lines: Vec<BadLine>,
    /// Events the service refused to take (their line numbers).
    pub failed_lines: Vec<usize>,
}

/// A line that passed the checks: its number, its text and the event it holds.
pub type GoodLine = (usize, String, Event);

/// Checks each non-blank line of `input`; returns the good events with their line numbers.
pub fn check_lines(
    input: impl BufRead,
    mapping: &Mapping,
) -> Result<(Vec<GoodLine>, Vec<BadLine>)> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading line {n}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let checked = Event::parse(line.as_bytes())
            .map_err(TransformError::from)
            .and_then(|e| domain::records_from(e.clone(), mapping).map(|_| e));
        match checked {
            Ok(e) => good.push((n, line, e)),
            Err(e) => bad.push(BadLine {
                line: n,
                reason_class: crate::handler::Failure::of(&e).class(),
                reason: e.to_string(),
            }),
        }
    }
    Ok((good, bad))
}

/// Publishes the good lines of `input` to `to`, ten at a time.
pub async fn publish(
    clients: &Clients,
    to: &Destination,
    input: impl BufRead,
    mapping: &Mapping,
) -> Result<PublishReport> {
    let (good, bad_lines) = check_lines(input, mapping)?;
    let mut report = PublishReport {
        bad_lines,
        ..Default::default()
    };
    for chunk in good.chunks(crate::sqs::MAX_BATCH) {
        // FIFO: one group per entity, so one entity's events stay in order while
        // the rest of the platform moves in parallel; the event id deduplicates.
        let messages: Vec<Outgoing> = chunk
            .iter()
            .map(|(_, body, e)| Outgoing {
                body,
                group_id: e.entity_id.to_string(),
                dedup_id: e.id.to_string(),
            })
            .collect();
        let outcome = match to {
            Destination::Topic(arn) => crate::sqs::publish(&clients.sns, arn, &messages).await,
            Destination::Queue(url) => crate::sqs::send(&clients.sqs, url, &messages).await,
        };
        if let Some(why) = outcome.request_error {
            // The destination is wrong or down: the rest would fare no better.
            bail!("publishing to {}: {why}", to.name());
        }
        report.published += outcome.succeeded.len();
        let failed = outcome.failed.iter().filter_map(|(i, _)| chunk.get(*i));
        report.failed_lines.extend(failed.map(|(n, _, _)| *n));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named_with_their_reason_and_good_ones_kept() {
        let event = domain::sample::event(
            "PersonCreatedEvent",
            uuid::Uuid::new_v4(),
            serde_json::Value::Null,
            serde_json::json!({"firstName": "Sue"}),
        );
        let good = event.to_string();
        let mut no_entity = event;
        no_entity.as_object_mut().map(|o| o.remove("entityId"));
        let unmapped = good.replace("PersonCreatedEvent", "WidgetEvent");
        let input = format!("{good}\n\nnot json\n{unmapped}\n{no_entity}\n");
        let (ok, bad) = check_lines(input.as_bytes(), &Mapping::default()).unwrap();
        assert_eq!(ok.iter().map(|(n, _, _)| *n).collect::<Vec<_>>(), [1]);
        let summary: Vec<(usize, &str)> = bad.iter().map(|b| (b.line, b.reason_class)).collect();
        assert_eq!(
            summary,
            [(3, "malformed"), (4, "unmapped"), (5, "malformed")]
        );
        assert!(bad[2].reason.contains("entityId"));
    }
}
