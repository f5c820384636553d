//! The fold's defining property: when every update carried the whole entity,
//! folding all of a target's records, as the listener stores them (reduced to
//! what changed, then through the item codec), gives the last version back.

#![allow(clippy::unwrap_used)]

use domain::{Mapping, Outcome, item, transform};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Entity versions: a few known keys (so versions share, change and drop keys),
/// scalars, arrays and nested objects; no nulls (publishers send null for
/// "absent", and the history cannot tell them apart).
fn arb_entity() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (0..5i64).prop_map(|n| json!(n)),
        "[a-c]{0,2}".prop_map(Value::String),
        proptest::collection::vec(0..3i64, 0..3).prop_map(|v| json!(v)),
    ];
    let value = leaf.prop_recursive(2, 12, 4, |inner| {
        proptest::collection::btree_map("[abcd]", inner, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
    });
    proptest::collection::btree_map("[abcde]", value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn event(event_type: &str, entity: Uuid, n: usize, old: &Value, new: &Value) -> Value {
    json!({
        "id": Uuid::new_v4(), "eventType": event_type, "sourceDomain": "Person",
        "sourceSystem": "PersonAPI", "dateTime": format!("2024-03-01T09:{:02}:00Z", n),
        "entityId": entity, "eventData": { "oldData": old, "newData": new }
    })
}

/// The record the listener stores for `body`, read back from its item.
fn stored(body: &Value) -> domain::Activity {
    let Outcome::Record(mut r) =
        transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
    else {
        panic!("a person event records")
    };
    item::from_item(item::to_item(&r.remove(0)).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn folding_whole_entity_updates_gives_the_last_version(
        versions in proptest::collection::vec(arb_entity(), 1..6)
    ) {
        let entity = Uuid::new_v4();
        let mut records = vec![stored(&event("PersonCreatedEvent", entity, 0, &Value::Null, &versions[0]))];
        for (n, pair) in versions.windows(2).enumerate() {
            records.push(stored(&event("PersonUpdatedEvent", entity, n + 1, &pair[0], &pair[1])));
        }
        let s = domain::fold::fold(&records).unwrap();
        prop_assert_eq!(s.state.as_ref(), versions.last());
        prop_assert!(s.complete);
        prop_assert_eq!(s.activities, versions.len());
    }
}
