//! The listener against real SNS topics, SQS queues and DynamoDB Local.

use std::time::{Duration, Instant};

use domain::mapping::Rule;
use domain::{ActivityType, Mapping};
use integration_tests::{TestStack, event, provisioned};
use listener::handler::{Failure, Message, Status};
use listener::worker::poll_once;
use serde_json::{Value, json};
use uuid::Uuid;

/// An event type, the domain topic it is published to, and what it should record.
type Expected = (String, &'static str, Option<(ActivityType, String)>);

/// Every event type of the built-in mapping with what it should record (`None`
/// for "no activity"), each published to one of the domain topics in turn, so every
/// topic's subscription carries events too. That the built-in mapping is the
/// contract's table (docs/contracts.md §2) is checked apart, against an independent
/// transcription, in `domain::mapping`'s tests; here the whole path honours it.
/// The finance event, which records twice, is published on its own.
fn expected() -> Vec<Expected> {
    let mapping = Mapping::default();
    let topics = listener::provision::DOMAINS.iter().cycle();
    let rules = mapping.event_types().into_iter().filter_map(|t| {
        let rule = match mapping.rule(t).ok()? {
            Rule::Ignore => None,
            Rule::Record(r) if r.also_on_entity_target.is_some() => return None,
            Rule::Record(r) => Some((r.activity, r.target_type.clone())),
        };
        Some((t.to_owned(), rule))
    });
    rules
        .zip(topics)
        .map(|((t, rule), topic)| (t, *topic, rule))
        .collect()
}

fn old_data() -> Value {
    json!({"name": "Before", "unchanged": "same", "nested": {"a": 1, "b": 2}})
}
fn new_data() -> Value {
    json!({"name": "After", "unchanged": "same", "nested": {"a": 1, "b": 3}})
}

async fn publish(s: &TestStack, domain: &str, body: &Value) {
    let entity = body["entityId"].as_str().unwrap().to_owned();
    s.sns
        .publish()
        .topic_arn(s.provisioned.topic(domain).unwrap())
        .message(body.to_string())
        .message_group_id(entity)
        .message_deduplication_id(body["id"].as_str().unwrap())
        .send()
        .await
        .unwrap();
}

/// Runs the worker step until `done` holds or 60 s pass.
async fn drain_until<F, Fut>(s: &TestStack, p: &listener::handler::Processor, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let cfg = s.worker_config();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "queue did not drain in time");
        poll_once(p, &s.sqs, &cfg).await.unwrap();
    }
}

#[tokio::test]
async fn every_mapped_event_type_published_to_a_domain_topic_yields_its_record() {
    let s = provisioned(true).await;
    let p = s.processor(Mapping::default());
    let expected = expected();
    assert!(
        expected.len() >= 29,
        "the built-in mapping lost event types"
    );
    let mut published = Vec::new();
    for (event_type, domain, rule) in expected {
        let entity = Uuid::new_v4();
        let (old, new) = match rule.as_ref().map(|r| r.0) {
            Some(ActivityType::Create) => (Value::Null, new_data()),
            Some(ActivityType::Delete) => (old_data(), Value::Null),
            _ => (old_data(), new_data()),
        };
        let body = event(&event_type, entity, old, new);
        publish(&s, domain, &body).await;
        published.push((entity, event_type, rule));
    }
    let tenure = Uuid::new_v4();
    let transaction = Uuid::new_v4();
    let mut tx = event(
        "TransactionCreatedEvent",
        transaction,
        Value::Null,
        json!({"amount": 125.5, "type": "Rent"}),
    );
    tx["entityTargetId"] = json!(tenure);
    publish(&s, "transactions", &tx).await;

    // Each recording event type records one, the transaction two.
    let want = published.iter().filter(|e| e.2.is_some()).count() + 2;
    let ignored = published.iter().filter(|e| e.2.is_none()).count();
    drain_until(&s, &p, || async { s.item_count().await >= want }).await;
    // Give anything extra a chance to show up before asserting the exact count.
    poll_once(&p, &s.sqs, &s.worker_config()).await.unwrap();
    assert_eq!(s.item_count().await, want);

    for (entity, event_type, rule) in published {
        let records = s.activities(entity).await;
        let Some((activity, target_type)) = rule else {
            assert!(records.is_empty(), "{event_type} should record nothing");
            continue;
        };
        assert_eq!(records.len(), 1, "{event_type}");
        let a = &records[0];
        assert_eq!(a.activity_type, activity, "{event_type}");
        assert_eq!(a.target_type, target_type, "{event_type}");
        assert_eq!(a.author.full_name, "Paul Fox");
        assert_eq!(a.author.email, "paul.fox@example.gov.uk");
        assert_eq!(
            a.created_at.to_table_string(),
            "2024-03-01T09:30:00.1234567Z"
        );
        match a.activity_type {
            ActivityType::Create => assert_eq!(a.new_data, Some(new_data())),
            ActivityType::Delete => assert_eq!(a.old_data, Some(old_data())),
            _ => {
                assert_eq!(
                    a.old_data,
                    Some(json!({"name": "Before", "nested": {"b": 2}})),
                    "{event_type}"
                );
                assert_eq!(
                    a.new_data,
                    Some(json!({"name": "After", "nested": {"b": 3}})),
                    "{event_type}"
                );
            }
        }
    }
    let on_tx = s.activities(transaction).await;
    let on_tenure = s.activities(tenure).await;
    assert_eq!((on_tx.len(), on_tenure.len()), (1, 1));
    assert_eq!(on_tx[0].target_type, "transaction");
    assert_eq!(on_tenure[0].target_type, "tenure");
    assert_eq!(
        on_tenure[0].new_data,
        Some(json!({"amount": 125.5, "type": "Rent"}))
    );
    let m = &p.metrics;
    let ignored_now = m.ignored.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(ignored_now as usize, ignored);
    assert!(ignored_now >= 4, "the contract's four no-activity types");
}

