//! The activity record, and the transform that turns one event into its records.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::diff::{self, Change};
use crate::event::{Event, EventError};
use crate::mapping::{ActivityType, Mapping, Rule, Unmapped};
use crate::time::Timestamp;

/// Namespace of activity ids: UUID v5 over (event id, target id). Fixed for ever:
/// changing it would make redeliveries of old events write duplicates.
pub const ACTIVITY_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_2c1e_86a4_4f3c_9d0e_5a7b_3c2d_1e0f);

/// The deterministic id of the activity that `event_id` records on `target_id`:
/// a redelivered event produces the same id, so its write overwrites, not duplicates.
pub fn activity_id(event_id: Uuid, target_id: Uuid) -> Uuid {
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(event_id.as_bytes());
    name[16..].copy_from_slice(target_id.as_bytes());
    Uuid::new_v5(&ACTIVITY_ID_NAMESPACE, &name)
}

/// Who made a change, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Author {
    /// Display name; the source system when the event had no user.
    pub full_name: String,
    /// E-mail address; empty when unknown. Personal data: never logged.
    pub email: String,
}

/// Where an activity came from; absent on items the old service wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The event's id.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The request that caused the event, if the publisher said.
    pub correlation_id: Option<Uuid>,
    /// The publishing system.
    pub source_system: String,
    /// [`Event::digest`] of the event that wrote the record: a redelivery of the
    /// same event may rewrite it, a different event with the same id may not.
    /// `None` on records written before digests were kept.
    pub event_digest: Option<String>,
}

/// One entry of a target's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Deterministic from (event id, target id); see [`activity_id`].
    pub id: Uuid,
    /// The entity whose history this entry belongs to.
    pub target_id: Uuid,
    /// The kind of entity the target is, e.g. `person`.
    pub target_type: String,
    /// What happened.
    pub activity_type: ActivityType,
    /// When it happened (the event's time, not the time it was processed).
    pub created_at: Timestamp,
    /// Before: the changed part for update/end, whole for create/delete/migrate.
    pub old_data: Option<Value>,
    /// After: the changed part for update/end, whole for create/delete/migrate.
    pub new_data: Option<Value>,
    /// One entry per changed leaf; `None` on items the old service wrote.
    pub changes: Option<Vec<Change>>,
    /// Who made the change.
    pub author: Author,
    /// e.g. `Person`.
    pub source_domain: String,
    /// Epoch seconds after which DynamoDB may delete the record; `None` keeps it.
    pub ttl: Option<i64>,
    /// The event behind the record; `None` on items the old service wrote.
    pub provenance: Option<Provenance>,
    /// Set when the data was too large to store and only the change paths were kept.
    pub truncated: bool,
}

/// What one event amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The event type is mapped to "no activity".
    Ignored,
    /// The records to write (one, or two for finance events).
    Record(Vec<Activity>),
}

