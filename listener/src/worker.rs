//! The long-polling worker: how the listener runs on a container platform and
//! locally. [`poll_once`] is one receive–process–acknowledge step; [`run_worker`]
//! runs it in `concurrency` loops until shutdown, finishing the batch in hand.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_sqs::types::MessageSystemAttributeName as A;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::handler::{Failure, Message, Processor, Status};
use crate::sqs;

/// Messages per receive: SQS's most, so a batch costs one write request.
pub const BATCH_SIZE: i32 = 10;
const DEFAULT_CONCURRENCY: u16 = 1;
const DEFAULT_WAIT_SECS: i32 = 20;
const DEFAULT_VISIBILITY_SECS: i32 = 60;
const DEFAULT_RETRY_DELAY_SECS: i32 = 10;
const DEFAULT_STORE_RETRY_SECS: i32 = 30;

/// How the worker polls: the options of `activity-listener poll`, each also read
/// from the environment variable named beside it.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// URL of the activity queue.
    #[arg(long, env = "ACTIVITY_QUEUE_URL")]
    pub queue_url: String,
    /// Receive loops running at once.
    #[arg(long, env = "ACTIVITY_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Long-poll wait in seconds (0-20).
    #[arg(long, env = "ACTIVITY_WAIT_SECS", default_value_t = DEFAULT_WAIT_SECS, value_parser = clap::value_parser!(i32).range(0..=20))]
    pub wait_secs: i32,
    /// Seconds a received batch stays hidden from other consumers; extended while
    /// a batch runs long.
    #[arg(long, env = "ACTIVITY_VISIBILITY_SECS", default_value_t = DEFAULT_VISIBILITY_SECS, value_parser = clap::value_parser!(i32).range(2..=43_200))]
    pub visibility_secs: i32,
    /// Seconds before a failed message is offered again (its visibility is set to
    /// this instead of waiting out the full timeout).
    #[arg(long, env = "ACTIVITY_RETRY_DELAY_SECS", default_value_t = DEFAULT_RETRY_DELAY_SECS, value_parser = clap::value_parser!(i32).range(0..=43_200))]
    pub retry_delay_secs: i32,
    /// Seconds before a message whose records could not be written (or that was
    /// held back behind a failed message of its group) is offered again; long
    /// enough that a DynamoDB outage does not use up its receives and send it to
    /// the dead-letter queue.
    #[arg(long, env = "ACTIVITY_STORE_RETRY_SECS", default_value_t = DEFAULT_STORE_RETRY_SECS, value_parser = clap::value_parser!(i32).range(0..=43_200))]
    pub store_retry_secs: i32,
}

impl WorkerConfig {
    /// The defaults of `activity-listener poll` for a queue.
    pub fn new(queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            concurrency: DEFAULT_CONCURRENCY,
            wait_secs: DEFAULT_WAIT_SECS,
            visibility_secs: DEFAULT_VISIBILITY_SECS,
            retry_delay_secs: DEFAULT_RETRY_DELAY_SECS,
            store_retry_secs: DEFAULT_STORE_RETRY_SECS,
        }
    }
}

/// How long a receive loop waits after a failed receive.
const RECEIVE_RETRY: Backoff = Backoff {
    base: Duration::from_millis(400),
    cap: Duration::from_millis(12_800),
};
/// How long a receive loop waits after a batch whose writes failed: the table is
/// failing, so messages are not cycled through receives they cannot spare.
const OUTAGE_RETRY: Backoff = Backoff {
    base: Duration::from_secs(2),
    cap: Duration::from_secs(32),
};

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
    let how = sqs::Receive {
        max: BATCH_SIZE,
        wait_secs: cfg.wait_secs,
        visibility_secs: cfg.visibility_secs,
        attributes: &[A::MessageGroupId, A::ApproximateReceiveCount],
    };
    let received = sqs::receive(sqs, &cfg.queue_url, how).await?;
    let mut batch = Received::default();
    for m in received {
        batch.messages.push(Message {
            group_id: sqs::attribute(&m, A::MessageGroupId).cloned(),
            receive_count: sqs::attribute(&m, A::ApproximateReceiveCount)
                .and_then(|c| c.parse().ok()),
            message_id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
        });
        batch.handles.push(m.receipt_handle.unwrap_or_default());
    }
    Ok(batch)
}

/// Processes a received batch and acknowledges what succeeded. Runs to the end
/// once started, so a shutdown never leaves a batch half done.
pub async fn handle(
    processor: &Processor,
    sqs: &aws_sdk_sqs::Client,
    cfg: &WorkerConfig,
    batch: Received,
) -> Polled {
    if batch.messages.is_empty() {
        return Polled::default();
    }
    let statuses = process_hidden(processor, sqs, cfg, &batch).await;
    acknowledge(sqs, cfg, &batch.handles, &statuses).await
}

