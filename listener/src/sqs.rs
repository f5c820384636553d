//! The SQS (and SNS publish) calls the worker, the dead-letter tooling and
//! `publish` share: receive a batch, and delete, change the visibility of, send or
//! publish any number of messages in calls of ten. A batch call answers per entry, so each caller learns
//! exactly which messages a call left behind.

use std::future::Future;

use anyhow::Result;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, SendMessageBatchRequestEntry,
};

use aws_sdk_sns::types::PublishBatchRequestEntry;

use crate::aws::err;

/// SQS takes at most ten entries per batch call, and hands out at most ten per receive.
pub const MAX_BATCH: usize = 10;

/// How to receive.
#[derive(Debug, Clone, Copy)]
pub struct Receive<'a> {
    /// Messages wanted, 1 to 10.
    pub max: i32,
    /// Long-poll wait, seconds (0-20).
    pub wait_secs: i32,
    /// How long what is received stays hidden from other consumers.
    pub visibility_secs: i32,
    /// System attributes to read with each message.
    pub attributes: &'a [MessageSystemAttributeName],
}

/// Receives one batch.
pub async fn receive(sqs: &Client, url: &str, how: Receive<'_>) -> Result<Vec<Message>> {
    let mut req = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(how.max.clamp(1, MAX_BATCH as i32))
        .wait_time_seconds(how.wait_secs)
        .visibility_timeout(how.visibility_secs);
    for a in how.attributes {
        req = req.message_system_attribute_names(a.clone());
    }
    let out = req.send().await.map_err(err)?;
    Ok(out.messages.unwrap_or_default())
}

/// A system attribute of a received message.
pub fn attribute(m: &Message, name: MessageSystemAttributeName) -> Option<&String> {
    m.attributes().and_then(|a| a.get(&name))
}

/// What a batch call did, by the position of each entry in the caller's list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Entries SQS accepted.
    pub succeeded: Vec<usize>,
    /// Entries it refused, with its code, or with the error of a request that failed whole.
    pub failed: Vec<(usize, String)>,
    /// The error of the first call that failed whole (unreachable, denied, no such
    /// queue), as opposed to entries refused one by one.
    pub request_error: Option<String>,
}

/// What one batch call answered: the ids of the entries it accepted, and of those
/// it refused with its code. Ids are positions within the call.
type Answer = (Vec<String>, Vec<(String, String)>);

/// Runs `call` on `items` ten at a time and gathers the answers by position in
/// `items`. A call that fails whole fails each of its entries with its error.
async fn in_batches<'a, T, Fut>(items: &'a [T], call: impl Fn(&'a [T]) -> Fut) -> BatchOutcome
where
    Fut: Future<Output = Result<Answer>>,
{
    let mut outcome = BatchOutcome::default();
    for (n, chunk) in items.chunks(MAX_BATCH).enumerate() {
        let offset = n * MAX_BATCH;
        let at = |id: &str| id.parse::<usize>().ok().map(|i| offset + i);
        match call(chunk).await {
            Ok((ok, refused)) => {
                outcome.succeeded.extend(ok.iter().filter_map(|id| at(id)));
                let refused = refused
                    .into_iter()
                    .filter_map(|(id, code)| Some((at(&id)?, code)));
                outcome.failed.extend(refused);
            }
            Err(e) => {
                let why = format!("{e:#}");
                outcome.request_error.get_or_insert_with(|| why.clone());
                outcome
                    .failed
                    .extend((offset..offset + chunk.len()).map(|i| (i, why.clone())));
            }
        }
    }
    outcome
}

/// Deletes messages by receipt handle.
pub async fn delete(sqs: &Client, url: &str, handles: &[&str]) -> BatchOutcome {
    in_batches(handles, |chunk| delete_chunk(sqs, url, chunk)).await
}

async fn delete_chunk(sqs: &Client, url: &str, chunk: &[&str]) -> Result<Answer> {
    let entries = chunk.iter().enumerate().filter_map(|(i, h)| {
        DeleteMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .receipt_handle(*h)
            .build()
            .ok()
    });
    let o = sqs
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .map_err(err)?;
    Ok((
        o.successful.into_iter().map(|s| s.id).collect(),
        o.failed.into_iter().map(|f| (f.id, f.code)).collect(),
    ))
}

/// Sets how long more the messages stay hidden (0: visible at once).
pub async fn set_visibility(sqs: &Client, url: &str, handles: &[&str], secs: i32) -> BatchOutcome {
    in_batches(handles, |chunk| visibility_chunk(sqs, url, chunk, secs)).await
}

async fn visibility_chunk(sqs: &Client, url: &str, chunk: &[&str], secs: i32) -> Result<Answer> {
    let entries = chunk.iter().enumerate().filter_map(|(i, h)| {
        ChangeMessageVisibilityBatchRequestEntry::builder()
            .id(i.to_string())
            .receipt_handle(*h)
            .visibility_timeout(secs)
            .build()
            .ok()
    });
    let o = sqs
        .change_message_visibility_batch()
        .queue_url(url)
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .map_err(err)?;
    Ok((
        o.successful.into_iter().map(|s| s.id).collect(),
        o.failed.into_iter().map(|f| (f.id, f.code)).collect(),
    ))
}

/// One message to send or publish. The FIFO group and deduplication id are used
/// only when the destination is FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// The message body: one event.
    pub body: &'a str,
    /// FIFO message group.
    pub group_id: String,
    /// FIFO deduplication id.
    pub dedup_id: String,
}

/// Sends messages to a queue.
pub async fn send(sqs: &Client, url: &str, messages: &[Outgoing<'_>]) -> BatchOutcome {
    in_batches(messages, |chunk| send_chunk(sqs, url, chunk)).await
}

async fn send_chunk(sqs: &Client, url: &str, chunk: &[Outgoing<'_>]) -> Result<Answer> {
    let fifo = url.ends_with(".fifo");
    let entries = chunk.iter().enumerate().filter_map(|(i, m)| {
        let e = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(m.body);
        let e = match fifo {
            true => e
                .message_group_id(&m.group_id)
                .message_deduplication_id(&m.dedup_id),
            false => e,
        };
        e.build().ok()
    });
    let o = sqs
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .map_err(err)?;
    Ok((
        o.successful.into_iter().map(|s| s.id).collect(),
        o.failed.into_iter().map(|f| (f.id, f.code)).collect(),
    ))
}

/// Publishes messages to an SNS topic, as a domain service would.
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    arn: &str,
    messages: &[Outgoing<'_>],
) -> BatchOutcome {
    in_batches(messages, |chunk| publish_chunk(sns, arn, chunk)).await
}

async fn publish_chunk(
    sns: &aws_sdk_sns::Client,
    arn: &str,
    chunk: &[Outgoing<'_>],
) -> Result<Answer> {
    let fifo = arn.ends_with(".fifo");
    let entries = chunk.iter().enumerate().filter_map(|(i, m)| {
        let e = PublishBatchRequestEntry::builder()
            .id(i.to_string())
            .message(m.body);
        let e = match fifo {
            true => e
                .message_group_id(&m.group_id)
                .message_deduplication_id(&m.dedup_id),
            false => e,
        };
        e.build().ok()
    });
    let o = sns
        .publish_batch()
        .topic_arn(arn)
        .set_publish_batch_request_entries(Some(entries.collect()))
        .send()
        .await
        .map_err(err)?;
    Ok((
        o.successful()
            .iter()
            .filter_map(|s| s.id().map(str::to_owned))
            .collect(),
        o.failed()
            .iter()
            .map(|f| (f.id().to_owned(), f.code().to_owned()))
            .collect(),
    ))
}
