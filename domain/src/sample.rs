//! Sample change events as a .NET publisher writes them (docs/contracts.md §1),
//! for the tests and benchmarks of every crate: one definition instead of a copy
//! per test file. Built only with the `sample` feature.

use serde_json::{Value, json};
use uuid::Uuid;

/// The publisher's user in every sample; tests check it never reaches a log.
pub const AUTHOR_EMAIL: &str = "paul.fox@example.gov.uk";

/// A change event of `event_type` on `entity_id`, with a fresh event id and
/// correlation id.
pub fn event(event_type: &str, entity_id: Uuid, old: Value, new: Value) -> Value {
    json!({
        "id": Uuid::new_v4(),
        "eventType": event_type,
        "sourceDomain": "Test",
        "sourceSystem": "TestAPI",
        "version": "v1",
        "correlationId": Uuid::new_v4(),
        "dateTime": "2024-03-01T09:30:00.1234567Z",
        "user": { "name": "Paul Fox", "email": AUTHOR_EMAIL },
        "entityId": entity_id,
        "eventData": { "oldData": old, "newData": new }
    })
}

/// A person's first name changed, as a message body.
pub fn person_updated(entity_id: Uuid) -> String {
    event(
        "PersonUpdatedEvent",
        entity_id,
        json!({ "firstName": "Susan", "title": "Ms" }),
        json!({ "firstName": "Susanna", "title": "Ms" }),
    )
    .to_string()
}

/// A rent transaction posted to `tenure`, as a message body: one event, two records.
pub fn transaction_created(transaction: Uuid, tenure: Uuid) -> String {
    let mut e = event(
        "TransactionCreatedEvent",
        transaction,
        Value::Null,
        json!({ "transactionType": "Rent", "amount": 125.5 }),
    );
    e["entityTargetId"] = json!(tenure);
    e.to_string()
}