/// Processes the batch, keeping it hidden from other consumers while it runs long
/// (e.g. DynamoDB throttling).
async fn process_hidden(
    processor: &Processor,
    sqs: &aws_sdk_sqs::Client,
    cfg: &WorkerConfig,
    batch: &Received,
) -> Vec<Status> {
    let handles: Vec<&str> = batch.handles.iter().map(String::as_str).collect();
    let work = processor.process_batch(&batch.messages);
    tokio::pin!(work);
    let every = Duration::from_secs((cfg.visibility_secs.max(2) / 2) as u64);
    loop {
        tokio::select! {
            (statuses, _) = &mut work => return statuses,
            _ = tokio::time::sleep(every) => {
                set_visibility(sqs, &cfg.queue_url, &handles, cfg.visibility_secs).await;
            }
        }
    }
}

/// Whether a failed message waits on the table: its write failed, or it waits
/// behind one in its group. Such a message is offered again later than bad input,
/// so an outage does not use up its receives.
fn waits_on_the_table(failure: Failure) -> bool {
    matches!(failure, Failure::Store | Failure::HeldBack)
}

/// Deletes what is done and schedules the redelivery of what failed.
async fn acknowledge(
    sqs: &aws_sdk_sqs::Client,
    cfg: &WorkerConfig,
    handles: &[String],
    statuses: &[Status],
) -> Polled {
    let with = |keep: &dyn Fn(Status) -> bool| -> Vec<&str> {
        let pairs = statuses.iter().zip(handles);
        pairs
            .filter(|(s, _)| keep(**s))
            .map(|(_, h)| h.as_str())
            .collect()
    };
    let done = with(&|s| s.is_done());
    let deleted = delete(sqs, &cfg.queue_url, &done).await;
    let soon = with(&|s| matches!(s, Status::Failed(f) if !waits_on_the_table(f)));
    let later = with(&|s| matches!(s, Status::Failed(f) if waits_on_the_table(f)));
    set_visibility(sqs, &cfg.queue_url, &soon, cfg.retry_delay_secs).await;
    set_visibility(sqs, &cfg.queue_url, &later, cfg.store_retry_secs).await;
    Polled {
        received: statuses.len(),
        deleted,
        failed: soon.len() + later.len(),
        store_failed: with(&|s| s == Status::Failed(Failure::Store)).len(),
    }
}

/// Deletes processed messages; returns how many went.
async fn delete(sqs: &aws_sdk_sqs::Client, queue_url: &str, handles: &[&str]) -> usize {
    if handles.is_empty() {
        return 0;
    }
    let outcome = sqs::delete(sqs, queue_url, handles).await;
    for (entry, why) in &outcome.failed {
        // Records are idempotent: a redelivery of this message rewrites the same item.
        warn!(entry, error = %why, "could not delete a processed message; it will be redelivered");
    }
    outcome.succeeded.len()
}

async fn set_visibility(sqs: &aws_sdk_sqs::Client, queue_url: &str, handles: &[&str], secs: i32) {
    if handles.is_empty() {
        return;
    }
    let outcome = sqs::set_visibility(sqs, queue_url, handles, secs).await;
    if let Some((_, why)) = outcome.failed.first() {
        warn!(failed = outcome.failed.len(), error = %why, "could not change message visibility");
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
    let loops: Vec<_> = (0..cfg.concurrency.max(1))
        .map(|n| {
            let (p, s, c, rx) = (processor.clone(), sqs.clone(), cfg.clone(), rx.clone());
            tokio::spawn(async move { receive_loop(n, &p, &s, &c, rx).await })
        })
        .collect();
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

/// One receive loop: receive, handle, back off when receives or writes fail, until
/// `stop` turns true. Only a receive or a wait is abandoned on shutdown; a batch
/// in hand is finished.
async fn receive_loop(
    n: u16,
    p: &Processor,
    s: &aws_sdk_sqs::Client,
    c: &WorkerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let (mut failed_receives, mut failing_writes) = (0u32, 0u32);
    while !*stop.borrow() {
        let received = tokio::select! {
            r = receive(s, c) => r,
            _ = stop.changed() => break,
        };
        let wait = match received {
            Ok(batch) => {
                failed_receives = 0;
                let polled = handle(p, s, c, batch).await;
                failing_writes = if polled.store_failed > 0 {
                    failing_writes + 1
                } else {
                    0
                };
                if failing_writes == 0 {
                    continue;
                }
                let wait = OUTAGE_RETRY.wait(failing_writes);
                warn!(
                    worker = n,
                    retry_in_ms = wait.as_millis() as u64,
                    "writes failing; backing off"
                );
                wait
            }
            Err(e) => {
                failed_receives += 1;
                let wait = RECEIVE_RETRY.wait(failed_receives);
                error!(worker = n, error = %e, retry_in_ms = wait.as_millis() as u64, "receive failed");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
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