/// Why an event could not be turned into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The body is not a valid event.
    #[error(transparent)]
    Malformed(#[from] EventError),
    /// The event type is not in the mapping table.
    #[error(transparent)]
    Unmapped(#[from] Unmapped),
}

/// Parses a message body and applies the mapping: the whole write-path logic short
/// of I/O. Without an ingest key, posted activities are refused (see
/// [`crate::Inbound::parse`]).
pub fn transform(body: &[u8], mapping: &Mapping) -> Result<Outcome, TransformError> {
    records_of(crate::Inbound::parse(body, None)?, mapping)
}

/// The records a parsed queue message produces: an event's, or the one record of
/// a posted activity.
pub fn records_of(message: crate::Inbound, mapping: &Mapping) -> Result<Outcome, TransformError> {
    match message {
        crate::Inbound::Event(e) => records_from(e, mapping),
        crate::Inbound::Posted(p, posting, digest) => Ok(Outcome::Record(vec![
            p.into_record(mapping, posting, digest)?,
        ])),
    }
}

/// The records an already parsed event produces; the event's data moves into
/// them instead of being copied.
pub fn records_from(event: Event, mapping: &Mapping) -> Result<Outcome, TransformError> {
    let rule = match mapping.rule(&event.event_type)? {
        Rule::Ignore => return Ok(Outcome::Ignored),
        Rule::Record(r) => r,
    };
    let mut targets = vec![(event.entity_id, rule.target_type.as_str())];
    if let Some(second) = &rule.also_on_entity_target {
        // A finance event without its tenure would silently miss the tenancy's
        // history; reject it so it is seen in the dead-letter queue.
        let tid = event.entity_target_id.ok_or(EventError::MissingField {
            name: "entityTargetId",
        })?;
        targets.push((tid, second.as_str()));
    }

    let event_digest = Some(event.digest());
    let Event {
        id: event_id,
        event_type,
        source_domain,
        source_system,
        correlation_id,
        date_time,
        user,
        old_data,
        new_data,
        ..
    } = event;
    let (old_data, new_data, changes) = reduce(rule.activity, old_data, new_data);
    let author = match user {
        Some(u) if !u.name.trim().is_empty() || !u.email.trim().is_empty() => Author {
            full_name: u.name,
            email: u.email,
        },
        _ => Author {
            full_name: source_system.clone(),
            email: String::new(),
        },
    };
    let provenance = Provenance {
        event_id,
        event_type,
        correlation_id,
        source_system,
        event_digest,
    };

    let mut shared = Some((old_data, new_data, changes, author, provenance));
    let last = targets.len() - 1;
    let records = targets
        .into_iter()
        .enumerate()
        .filter_map(|(i, (target_id, target_type))| {
            // The last record takes the data; earlier ones (finance) get copies.
            let (old_data, new_data, changes, author, provenance) = if i == last {
                shared.take()?
            } else {
                shared.clone()?
            };
            let mut a = Activity {
                id: activity_id(event_id, target_id),
                target_id,
                target_type: target_type.to_owned(),
                activity_type: rule.activity,
                created_at: date_time,
                old_data,
                new_data,
                changes: Some(changes),
                author,
                source_domain: source_domain.clone(),
                ttl: mapping
                    .retention_days(target_type)
                    .map(|days| date_time.plus_days(days).unix_seconds()),
                provenance: Some(provenance),
                truncated: false,
            };
            mask(&mut a, mapping);
            Some(a)
        })
        .collect();
    Ok(Outcome::Record(records))
}

/// Old and new data as a record keeps them, with the list of changes: an update
/// or end keeps only what changed, the others keep the data whole.
pub(crate) fn reduce(
    activity: ActivityType,
    old_data: Option<Value>,
    new_data: Option<Value>,
) -> (Option<Value>, Option<Value>, Vec<Change>) {
    let empty = Value::Object(Map::new());
    let old_side = Some(old_data.as_ref().unwrap_or(&empty));
    let new_side = Some(new_data.as_ref().unwrap_or(&empty));
    match activity {
        ActivityType::Update | ActivityType::End => {
            let d = diff::diff(old_side, new_side);
            (d.old, d.new, d.changes)
        }
        ActivityType::Create | ActivityType::Delete | ActivityType::Migrate => {
            let changes = diff::changes(old_side, new_side);
            (old_data, new_data, changes)
        }
    }
}

/// Masks the fields the mapping masks for the record's target type, in its data
/// and its changes.
pub(crate) fn mask(a: &mut Activity, mapping: &Mapping) {
    let Some(fields) = mapping.masked_fields(&a.target_type) else {
        return;
    };
    for v in [a.old_data.as_mut(), a.new_data.as_mut()]
        .into_iter()
        .flatten()
    {
        diff::mask_value(v, fields);
    }
    if let Some(c) = a.changes.as_mut() {
        diff::mask_changes(c, fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EVENT_ID: &str = "3f0b8f5e-0c7c-4a3e-9b1e-2f1d7f6a9c11";
    const ENTITY: &str = "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7";
    const TENURE: &str = "0a0b0c0d-1111-2222-3333-444455556666";

    fn event(event_type: &str, old: Value, new: Value) -> Value {
        json!({
            "id": EVENT_ID, "eventType": event_type, "sourceDomain": "Person",
            "sourceSystem": "PersonAPI", "version": "v1",
            "correlationId": "9a1c3b7e-5d2f-4e8a-b6c4-0e1f2a3b4c5d",
            "dateTime": "2021-09-14T10:02:31.5738462Z",
            "user": { "name": "Paul Fox", "email": "paul.fox@example.gov.uk" },
            "entityId": ENTITY, "entityTargetId": TENURE,
            "eventData": { "oldData": old, "newData": new }
        })
    }

    fn run(v: &Value, m: &Mapping) -> Result<Outcome, TransformError> {
        transform(v.to_string().as_bytes(), m)
    }

    fn records(v: &Value) -> Vec<Activity> {
        match run(v, &Mapping::default()).unwrap() {
            Outcome::Record(r) => r,
            Outcome::Ignored => panic!("expected records"),
        }
    }

    #[test]
    fn every_mapped_event_type_records_what_the_table_says() {
        let m = Mapping::default();
        for et in m.event_types() {
            let out = run(&event(et, json!({"a": 1}), json!({"a": 2})), &m).unwrap();
            match (m.rule(et).unwrap(), out) {
                (Rule::Ignore, Outcome::Ignored) => {}
                (Rule::Record(r), Outcome::Record(recs)) => {
                    assert_eq!(recs[0].activity_type, r.activity, "{et}");
                    assert_eq!(recs[0].target_type, r.target_type, "{et}");
                    assert_eq!(recs[0].target_id.to_string(), ENTITY);
                    assert_eq!(
                        recs.len(),
                        1 + usize::from(r.also_on_entity_target.is_some())
                    );
                }
                (rule, out) => panic!("{et}: {rule:?} gave {out:?}"),
            }
        }
    }

    #[test]
    fn update_records_only_what_changed_with_author_and_time() {
        let r = records(&event(
            "PersonUpdatedEvent",
            json!({"id": ENTITY, "firstName": "Susan", "title": "Ms"}),
            json!({"id": ENTITY, "firstName": "Susanna", "title": "Ms"}),
        ));
        assert_eq!(r.len(), 1);
        let a = &r[0];
        assert_eq!(a.old_data, Some(json!({"firstName": "Susan"})));
        assert_eq!(a.new_data, Some(json!({"firstName": "Susanna"})));
        assert_eq!(a.author.full_name, "Paul Fox");
        assert_eq!(
            a.created_at.to_table_string(),
            "2021-09-14T10:02:31.5738462Z"
        );
        assert_eq!(a.source_domain, "Person");
        assert_eq!(a.changes.as_ref().unwrap().len(), 1);
        assert_eq!(a.ttl, None);
    }

    #[test]
    fn create_keeps_whole_new_data_and_lists_each_field() {
        let new = json!({"id": ENTITY, "firstName": "Sue", "title": "Ms"});
        let r = records(&event("PersonCreatedEvent", Value::Null, new.clone()));
        assert_eq!(r[0].new_data, Some(new));
        assert_eq!(r[0].old_data, None);
        assert_eq!(r[0].changes.as_ref().unwrap().len(), 3);
    }

    #[test]
    fn delete_keeps_whole_old_data() {
        let old = json!({"id": ENTITY, "value": "x@example.org"});
        let r = records(&event(
            "ContactDetailDeletedEvent",
            old.clone(),
            Value::Null,
        ));
        assert_eq!(r[0].old_data, Some(old));
        assert_eq!(r[0].new_data, None);
    }

    #[test]
    fn same_event_gives_same_ids_and_different_targets_give_different_ids() {
        let e = event(
            "TransactionCreatedEvent",
            Value::Null,
            json!({"amount": 10.5}),
        );
        let a = records(&e);
        let b = records(&e);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].id, b[0].id);
        assert_eq!(a[1].id, b[1].id);
        assert_ne!(a[0].id, a[1].id);
        assert_eq!(a[0].target_type, "transaction");
        assert_eq!(a[1].target_type, "tenure");
        assert_eq!(a[1].target_id.to_string(), TENURE);
        let mut other = e.clone();
        other["id"] = json!("3f0b8f5e-0c7c-4a3e-9b1e-2f1d7f6a9c12");
        assert_ne!(records(&other)[0].id, a[0].id);
    }

    #[test]
    fn transaction_without_its_tenure_is_malformed() {
        let mut e = event("TransactionCreatedEvent", Value::Null, json!({"amount": 1}));
        e.as_object_mut().unwrap().remove("entityTargetId");
        assert_eq!(
            run(&e, &Mapping::default()).unwrap_err(),
            TransformError::Malformed(EventError::MissingField {
                name: "entityTargetId"
            })
        );
    }

    #[test]
    fn missing_user_makes_the_source_system_the_author() {
        let mut e = event("PersonCreatedEvent", Value::Null, json!({"a": 1}));
        e.as_object_mut().unwrap().remove("user");
        assert_eq!(
            records(&e)[0].author,
            Author {
                full_name: "PersonAPI".into(),
                email: String::new()
            }
        );
    }

    #[test]
    fn unmapped_and_malformed_are_told_apart() {
        let m = Mapping::default();
        let e = run(&event("WidgetFrobbedEvent", Value::Null, Value::Null), &m).unwrap_err();
        assert!(matches!(e, TransformError::Unmapped(_)), "{e:?}");
        let e = transform(b"nope", &m).unwrap_err();
        assert!(matches!(e, TransformError::Malformed(_)), "{e:?}");
    }

    #[test]
    fn masked_fields_and_retention_come_from_the_mapping() {
        let mut m = Mapping::default();
        m.overlay_str(
            "[masks]\nperson = [\"dateOfBirth\"]\n[retention]\nperson = 10\n",
            false,
        )
        .unwrap();
        let e = event(
            "PersonUpdatedEvent",
            json!({"dateOfBirth": "1980-01-01"}),
            json!({"dateOfBirth": "1981-01-01"}),
        );
        let Outcome::Record(r) = run(&e, &m).unwrap() else {
            panic!()
        };
        assert_eq!(r[0].old_data, Some(json!({"dateOfBirth": diff::MASK})));
        assert_eq!(r[0].changes.as_ref().unwrap()[0].path, "/dateOfBirth");
        let created = Timestamp::parse("2021-09-14T10:02:31.5738462Z")
            .unwrap()
            .unix_seconds();
        assert_eq!(r[0].ttl, Some(created + 10 * 86_400));
    }
}
