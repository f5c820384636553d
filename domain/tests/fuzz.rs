//! Fuzzing the untrusted-input paths: the event parser, the mapping, the diff, the
//! item codec (encoding what the transform makes, and decoding any stored item),
//! the date parser and the page-token decoder must never panic,
//! whatever arrives, and what they accept must round-trip.
//!
//! The number of cases per property comes from `FUZZ_CASES` (default 2,000, which
//! keeps `cargo test` fast); RELIABILITY.md records the long runs, e.g.
//! `FUZZ_CASES=2000000 cargo test --release -p domain --test fuzz`.

#![allow(clippy::unwrap_used)]

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::token::{self, TokenKey};
use domain::{Mapping, Outcome, Timestamp, item, transform};
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7")),
        Just(json!("2021-02-19T15:12:00.1234567Z")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: [&str; 11] = [
    "id",
    "eventType",
    "sourceDomain",
    "sourceSystem",
    "version",
    "correlationId",
    "dateTime",
    "user",
    "entityId",
    "entityTargetId",
    "eventData",
];

/// An event that is valid, then has some fields replaced by arbitrary JSON or removed.
fn arb_event() -> impl Strategy<Value = Value> {
    let types: Vec<String> = Mapping::default()
        .event_types()
        .into_iter()
        .map(str::to_owned)
        .collect();
    (
        prop::sample::select(types),
        arb_json(),
        arb_json(),
        prop::collection::vec((0usize..FIELDS.len(), arb_json(), any::<bool>()), 0..3),
    )
        .prop_map(|(event_type, old, new, mutations)| {
            let mut e = json!({
                "id": "3f0b8f5e-0c7c-4a3e-9b1e-2f1d7f6a9c11", "eventType": event_type,
                "sourceDomain": "Person", "sourceSystem": "PersonAPI", "version": "v1",
                "correlationId": "9a1c3b7e-5d2f-4e8a-b6c4-0e1f2a3b4c5d",
                "dateTime": "2021-09-14T10:02:31.5738462Z",
                "user": {"name": "Paul Fox", "email": "p@example.org"},
                "entityId": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7",
                "entityTargetId": "5c0e2b3a-94d1-4f6e-8a27-1b3c4d5e6f70",
                "eventData": {"oldData": old, "newData": new}
            });
            for (i, value, remove) in mutations {
                if let Some(o) = e.as_object_mut() {
                    if remove {
                        o.remove(FIELDS[i]);
                    } else {
                        o.insert(FIELDS[i].to_owned(), value);
                    }
                }
            }
            e
        })
}

/// Any DynamoDB attribute value, nested a few levels.
fn arb_attribute() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(AttributeValue::Null),
        any::<bool>().prop_map(AttributeValue::Bool),
        "[-+0-9.eE]{0,24}".prop_map(AttributeValue::N),
        ".{0,20}".prop_map(AttributeValue::S),
        "[0-9a-fA-F-]{36}|20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-9:.]{0,16}Z?"
            .prop_map(AttributeValue::S),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| AttributeValue::B(Blob::new(b))),
        prop::collection::vec(".{0,5}", 0..3).prop_map(AttributeValue::Ss),
        prop::collection::vec("[-0-9.e]{0,8}", 0..3).prop_map(AttributeValue::Ns),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
            prop::collection::hash_map("[a-z]{0,6}|path|old|new|fullName|email", inner, 0..4)
                .prop_map(AttributeValue::M),
        ]
    })
}

/// Attribute names the decoder reads.
const ATTRIBUTES: [&str; 18] = [
    "targetId",
    "id",
    "type",
    "targetType",
    "createdAt",
    "timetoLiveForRecord",
    "oldData",
    "newData",
    "authorDetails",
    "sourceDomain",
    "ttl",
    "changes",
    "eventId",
    "eventType",
    "correlationId",
    "sourceSystem",
    "truncated",
    "compressed",
];

