//! Backfill and manual creation: events from an NDJSON file, checked with the
//! listener's own parser and mapping, published in batches. Bad lines are
//! reported by line number with the reason and are not published.

use std::io::BufRead;

use anyhow::{Context, Result};
use aws_sdk_sns::types::PublishBatchRequestEntry;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use domain::{Event, Mapping, TransformError};
use serde::Serialize;

use crate::aws::{Clients, err};

/// Where to publish.
#[derive(Debug, Clone)]
pub enum Destination {
    /// An SNS topic (the domain's topic, as a publisher would).
    Topic(String),
    /// The activity queue directly.
    Queue(String),
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
                reason_class: e.reason_class(),
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
    for chunk in good.chunks(10) {
        // FIFO: one group per entity, so one entity's events stay in order while
        // the rest of the platform moves in parallel; the event id deduplicates.
        let group = |e: &Event| e.entity_id.to_string();
        let failed: Vec<usize> = match to {
            Destination::Topic(arn) => {
                let fifo = arn.ends_with(".fifo");
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, body, e))| {
                        let mut b = PublishBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message(body);
                        if fifo {
                            b = b
                                .message_group_id(group(e))
                                .message_deduplication_id(e.id.to_string());
                        }
                        b.build().ok()
                    })
                    .collect();
                let out = clients
                    .sns
                    .publish_batch()
                    .topic_arn(arn)
                    .set_publish_batch_request_entries(Some(entries))
                    .send()
                    .await
                    .map_err(err)
                    .with_context(|| format!("publishing to {arn}"))?;
                out.failed()
                    .iter()
                    .filter_map(|f| f.id().parse().ok())
                    .collect()
            }
            Destination::Queue(url) => {
                let fifo = url.ends_with(".fifo");
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, body, e))| {
                        let mut b = SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(body);
                        if fifo {
                            b = b
                                .message_group_id(group(e))
                                .message_deduplication_id(e.id.to_string());
                        }
                        b.build().ok()
                    })
                    .collect();
                let out = clients
                    .sqs
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(err)
                    .with_context(|| format!("sending to {url}"))?;
                out.failed()
                    .iter()
                    .filter_map(|f| f.id().parse().ok())
                    .collect()
            }
        };
        report.published += chunk.len() - failed.len();
        report.failed_lines.extend(
            failed
                .iter()
                .filter_map(|&i| chunk.get(i).map(|(n, _, _)| *n)),
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named_with_their_reason_and_good_ones_kept() {
        let good = r#"{"id":"3f0b8f5e-0c7c-4a3e-9b1e-2f1d7f6a9c11","eventType":"PersonCreatedEvent","sourceDomain":"Person","sourceSystem":"PersonAPI","dateTime":"2024-01-01T00:00:00Z","entityId":"6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7"}"#;
        let unmapped = good.replace("PersonCreatedEvent", "WidgetEvent");
        let no_entity = good.replace(r#","entityId":"6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7""#, "");
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
