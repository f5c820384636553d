//! Soak under faults: 5,000 events with 10% duplicates while the worker is killed
//! three times and DynamoDB is cut off for 10 s. Ignored by default (it takes a few
//! minutes); CI runs it with `cargo test -p integration-tests -- --ignored soak`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use integration_tests::proxy::FaultProxy;
use integration_tests::{TestStack, event, provisioned};
use serde_json::json;
use uuid::Uuid;

fn worker(s: &TestStack, dynamodb: &str) -> tokio::process::Child {
    s.listener_command(crate::LISTENER)
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        .args([
            "poll",
            "--wait-secs",
            "1",
            "--visibility-secs",
            "10",
            "--retry-delay-secs",
            "1",
            "--store-retry-secs",
            "15",
            "--concurrency",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
#[ignore = "soak test: minutes long; run with --ignored"]
async fn soak_with_kills_duplicates_and_a_dynamodb_outage_loses_and_duplicates_nothing() {
    const DISTINCT: usize = 4_546; // plus 10% duplicates makes 5,000 messages
    let s = provisioned(false).await;
    // A network partition between the worker and DynamoDB, on demand.
    let proxy = FaultProxy::start(&s.stack.dynamodb).await;
    let targets: Vec<Uuid> = (0..DISTINCT).map(|_| Uuid::new_v4()).collect();
    let mut bodies: Vec<String> = targets
        .iter()
        .map(|t| event("PersonUpdatedEvent", *t, json!({"n": 1}), json!({"n": 2})).to_string())
        .collect();
    let duplicates: Vec<String> = bodies.iter().step_by(10).cloned().collect();
    bodies.extend(duplicates);
    // Interleave the duplicates with the rest instead of sending them last.
    let len = bodies.len();
    for i in (0..len).step_by(7) {
        bodies.swap(i, len - 1 - i / 7);
    }
    let total = bodies.len();

    let started = Instant::now();
    let mut w = worker(&s, &proxy.addr);
    let publisher = {
        let sqs = s.sqs.clone();
        let url = s.provisioned.queue_url.clone();
        let bodies = bodies.clone();
        tokio::spawn(async move {
            for (n, chunk) in bodies.chunks(10).enumerate() {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(b)
                            .build()
                            .unwrap()
                    })
                    .collect();
                sqs.send_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .unwrap();
                // Pace: the emulator's receive slows down as the queue deepens.
                if n % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            }
        })
    };

    let mut kills = 0;
    let mut outage_done = false;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let recorded = s.item_count().await;
        if recorded >= DISTINCT
            && publisher.is_finished()
            && s.queue_depth(&s.provisioned.queue_url).await == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "soak did not finish: {recorded} of {DISTINCT} recorded"
        );
        // Kill the worker at about a quarter, a half and three quarters.
        if kills < 3 && recorded >= DISTINCT * (kills + 1) / 4 {
            w.start_kill().unwrap();
            w.wait().await.unwrap();
            kills += 1;
            w = worker(&s, &proxy.addr);
        }
        // Cut DynamoDB off for 10 s once, between the first and second kill.
        if !outage_done && kills == 1 {
            proxy.set_cut(true);
            tokio::time::sleep(Duration::from_secs(10)).await;
            proxy.set_cut(false);
            outage_done = true;
        }
    }
    publisher.await.unwrap();
    w.start_kill().unwrap();
    w.wait().await.unwrap();
    let elapsed = started.elapsed();

    assert_eq!(kills, 3);
    assert!(outage_done);
    assert_eq!(
        s.item_count().await,
        DISTINCT,
        "exactly one record per distinct event"
    );
    for t in targets.iter().step_by(97) {
        assert_eq!(s.activities(*t).await.len(), 1);
    }
    assert_eq!(
        s.queue_depth(&s.provisioned.dlq_url).await,
        0,
        "nothing dead-lettered"
    );
    eprintln!("soak: {total} messages, {DISTINCT} distinct, 3 kills, 10 s outage, {elapsed:?}");
}
