//! The long-polling worker: how the listener runs on a container platform and
//! locally. [`poll_once`] is one receive–process–acknowledge step; [`run_worker`]
//! runs it in `concurrency` loops until shutdown, finishing the batch in hand.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::handler::{Failure, Message, Processor, Status};

/// How the worker polls.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The activity queue.
    pub queue_url: String,
    /// Receive loops running at once.
    pub concurrency: usize,
    /// Long-poll wait, seconds (SQS allows at most 20).
    pub wait_secs: i32,
    /// Messages per receive (SQS allows at most 10).
    pub batch_size: i32,
    /// Seconds a received batch stays hidden; extended while the batch runs long.
    pub visibility_secs: i32,
    /// Seconds before a failed message is offered again (its visibility is set to
    /// this instead of waiting out the full timeout).
    pub retry_delay_secs: i32,
    /// Seconds before a message whose records could not be written is offered
    /// again; longer, so an outage of DynamoDB does not use up its receives and
    /// send it to the dead-letter queue.
    pub store_retry_secs: i32,
}

impl WorkerConfig {
    /// Defaults for a queue: 20 s long polls of 10, one loop, 60 s visibility,
    /// failed messages retried after 10 s.
    pub fn new(queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            concurrency: 1,
            wait_secs: 20,
            batch_size: 10,
            visibility_secs: 60,
            retry_delay_secs: 10,
            store_retry_secs: 30,
        }
    }
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    /// Messages received.
    pub received: usize,
    /// Messages deleted (done).
    pub deleted: usize,
    /// Messages left for redelivery.
    pub failed: usize,
    /// Of those, messages whose records could not be written (a sign of an outage).
    pub store_failed: usize,
}

/// A received batch, not yet processed.
#[derive(Debug, Default)]
pub struct Received {
    messages: Vec<Message>,
    handles: Vec<String>,
}

/// Receives one batch, processes it and acknowledges what succeeded.
pub async fn poll_once(
    processor: &Processor,
    sqs: &aws_sdk_sqs::Client,
    cfg: &WorkerConfig,
) -> Result<Polled> {
    let batch = receive(sqs, cfg).await?;
    Ok(handle(processor, sqs, cfg, batch).await)
}

/// Long-polls for one batch. Safe to abandon: what it received reappears after
/// the visibility timeout.
pub async fn receive(sqs: &aws_sdk_sqs::Client, cfg: &WorkerConfig) -> Result<Received> {
    let out = sqs
        .receive_message()
        .queue_url(&cfg.queue_url)
        .max_number_of_messages(cfg.batch_size)
        .wait_time_seconds(cfg.wait_secs)
        .visibility_timeout(cfg.visibility_secs)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .map_err(crate::aws::err)?;
    let received = out.messages();
    let mut messages = Vec::with_capacity(received.len());
    let mut handles = Vec::with_capacity(received.len());
    for m in received {
        let attr = |n: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&n)).cloned();
        messages.push(Message {
            message_id: m.message_id().unwrap_or_default().to_owned(),
            body: m.body().unwrap_or_default().to_owned(),
            group_id: attr(MessageSystemAttributeName::MessageGroupId),
            receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|c| c.parse().ok()),
        });
        handles.push(m.receipt_handle().unwrap_or_default().to_owned());
    }
    Ok(Received { messages, handles })
}

