//! The write path as an audit log: an event DynamoDB would refuse fails no other
//! event, and a record once written is never rewritten by a different event.

use aws_sdk_dynamodb::types::AttributeValue;
use domain::Mapping;
use integration_tests::{TestStack, event, provisioned};
use listener::dlq::Judge;
use listener::handler::{Failure, Message, Status};
use serde_json::{Value, json};
use uuid::Uuid;

fn message(body: &Value) -> Message {
    Message {
        message_id: Uuid::new_v4().to_string(),
        body: body.to_string(),
        ..Message::default()
    }
}

fn entity(body: &Value) -> Uuid {
    Uuid::parse_str(body["entityId"].as_str().unwrap()).unwrap()
}

/// `{"a": {"a": ... {"a": 1}}}`, `levels` objects deep.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
}

#[tokio::test]
async fn a_batch_of_ten_with_values_dynamodb_refuses_records_all_ten_at_once() {
    let s = provisioned(false).await;
    let p = s.processor(Mapping::default());
    let mut bodies: Vec<Value> = (0..7)
        .map(|n| {
            event(
                "PersonUpdatedEvent",
                Uuid::new_v4(),
                json!({"n": n}),
                json!({"n": n + 1}),
            )
        })
        .collect();
    let odd = [
        json!({"deep": nested(40)}),
        json!({"rent": 1e200}),
        json!({"": 1, "name": "x"}),
    ];
    for data in &odd {
        bodies.push(event(
            "PersonUpdatedEvent",
            Uuid::new_v4(),
            json!({}),
            data.clone(),
        ));
    }
    let messages: Vec<Message> = bodies.iter().map(message).collect();

    let (statuses, counts) = p.process_batch(&messages).await;

    assert!(
        statuses
            .iter()
            .all(|st| *st == Status::Recorded { records: 1 }),
        "{statuses:?}"
    );
    assert_eq!(counts.write_requests, 1, "one request for the ten");
    for (body, data) in bodies[7..].iter().zip(&odd) {
        let stored = s.activities(entity(body)).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].new_data.as_ref(), Some(data), "kept whole");
    }
}

#[tokio::test]
async fn an_item_dynamodb_refuses_fails_alone_and_its_batch_mates_are_written() {
    let s = provisioned(false).await;
    let items: Vec<_> = (0..3)
        .map(|n| {
            let body = event(
                "PersonCreatedEvent",
                Uuid::new_v4(),
                Value::Null,
                json!({"n": n}),
            );
            let domain::Outcome::Record(r) =
                domain::transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
            else {
                panic!("a create records")
            };
            let mut item = domain::item::to_item(&r[0]).unwrap();
            if n == 1 {
                // A number DynamoDB does not take, written past every check.
                item.insert("newData".into(), AttributeValue::N("1e200".into()));
            }
            (n, item)
        })
        .collect();

    let written = listener::store::write_items(&s.dynamodb, &s.provisioned.table, items).await;

    assert_eq!(written.rejected, [1]);
    assert!(written.failed.is_empty() && written.conflicts.is_empty());
    assert_eq!(s.item_count().await, 2, "the two valid items were written");
}

async fn stats(s: &TestStack, mapping: &Mapping) -> Value {
    let judge = Judge {
        mapping,
        dynamodb: &s.dynamodb,
        table: &s.provisioned.table,
    };
    let stats = listener::dlq::stats(&s.sqs, &s.provisioned.dlq_url, &judge)
        .await
        .unwrap();
    serde_json::to_value(stats.by_reason).unwrap()
}

