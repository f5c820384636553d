//! The worker killed with SIGKILL in the middle of its work loses nothing and
//! records nothing twice.

use std::process::Stdio;
use std::time::{Duration, Instant};

use integration_tests::proxy::FaultProxy;
use integration_tests::{TestStack, event, provisioned};
use serde_json::json;
use uuid::Uuid;

fn worker(s: &TestStack) -> tokio::process::Child {
    s.listener_command(crate::LISTENER)
        .args([
            "poll",
            "--wait-secs",
            "1",
            "--visibility-secs",
            "3",
            "--retry-delay-secs",
            "0",
            "--concurrency",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn worker_killed_mid_batch_and_restarted_records_every_event_once() {
    let s = provisioned(false).await;
    const EVENTS: usize = 300;
    let targets: Vec<Uuid> = (0..EVENTS).map(|_| Uuid::new_v4()).collect();
    for chunk in targets.chunks(10) {
        let bodies: Vec<String> = chunk
            .iter()
            .map(|t| event("PersonUpdatedEvent", *t, json!({"n": 1}), json!({"n": 2})).to_string())
            .collect();
        s.send_batch(&s.provisioned.queue_url, &bodies).await;
    }

    let mut first = worker(&s);
    // Kill it once it has written some records but long before it is done.
    wait_for("first records", 60, async || s.item_count().await >= 20).await;
    first.start_kill().unwrap(); // SIGKILL: no chance to finish the batch
    first.wait().await.unwrap();
    let after_kill = s.item_count().await;
    assert!(
        after_kill < EVENTS,
        "the worker was killed before finishing ({after_kill})"
    );

    let mut second = worker(&s);
    wait_for("every event recorded", 120, async || {
        s.item_count().await >= EVENTS
    })
    .await;
    wait_for("the queue to empty", 60, async || {
        s.queue_depth(&s.provisioned.queue_url).await == 0
    })
    .await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    assert_eq!(
        s.item_count().await,
        EVENTS,
        "one record per event, no more"
    );
    for t in &targets {
        assert_eq!(s.activities(*t).await.len(), 1, "target {t}");
    }
    assert_eq!(s.queue_depth(&s.provisioned.dlq_url).await, 0);
}

#[tokio::test]
async fn worker_stopped_with_sigterm_finishes_the_batch_in_hand_and_exits_cleanly() {
    let s = provisioned(false).await;
    // Every write takes 3 s, so the batch is still in hand when SIGTERM comes.
    let slow = FaultProxy::start(&s.stack.dynamodb).await;
    slow.set_delay(Duration::from_secs(3));
    let targets: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let bodies: Vec<String> = targets
        .iter()
        .map(|t| event("PersonUpdatedEvent", *t, json!({"n": 1}), json!({"n": 2})).to_string())
        .collect();
    s.send_batch(&s.provisioned.queue_url, &bodies).await;
    let mut w = s
        .listener_command(crate::LISTENER)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &slow.addr)
        // Hidden for 60 s: a message the worker dropped would still be in flight
        // when the assertions run, not back in the queue.
        .args(["poll", "--wait-secs", "1", "--visibility-secs", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the batch to be received", 30, async || {
        s.visible_and_in_flight(&s.provisioned.queue_url).await == (0, 5)
    })
    .await;

    // Ask it to stop as a container platform would, with the writes still held.
    let pid = w.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), w.wait())
        .await
        .expect("the worker exits within 20 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");

    for t in &targets {
        assert_eq!(s.activities(*t).await.len(), 1, "target {t} was recorded");
    }
    assert_eq!(
        s.visible_and_in_flight(&s.provisioned.queue_url).await,
        (0, 0),
        "every message of the batch was deleted before the worker exited"
    );
}