/// Processes a received batch and acknowledges what succeeded. Runs to the end
/// once started, so a shutdown never leaves a batch half done.
pub async fn handle(
    processor: &Processor,
    sqs: &aws_sdk_sqs::Client,
    cfg: &WorkerConfig,
    batch: Received,
) -> Polled {
    let Received { messages, handles } = batch;
    if messages.is_empty() {
        return Polled::default();
    }

    // Keep the batch hidden while it runs long (e.g. DynamoDB throttling).
    let statuses = {
        let work = processor.process_batch(&messages);
        tokio::pin!(work);
        let every = Duration::from_secs((cfg.visibility_secs.max(2) / 2) as u64);
        loop {
            tokio::select! {
                (s, _) = &mut work => break s,
                _ = tokio::time::sleep(every) => {
                    set_visibility(sqs, &cfg.queue_url, handles.iter().enumerate(), cfg.visibility_secs).await;
                }
            }
        }
    };

    let done: Vec<_> = statuses
        .iter()
        .zip(&handles)
        .enumerate()
        .filter(|(_, (s, _))| s.is_done())
        .collect();
    let mut deleted = 0;
    if !done.is_empty() {
        let entries: Vec<_> = done
            .iter()
            .filter_map(|(i, (_, h))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(h.as_str())
                    .build()
                    .ok()
            })
            .collect();
        match sqs
            .delete_message_batch()
            .queue_url(&cfg.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                deleted = out.successful().len();
                for f in out.failed() {
                    // Records are idempotent: a redelivery of this message rewrites the same item.
                    warn!(
                        entry = f.id(),
                        code = f.code(),
                        "could not delete a processed message"
                    );
                }
            }
            Err(e) => {
                warn!(error = %crate::aws::err(e), "could not delete processed messages; they will be redelivered")
            }
        }
    }
    let failed_with = |store: bool| -> Vec<(usize, &String)> {
        statuses
            .iter()
            .zip(&handles)
            .enumerate()
            .filter(|(_, (s, _))| {
                !s.is_done()
                    && (**s == Status::Failed(Failure::Store)
                        || **s == Status::Failed(Failure::HeldBack))
                        == store
            })
            .map(|(i, (_, h))| (i, h))
            .collect()
    };
    let bad_input = failed_with(false);
    let store_failed = failed_with(true);
    if !bad_input.is_empty() {
        set_visibility(
            sqs,
            &cfg.queue_url,
            bad_input.iter().copied(),
            cfg.retry_delay_secs,
        )
        .await;
    }
    if !store_failed.is_empty() {
        set_visibility(
            sqs,
            &cfg.queue_url,
            store_failed.iter().copied(),
            cfg.store_retry_secs,
        )
        .await;
    }
    Polled {
        received: messages.len(),
        deleted,
        failed: bad_input.len() + store_failed.len(),
        store_failed: statuses
            .iter()
            .filter(|s| **s == Status::Failed(Failure::Store))
            .count(),
    }
}

async fn set_visibility<'a>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handles: impl Iterator<Item = (usize, &'a String)>,
    secs: i32,
) {
    let entries: Vec<_> = handles
        .filter_map(|(i, h)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(h.as_str())
                .visibility_timeout(secs)
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    if let Err(e) = sqs
        .change_message_visibility_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        warn!(error = %crate::aws::err(e), "could not change message visibility");
    }
}

/// Runs `concurrency` receive loops until `shutdown` resolves; each loop finishes
/// the batch it holds before it stops. A receive in progress is abandoned: its
/// messages, if any, reappear after the visibility timeout.
pub async fn run_worker(
    processor: Processor,
    sqs: aws_sdk_sqs::Client,
    cfg: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let (tx, rx) = watch::channel(false);
    let cfg = Arc::new(cfg);
    let mut loops = Vec::new();
    for n in 0..cfg.concurrency.max(1) {
        let (p, s, c, mut rx) = (processor.clone(), sqs.clone(), cfg.clone(), rx.clone());
        loops.push(tokio::spawn(async move {
            let mut failures = 0u32;
            let mut outage = 0u32;
            loop {
                if *rx.borrow() {
                    break;
                }
                // Only the receive is abandoned on shutdown; a batch in hand is finished.
                let step = tokio::select! {
                    r = receive(&s, &c) => r,
                    _ = rx.changed() => break,
                };
                match step {
                    Ok(batch) => {
                        failures = 0;
                        let polled = handle(&p, &s, &c, batch).await;
                        if polled.store_failed > 0 {
                            // The table is failing: back off instead of cycling
                            // messages through receives they cannot spare.
                            outage += 1;
                            let wait = Duration::from_secs(1u64 << outage.min(5));
                            warn!(worker = n, retry_in_ms = wait.as_millis() as u64, "writes failing; backing off");
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = rx.changed() => break,
                            }
                        } else {
                            outage = 0;
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        let wait = Duration::from_millis(200u64 << failures.min(6));
                        error!(worker = n, error = %e, retry_in_ms = wait.as_millis() as u64, "receive failed");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = rx.changed() => break,
                        }
                    }
                }
            }
        }));
    }
    info!(queue_url = %cfg.queue_url, concurrency = cfg.concurrency, "worker polling");
    shutdown.await;
    info!("shutdown requested; finishing batches in hand");
    let _ = tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    info!("worker stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