/// A valid stored item (from a real event), then some attributes replaced by
/// arbitrary values or removed: what an old or hand-edited table row may hold.
fn arb_item() -> impl Strategy<Value = item::Item> {
    prop::collection::vec(
        (0usize..ATTRIBUTES.len(), arb_attribute(), any::<bool>()),
        0..4,
    )
    .prop_map(|mutations| {
        let event = json!({
            "id": "3f0b8f5e-0c7c-4a3e-9b1e-2f1d7f6a9c11", "eventType": "PersonUpdatedEvent",
            "sourceDomain": "Person", "sourceSystem": "PersonAPI", "version": "v1",
            "correlationId": "9a1c3b7e-5d2f-4e8a-b6c4-0e1f2a3b4c5d",
            "dateTime": "2021-09-14T10:02:31.5738462Z",
            "user": {"name": "Paul Fox", "email": "p@example.org"},
            "entityId": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7",
            "eventData": {"oldData": {"a": 1, "b": [1, 2]}, "newData": {"a": 2, "b": [1]}}
        });
        let body = serde_json::to_vec(&event).unwrap();
        let Ok(Outcome::Record(records)) = transform(&body, &Mapping::default()) else {
            panic!("the base event must record");
        };
        let mut item = item::to_item(&records[0]).unwrap();
        for (i, value, remove) in mutations {
            if remove {
                item.remove(ATTRIBUTES[i]);
            } else {
                item.insert(ATTRIBUTES[i].to_owned(), value);
            }
        }
        item
    })
}

/// JSON equality as DynamoDB keeps it: a number is a number, so `0.0` stored
/// comes back as `0` (DynamoDB, like the old writer, has no int/float distinction).
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same_value(a, b),
        _ => false,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// Whatever the transform accepts encodes to an item and decodes back the same.
fn check_round_trip(body: &[u8], mapping: &Mapping) -> Result<(), TestCaseError> {
    if let Ok(Outcome::Record(records)) = transform(body, mapping) {
        for a in records {
            let Ok(encoded) = item::to_item(&a) else {
                continue;
            };
            let _ = item::item_size(&encoded);
            let back = item::from_item(encoded)
                .map_err(|e| TestCaseError::fail(format!("decode failed: {e}")))?;
            prop_assert_eq!(back.id, a.id);
            prop_assert!(
                same(back.old_data.as_ref(), a.old_data.as_ref()),
                "{:?} != {:?}",
                back.old_data,
                a.old_data
            );
            prop_assert!(
                same(back.new_data.as_ref(), a.new_data.as_ref()),
                "{:?} != {:?}",
                back.new_data,
                a.new_data
            );
            prop_assert_eq!(back.created_at, a.created_at);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_the_listener(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = transform(&body, &Mapping::default());
    }

    #[test]
    fn mutated_events_never_panic_and_what_is_accepted_round_trips(e in arb_event()) {
        let body = serde_json::to_vec(&e).unwrap_or_default();
        check_round_trip(&body, &Mapping::default())?;
    }

    #[test]
    fn stored_items_never_panic_the_decoder(i in arb_item()) {
        // Any item decodes or is refused with an error; one that decodes encodes again.
        if let Ok(a) = item::from_item(i) {
            let _ = item::to_item(&a);
        }
    }

    #[test]
    fn dates_never_panic_and_what_parses_round_trips(s in "[0-9T:.+Z-]{0,40}|.{0,40}") {
        if let Ok(t) = Timestamp::parse(&s) {
            prop_assert_eq!(Timestamp::parse(&t.to_table_string()).ok(), Some(t));
        }
    }

    #[test]
    fn page_tokens_never_panic(s in ".{0,200}|[A-Za-z0-9_-]{0,200}") {
        let key = TokenKey::new(b"fuzz-key-0123456789abcdef".to_vec()).unwrap();
        prop_assert!(token::decode(&key, uuid::Uuid::nil(), "", &s).is_err());
    }

    #[test]
    fn mapping_files_never_panic(text in ".{0,200}", json in any::<bool>()) {
        let mut m = Mapping::default();
        let _ = m.overlay_str(&text, json);
    }
}
