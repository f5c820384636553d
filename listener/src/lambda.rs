//! The Lambda runner: an SQS event in, `batchItemFailures` out (the function is
//! deployed with `ReportBatchItemFailures`, so only failed messages are retried).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::handler::{Message, Processor};
use crate::metrics;

/// Converts Lambda's SQS records to the shared message type.
pub fn messages(event: &SqsEvent) -> Vec<Message> {
    event
        .records
        .iter()
        .map(|r| Message {
            message_id: r.message_id.clone().unwrap_or_default(),
            body: r.body.clone().unwrap_or_default(),
            group_id: r.attributes.get("MessageGroupId").cloned(),
            receive_count: r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok()),
        })
        .collect()
}

/// Handles one invocation.
pub async fn handle(processor: &Processor, event: SqsEvent) -> SqsBatchResponse {
    let started = Instant::now();
    let messages = messages(&event);
    let (statuses, counts) = processor.process_batch(&messages).await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    // EMF goes to stdout, which Lambda ships to CloudWatch Logs.
    println!("{}", metrics::emf_line(&counts, started.elapsed(), now_ms));
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = messages
        .iter()
        .zip(statuses)
        .filter(|(_, s)| !s.is_done())
        .map(|(m, _)| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = m.message_id.clone();
            f
        })
        .collect();
    response
}

/// Serves invocations from the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`).
pub async fn run_lambda(processor: Processor) -> Result<(), lambda_runtime::Error> {
    let p = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(handle(p, event.payload).await)
    }))
    .await
}