#[tokio::test]
async fn the_same_event_delivered_three_times_is_recorded_once() {
    let s = provisioned(false).await;
    let p = s.processor(Mapping::default());
    let entity = Uuid::new_v4();
    let body = event("PersonUpdatedEvent", entity, old_data(), new_data()).to_string();
    for _ in 0..3 {
        s.sqs
            .send_message()
            .queue_url(&s.provisioned.queue_url)
            .message_body(&body)
            .send()
            .await
            .unwrap();
    }
    drain_until(&s, &p, || async {
        s.queue_depth(&s.provisioned.queue_url).await == 0
    })
    .await;
    assert_eq!(s.activities(entity).await.len(), 1);
    assert_eq!(s.item_count().await, 1);
}

fn message(id: &str, body: String, group: Option<&str>) -> Message {
    Message {
        message_id: id.into(),
        body,
        group_id: group.map(str::to_owned),
        receive_count: Some(1),
    }
}

#[tokio::test]
async fn a_batch_with_a_malformed_and_an_unmapped_message_records_the_other_eight() {
    let s = provisioned(false).await;
    let p = s.processor(Mapping::default());
    let mut bodies: Vec<String> = (0..8)
        .map(|_| event("PersonUpdatedEvent", Uuid::new_v4(), old_data(), new_data()).to_string())
        .collect();
    let malformed = r#"{"id": "not-a-guid", "eventType": "PersonUpdatedEvent"}"#.to_string();
    let unmapped = event(
        "WidgetFrobbedEvent",
        Uuid::new_v4(),
        Value::Null,
        json!({"a": 1}),
    )
    .to_string();
    bodies.insert(3, malformed.clone());
    bodies.insert(7, unmapped.clone());

    // One batch of ten through the handler: two failures, reported by message id.
    let batch: Vec<Message> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| message(&format!("m{i}"), b.clone(), None))
        .collect();
    let (statuses, counts) = p.process_batch(&batch).await;
    assert_eq!(statuses[3], Status::Failed(Failure::Malformed));
    assert_eq!(statuses[7], Status::Failed(Failure::Unmapped));
    assert_eq!(statuses.iter().filter(|s| s.is_done()).count(), 8);
    assert_eq!(s.item_count().await, 8);
    assert_eq!(
        counts.write_requests, 1,
        "eight records go in one BatchWriteItem"
    );

    // Through the real queue: after maxReceiveCount receives exactly those two are dead-lettered.
    s.send_batch(&s.provisioned.queue_url, &bodies).await;
    drain_until(&s, &p, || async {
        s.queue_depth(&s.provisioned.queue_url).await == 0
    })
    .await;
    let mut dead = s.peek_bodies(&s.provisioned.dlq_url).await;
    dead.sort();
    let mut expected = vec![malformed, unmapped];
    expected.sort();
    assert_eq!(dead, expected);
    assert_eq!(
        s.item_count().await,
        8,
        "redelivered good messages rewrote the same records"
    );
}