#[tokio::test]
async fn a_different_event_reusing_a_recorded_id_leaves_the_record_and_is_kept_as_conflict() {
    let s = provisioned(false).await;
    let p = s.processor(Mapping::default());
    let original = event(
        "PersonUpdatedEvent",
        Uuid::new_v4(),
        json!({"firstName": "Susan"}),
        json!({"firstName": "Susanna"}),
    );
    let mut forged = original.clone();
    forged["eventData"]["newData"] = json!({"firstName": "Mallory"});
    forged["user"]["name"] = json!("Someone Else");

    let (first, _) = p.process_batch(&[message(&original)]).await;
    let (second, counts) = p.process_batch(&[message(&forged)]).await;
    let (again, _) = p.process_batch(&[message(&original)]).await;

    assert_eq!(first, [Status::Recorded { records: 1 }]);
    assert_eq!(second, [Status::Failed(Failure::Conflict)]);
    assert_eq!(counts.conflicts, 1);
    assert_eq!(
        again,
        [Status::Recorded { records: 1 }],
        "a redelivery may rewrite"
    );
    let stored = s.activities(entity(&original)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].new_data, Some(json!({"firstName": "Susanna"})));
    assert_eq!(stored[0].author.full_name, "Paul Fox");

    // Kept for the dead-letter queue, where the tooling names it.
    s.send_batch(
        &s.provisioned.dlq_url,
        &[forged.to_string(), original.to_string()],
    )
    .await;
    assert_eq!(
        stats(&s, &Mapping::default()).await,
        json!({ "conflict": { "PersonUpdatedEvent": 1 }, "recordable": { "PersonUpdatedEvent": 1 } })
    );
}

/// An event (`newData` `{"a": 2}`) and another that reuses its id and entity
/// with other content (`{"a": 3}`).
fn original_and_forged() -> (Value, Value) {
    let original = event(
        "PersonUpdatedEvent",
        Uuid::new_v4(),
        json!({"a": 1}),
        json!({"a": 2}),
    );
    let mut forged = original.clone();
    forged["eventData"]["newData"] = json!({"a": 3});
    (original, forged)
}

#[tokio::test]
async fn two_events_with_one_id_in_one_batch_record_the_first_and_refuse_the_second() {
    let s = provisioned(false).await;
    let p = s.processor(Mapping::default());
    let (original, forged) = original_and_forged();

    let batch = [message(&original), message(&original), message(&forged)];
    let (statuses, _) = p.process_batch(&batch).await;

    assert_eq!(
        statuses,
        [
            Status::Recorded { records: 1 },
            Status::Recorded { records: 1 },
            Status::Failed(Failure::Conflict),
        ]
    );
    let stored = s.activities(entity(&original)).await;
    assert_eq!(stored[0].new_data, Some(json!({"a": 2})));
}

#[tokio::test]
async fn a_redelivery_behind_a_forged_copy_in_its_batch_is_still_recorded() {
    let s = provisioned(false).await;
    let p = s.processor(Mapping::default());
    let (original, forged) = original_and_forged();
    p.process_batch(&[message(&original)]).await;

    let (statuses, _) = p
        .process_batch(&[message(&forged), message(&original)])
        .await;

    assert_eq!(
        statuses,
        [
            Status::Failed(Failure::Conflict),
            Status::Recorded { records: 1 }
        ]
    );
    let stored = s.activities(entity(&original)).await;
    assert_eq!(stored[0].new_data, Some(json!({"a": 2})));
}

#[tokio::test]
async fn a_record_that_cannot_show_which_event_wrote_it_is_never_rewritten() {
    let s = provisioned(false).await;
    let p = s.processor(Mapping::default());
    let body = event(
        "PersonUpdatedEvent",
        Uuid::new_v4(),
        json!({"a": 1}),
        json!({"a": 2}),
    );
    let domain::Outcome::Record(mut r) =
        domain::transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
    else {
        panic!("an update records")
    };
    // As written before records carried the digest of their event.
    if let Some(p) = r[0].provenance.as_mut() {
        p.event_digest = None;
    }
    r[0].new_data = Some(json!({"a": "as first written"}));
    s.dynamodb
        .put_item()
        .table_name(&s.provisioned.table)
        .set_item(Some(domain::item::to_item(&r[0]).unwrap()))
        .send()
        .await
        .unwrap();

    let (statuses, _) = p.process_batch(&[message(&body)]).await;

    assert_eq!(statuses, [Status::Failed(Failure::Conflict)]);
    let stored = s.activities(entity(&body)).await;
    assert_eq!(stored[0].new_data, Some(json!({"a": "as first written"})));
}
