//! Creates what the listener needs: the table, one FIFO topic per domain
//! (docs/contracts.md §1), the FIFO activity queue with its dead-letter queue, and
//! raw-delivery subscriptions from every topic to the queue. Idempotent: running
//! it again finds what exists and changes nothing. Tests, the local run and the
//! documentation use these same definitions.

use std::collections::HashMap;

use anyhow::{Context, Result};
use aws_sdk_sqs::types::QueueAttributeName;

/// The domains that publish change events, one SNS topic each (docs/contracts.md §1).
pub const DOMAINS: [&str; 12] = [
    "person",
    "tenure",
    "asset",
    "contactdetails",
    "processes",
    "notes",
    "equalityinformation",
    "housingregister",
    "cautionaryalerts",
    "patchesandareas",
    "contracts",
    "transactions",
];

/// A dead-lettered message is one that failed this many receives.
pub const MAX_RECEIVE_COUNT: u32 = 3;

/// Seconds a received message stays hidden; longer than a batch takes, shorter than
/// the wait an operator would tolerate before a retry.
pub const VISIBILITY_TIMEOUT_SECS: u32 = 60;

/// What to create.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Table name (`ACTIVITY_TABLE`).
    pub table: String,
    /// Put before every topic and queue name, so several stacks share one account
    /// (tests give each its own).
    pub prefix: String,
    /// FIFO topics and queues (production), or standard ones.
    pub fifo: bool,
}

/// What exists after provisioning.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// Table name.
    pub table: String,
    /// Topic ARN per domain, in [`DOMAINS`] order.
    pub topics: Vec<(String, String)>,
    /// The activity queue.
    pub queue_url: String,
    /// The activity queue's ARN.
    pub queue_arn: String,
    /// Its dead-letter queue.
    pub dlq_url: String,
}

impl Provisioned {
    /// The topic ARN of a domain.
    pub fn topic(&self, domain: &str) -> Option<&str> {
        self.topics
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, a)| a.as_str())
    }
}

fn name(spec: &Spec, base: &str) -> String {
    if spec.fifo {
        format!("{}{base}.fifo", spec.prefix)
    } else {
        format!("{}{base}", spec.prefix)
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(crate::aws::err)
        .context("reading queue ARN")?;
    attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .context("queue has no ARN")
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    spec: &Spec,
    queue: &str,
    extra: HashMap<QueueAttributeName, String>,
) -> Result<String> {
    let mut req = sqs.create_queue().queue_name(queue).attributes(
        QueueAttributeName::VisibilityTimeout,
        VISIBILITY_TIMEOUT_SECS.to_string(),
    );
    if spec.fifo {
        req = req.attributes(QueueAttributeName::FifoQueue, "true");
    }
    for (k, v) in extra {
        req = req.attributes(k, v);
    }
    let out = req
        .send()
        .await
        .map_err(crate::aws::err)
        .with_context(|| format!("creating queue {queue}"))?;
    out.queue_url()
        .map(str::to_owned)
        .context("queue has no URL")
}

/// Creates the table, topics, queues and subscriptions described by `spec`.
pub async fn provision(
    dynamodb: &aws_sdk_dynamodb::Client,
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    spec: &Spec,
) -> Result<Provisioned> {
    crate::table::create_table(dynamodb, &spec.table).await?;

    let dlq_url = create_queue(
        sqs,
        spec,
        &name(spec, "activity-history-dlq"),
        HashMap::new(),
    )
    .await?;
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    })
    .to_string();
    let queue_url = create_queue(
        sqs,
        spec,
        &name(spec, "activity-history"),
        HashMap::from([(QueueAttributeName::RedrivePolicy, redrive)]),
    )
    .await?;
    let queue_arn = queue_arn(sqs, &queue_url).await?;

    let mut topics = Vec::new();
    for d in DOMAINS {
        let mut req = sns.create_topic().name(name(spec, d));
        if spec.fifo {
            req = req
                .attributes("FifoTopic", "true")
                // Publishers that send no deduplication id still get exactly-once
                // fan-out within the five-minute window.
                .attributes("ContentBasedDeduplication", "true");
        }
        let arn = req
            .send()
            .await
            .map_err(crate::aws::err)
            .with_context(|| format!("creating topic for {d}"))?
            .topic_arn()
            .map(str::to_owned)
            .context("topic has no ARN")?;
        sns.subscribe()
            .topic_arn(&arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .map_err(crate::aws::err)
            .with_context(|| format!("subscribing the queue to {d}"))?;
        topics.push((d.to_owned(), arn));
    }

    // Let the topics deliver to the queue (AWS checks this; the emulator does not).
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "sns.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnLike": { "aws:SourceArn": topics.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>() } }
        }]
    });
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(crate::aws::err)
        .context("setting the queue policy")?;

    Ok(Provisioned {
        table: spec.table.clone(),
        topics,
        queue_url,
        queue_arn,
        dlq_url,
    })
}