#[tokio::test]
async fn fifo_failure_holds_back_only_its_own_group() {
    let s = provisioned(true).await;
    let p = s.processor(Mapping::default());
    let ev = || event("PersonUpdatedEvent", Uuid::new_v4(), old_data(), new_data());
    let (a1, a2, b1, b2) = (ev(), ev(), ev(), ev());
    let batch = vec![
        message("a0", "{broken".into(), Some("A")),
        message("b1", b1.to_string(), Some("B")),
        message("a1", a1.to_string(), Some("A")),
        message("b2", b2.to_string(), Some("B")),
        message("a2", a2.to_string(), Some("A")),
    ];
    let (statuses, _) = p.process_batch(&batch).await;
    assert_eq!(
        statuses,
        vec![
            Status::Failed(Failure::Malformed),
            Status::Recorded { records: 1 },
            Status::Failed(Failure::HeldBack),
            Status::Recorded { records: 1 },
            Status::Failed(Failure::HeldBack),
        ]
    );
    let target = |v: &Value| Uuid::parse_str(v["entityId"].as_str().unwrap()).unwrap();
    assert!(
        s.activities(target(&a1)).await.is_empty(),
        "held-back messages are not processed"
    );
    assert!(s.activities(target(&a2)).await.is_empty());
    assert_eq!(s.activities(target(&b2)).await.len(), 1);
}

#[tokio::test]
async fn a_one_megabyte_event_is_stored_reduced_and_the_queue_keeps_moving() {
    let s = provisioned(false).await;
    // SQS now takes messages up to 1 MiB.
    s.sqs
        .set_queue_attributes()
        .queue_url(&s.provisioned.queue_url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
            "1048576",
        )
        .send()
        .await
        .unwrap();
    let p = s.processor(Mapping::default());
    let big_entity = Uuid::new_v4();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let noise: String = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let big = event(
        "PersonUpdatedEvent",
        big_entity,
        json!({"notes": "short"}),
        json!({"notes": noise}),
    );
    let small_entity = Uuid::new_v4();
    let small = event("PersonUpdatedEvent", small_entity, old_data(), new_data());
    for body in [big.to_string(), small.to_string()] {
        assert!(body.len() < 1_048_576);
        s.sqs
            .send_message()
            .queue_url(&s.provisioned.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    drain_until(&s, &p, || async {
        s.queue_depth(&s.provisioned.queue_url).await == 0
    })
    .await;
    let stored = s.activities(big_entity).await;
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].truncated,
        "random text does not compress under 400 KB"
    );
    let paths: Vec<_> = stored[0]
        .changes
        .iter()
        .flatten()
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(paths, ["/notes"]);
    assert_eq!(s.activities(small_entity).await.len(), 1);
    assert!(s.peek_bodies(&s.provisioned.dlq_url).await.is_empty());
}

#[tokio::test]
async fn duplicate_keys_in_one_batch_are_written_once_without_failing_the_batch() {
    let s = provisioned(false).await;
    let p = s.processor(Mapping::default());
    let body = event("PersonUpdatedEvent", Uuid::new_v4(), old_data(), new_data()).to_string();
    let batch = vec![message("1", body.clone(), None), message("2", body, None)];
    let (statuses, _) = p.process_batch(&batch).await;
    assert_eq!(statuses, vec![Status::Recorded { records: 1 }; 2]);
    assert_eq!(s.item_count().await, 1);
}

#[tokio::test]
async fn a_batch_that_outlasts_its_visibility_timeout_stays_hidden_until_done() {
    let s = provisioned(false).await;
    // Writes take 5 s; the batch is hidden for 2 s at a time.
    let slow = integration_tests::proxy::FaultProxy::start(&s.stack.dynamodb).await;
    slow.set_delay(Duration::from_secs(5));
    let mut p = s.processor(Mapping::default());
    p.dynamodb = aws_sdk_dynamodb::Client::new(&integration_tests::sdk_config(&slow.addr));
    let mut cfg = s.worker_config();
    cfg.visibility_secs = 2;
    let entity = Uuid::new_v4();
    s.sqs
        .send_message()
        .queue_url(&s.provisioned.queue_url)
        .message_body(event("PersonUpdatedEvent", entity, old_data(), new_data()).to_string())
        .send()
        .await
        .unwrap();
    let batch = listener::worker::receive(&s.sqs, &cfg).await.unwrap();
    // Another consumer looks at 3.5 s, when a 2 s visibility would have run out.
    let other_consumer = async {
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        s.sqs
            .receive_message()
            .queue_url(&s.provisioned.queue_url)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap()
            .messages()
            .len()
    };
    let (polled, seen) = tokio::join!(
        listener::worker::handle(&p, &s.sqs, &cfg, batch),
        other_consumer
    );
    assert_eq!(
        seen, 0,
        "the message was offered again while its batch was still running"
    );
    assert_eq!((polled.received, polled.deleted), (1, 1));
    assert_eq!(s.activities(entity).await.len(), 1);
    assert_eq!(s.queue_depth(&s.provisioned.queue_url).await, 0);
}
