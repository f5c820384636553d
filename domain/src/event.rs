//! The change event of docs/contracts.md §1, parsed tolerantly and rejected precisely.
//!
//! Unknown fields are ignored, GUIDs are accepted in any case, a missing or null
//! `user` means the source system made the change. Every way an event can be wrong
//! is its own [`EventError`] variant naming the field, so an operator reading the
//! dead-letter queue knows what the publisher got wrong.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::time::Timestamp;

/// One change event as a domain service published it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per published event; a redelivery carries the same id, which makes
    /// activity ids deterministic.
    pub id: Uuid,
    /// e.g. `PersonUpdatedEvent`; looked up in the [`crate::mapping::Mapping`].
    pub event_type: String,
    /// e.g. `Person`; stored on the activity for the frontend.
    pub source_domain: String,
    /// e.g. `PersonAPI`; the author when no user is given.
    pub source_system: String,
    /// e.g. `v1`; kept for diagnostics only.
    pub version: Option<String>,
    /// Ties the event to the request that caused it; carried into logs.
    pub correlation_id: Option<Uuid>,
    /// When the change happened, in UTC.
    pub date_time: Timestamp,
    /// Who made the change; `None` when the publisher sent no user.
    pub user: Option<User>,
    /// The entity that changed: the activity's target.
    pub entity_id: Uuid,
    /// Finance events only: the tenure or asset a transaction belongs to.
    pub entity_target_id: Option<Uuid>,
    /// The entity before the change, if any.
    pub old_data: Option<Value>,
    /// The entity after the change, if any.
    pub new_data: Option<Value>,
}

impl Event {
    /// A SHA-256 digest (hex) of everything the event says, independent of how it
    /// was formatted, of key order and of fields this service does not read. Two
    /// deliveries of one event have the same digest; an event that reuses another's
    /// id with other content does not.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        // The fields by reference, so the event's data is hashed where it lies,
        // not copied first (this runs for every event).
        let user = self.user.as_ref().map(|u| (&u.name, &u.email));
        let head = (
            &self.id,
            &self.event_type,
            &self.source_domain,
            &self.source_system,
            &self.version,
            &self.correlation_id,
            self.date_time.to_table_string(),
            user,
            &self.entity_id,
            &self.entity_target_id,
        );
        // Serialising plain fields to JSON cannot fail.
        let mut canonical = serde_json::to_string(&head).unwrap_or_default();
        // One array of all twelve fields: the data go inside the head's brackets.
        canonical.pop();
        for data in [&self.old_data, &self.new_data] {
            canonical.push(',');
            match data {
                Some(v) => write_canonical(v, &mut canonical),
                None => canonical.push_str("null"),
            }
        }
        canonical.push(']');
        let hash = Sha256::digest(canonical.as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// JSON with every object's keys in sorted order, so equal values write equal text
/// whatever order they arrived in.
pub(crate) fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The person who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Display name; empty when the publisher sent none.
    pub name: String,
    /// E-mail address; personal data, never logged.
    pub email: String,
}

/// Why a message body is not a usable event. Each names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not JSON at all.
    #[error("message body is not JSON: {detail}")]
    NotJson {
        /// The JSON parser's own description, with line and column.
        detail: String,
    },
    /// A field the listener cannot do without is absent or null.
    #[error("required field `{name}` is missing")]
    MissingField {
        /// Field name as published (camelCase, JSON Pointer for nested fields).
        name: &'static str,
    },
    /// A field is present but not a GUID.
    #[error("field `{name}` is not a GUID")]
    BadGuid {
        /// Field name as published.
        name: &'static str,
    },
    /// A field is present but not an ISO 8601 date-time.
    #[error("field `{name}` is not a date-time: {reason}")]
    BadDate {
        /// Field name as published.
        name: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("field `{name}` should be {expected}")]
    WrongType {
        /// Field name as published (`(body)` for the whole message).
        name: &'static str,
        /// What JSON type was expected, e.g. "a string".
        expected: &'static str,
    },
    /// A field is present but its value is not one this service accepts.
    #[error("field `{name}` should be {expected}")]
    Invalid {
        /// Field name as posted.
        name: &'static str,
        /// What would be accepted.
        expected: String,
    },
    /// A posted activity has a field this service does not read.
    #[error("field `{name}` is not one this service reads; an activity has {known}")]
    UnknownField {
        /// The field as posted, cut to 100 characters.
        name: String,
        /// The fields an activity may have.
        known: &'static str,
    },
}

impl EventError {
    /// A short class name for logs and metrics; never contains event data.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotJson { .. } => "not_json",
            Self::MissingField { .. } => "missing_field",
            Self::BadGuid { .. } => "bad_guid",
            Self::BadDate { .. } => "bad_date",
            Self::WrongType { .. } => "wrong_type",
            Self::Invalid { .. } => "invalid",
            Self::UnknownField { .. } => "unknown_field",
        }
    }
}

pub(crate) fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

pub(crate) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, EventError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EventError::WrongType {
            name,
            expected: "a string",
        }),
    }
}

pub(crate) fn req_str<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, EventError> {
    opt_str(obj, name)?.ok_or(EventError::MissingField { name })
}

pub(crate) fn opt_guid(
    obj: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<Uuid>, EventError> {
    opt_str(obj, name)?
        .map(|s| parse_guid(s).ok_or(EventError::BadGuid { name }))
        .transpose()
}

pub(crate) fn req_guid(obj: &Map<String, Value>, name: &'static str) -> Result<Uuid, EventError> {
    opt_guid(obj, name)?.ok_or(EventError::MissingField { name })
}

/// Parses a GUID in any case, hyphenated or not, optionally in braces (.NET's "B" format).
pub fn parse_guid(s: &str) -> Option<Uuid> {
    let s = s.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(s);
    if s.len() != 32 && s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

impl Event {
    /// Parses a message body (the SNS message, delivered raw to SQS).
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| EventError::NotJson {
            detail: e.to_string(),
        })?;
        Self::from_value(value)
    }

    /// Builds an event from an already parsed JSON value.
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let Value::Object(mut obj) = value else {
            return Err(EventError::WrongType {
                name: "(body)",
                expected: "a JSON object",
            });
        };
        let id = req_guid(&obj, "id")?;
        let event_type = req_str(&obj, "eventType")?.to_owned();
        if event_type.trim().is_empty() {
            return Err(EventError::MissingField { name: "eventType" });
        }
        let source_domain = req_str(&obj, "sourceDomain")?.to_owned();
        let source_system = req_str(&obj, "sourceSystem")?.to_owned();
        let version = opt_str(&obj, "version")?.map(str::to_owned);
        let correlation_id = opt_guid(&obj, "correlationId")?;
        let date_time =
            Timestamp::parse(req_str(&obj, "dateTime")?).map_err(|e| EventError::BadDate {
                name: "dateTime",
                reason: e.reason,
            })?;
        let user = match field(&obj, "user") {
            None => None,
            Some(Value::Object(u)) => Some(User {
                name: opt_str(u, "name")
                    .map_err(|_| EventError::WrongType {
                        name: "user/name",
                        expected: "a string",
                    })?
                    .unwrap_or_default()
                    .to_owned(),
                email: opt_str(u, "email")
                    .map_err(|_| EventError::WrongType {
                        name: "user/email",
                        expected: "a string",
                    })?
                    .unwrap_or_default()
                    .to_owned(),
            }),
            Some(_) => {
                return Err(EventError::WrongType {
                    name: "user",
                    expected: "an object with name and email",
                });
            }
        };
        let entity_id = req_guid(&obj, "entityId")?;
        let entity_target_id = opt_guid(&obj, "entityTargetId")?;
        let (old_data, new_data) = match obj.remove("eventData") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(mut d)) => (
                d.remove("oldData").filter(|v| !v.is_null()),
                d.remove("newData").filter(|v| !v.is_null()),
            ),
            Some(_) => {
                return Err(EventError::WrongType {
                    name: "eventData",
                    expected: "an object with oldData and newData",
                });
            }
        };
        Ok(Self {
            id,
            event_type,
            source_domain,
            source_system,
            version,
            correlation_id,
            date_time,
            user,
            entity_id,
            entity_target_id,
            old_data,
            new_data,
        })
    }
}

/// The few fields worth logging about a body that may not parse: best effort,
/// never personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLabels {
    /// `id`, if it is a string.
    pub event_id: Option<String>,
    /// `eventType`, if it is a string.
    pub event_type: Option<String>,
    /// `correlationId`, if it is a string.
    pub correlation_id: Option<String>,
}

impl EventLabels {
    /// The labels of an event that parsed, cut like [`EventLabels::peek`]'s.
    pub fn of(event: &Event) -> Self {
        Self {
            event_id: Some(event.id.to_string()),
            event_type: Some(event.event_type.chars().take(100).collect()),
            correlation_id: event.correlation_id.map(|c| c.to_string()),
        }
    }

    /// Picks the labels out of a body without failing; anything odd is left out.
    /// Values are cut to 100 characters so a hostile body cannot flood the logs.
    pub fn peek(body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Peek {
            id: Option<Value>,
            event_type: Option<Value>,
            correlation_id: Option<Value>,
        }
        let short = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some(s.chars().take(100).collect()),
            _ => None,
        };
        match serde_json::from_slice::<Peek>(body) {
            Ok(p) => Self {
                event_id: short(p.id),
                event_type: short(p.event_type),
                correlation_id: short(p.correlation_id),
            },
            Err(_) => Self::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
          "id": "3f0b8f5e-0c7c-4a3e-9b1e-2f1d7f6a9c11",
          "eventType": "PersonUpdatedEvent",
          "sourceDomain": "Person",
          "sourceSystem": "PersonAPI",
          "version": "v1",
          "correlationId": "9a1c3b7e-5d2f-4e8a-b6c4-0e1f2a3b4c5d",
          "dateTime": "2021-09-14T10:02:31.5738462Z",
          "user": { "name": "Paul Fox", "email": "paul.fox@example.gov.uk" },
          "entityId": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7",
          "eventData": {
            "oldData": { "id": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7", "firstName": "Susan", "title": "Ms" },
            "newData": { "id": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7", "firstName": "Susanna", "title": "Ms" }
          }
        })
    }

    fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Result<Event, EventError> {
        let mut v = sample();
        f(v.as_object_mut().unwrap());
        Event::parse(v.to_string().as_bytes())
    }

    #[test]
    fn contract_example_parses_with_every_field() {
        let e = Event::parse(serde_json::to_string_pretty(&sample()).unwrap().as_bytes()).unwrap();
        assert_eq!(e.event_type, "PersonUpdatedEvent");
        assert_eq!(
            e.entity_id.to_string(),
            "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7"
        );
        assert_eq!(
            e.date_time.to_table_string(),
            "2021-09-14T10:02:31.5738462Z"
        );
        assert_eq!(e.user.unwrap().name, "Paul Fox");
        assert_eq!(e.new_data.unwrap()["firstName"], "Susanna");
        assert_eq!(e.entity_target_id, None);
    }

    #[test]
    fn unknown_fields_are_ignored_and_guids_accepted_in_any_case() {
        let e = with(|o| {
            o.insert("somethingNew".into(), json!({"deep": [1, 2]}));
            o.insert(
                "entityId".into(),
                json!("6F22E9AE-3E8A-4E0E-AF46-DB02EB87F8E7"),
            );
        })
        .unwrap();
        assert_eq!(
            e.entity_id.to_string(),
            "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7"
        );
    }

    #[test]
    fn missing_or_null_user_is_allowed() {
        assert_eq!(
            with(|o| {
                o.remove("user");
            })
            .unwrap()
            .user,
            None
        );
        assert_eq!(
            with(|o| {
                o.insert("user".into(), Value::Null);
            })
            .unwrap()
            .user,
            None
        );
    }

    #[test]
    fn not_json_is_its_own_error() {
        assert!(matches!(
            Event::parse(b"{not json"),
            Err(EventError::NotJson { .. })
        ));
        assert!(matches!(Event::parse(b""), Err(EventError::NotJson { .. })));
    }

    #[test]
    fn body_that_is_not_an_object_is_a_wrong_type() {
        assert_eq!(
            Event::parse(b"[1,2]").unwrap_err(),
            EventError::WrongType {
                name: "(body)",
                expected: "a JSON object"
            }
        );
    }

    #[test]
    fn each_required_field_missing_is_named() {
        for name in [
            "id",
            "eventType",
            "sourceDomain",
            "sourceSystem",
            "dateTime",
            "entityId",
        ] {
            assert_eq!(
                with(|o| {
                    o.remove(name);
                })
                .unwrap_err(),
                EventError::MissingField { name }
            );
            assert_eq!(
                with(|o| {
                    o.insert(name.into(), Value::Null);
                })
                .unwrap_err(),
                EventError::MissingField { name }
            );
        }
    }

    #[test]
    fn bad_guids_are_named() {
        for name in ["id", "entityId", "correlationId", "entityTargetId"] {
            assert_eq!(
                with(|o| {
                    o.insert(name.into(), json!("not-a-guid"));
                })
                .unwrap_err(),
                EventError::BadGuid { name }
            );
        }
        assert_eq!(
            with(|o| {
                o.insert("entityId".into(), json!(""));
            })
            .unwrap_err(),
            EventError::BadGuid { name: "entityId" }
        );
    }

    #[test]
    fn bad_date_is_named() {
        let err = with(|o| {
            o.insert("dateTime".into(), json!("19/02/2021"));
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                EventError::BadDate {
                    name: "dateTime",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(
            with(|o| {
                o.insert("entityId".into(), json!(42));
            })
            .unwrap_err(),
            EventError::WrongType {
                name: "entityId",
                expected: "a string"
            }
        );
        assert!(matches!(
            with(|o| {
                o.insert("user".into(), json!("Paul"));
            })
            .unwrap_err(),
            EventError::WrongType { name: "user", .. }
        ));
        assert!(matches!(
            with(|o| {
                o.insert("eventData".into(), json!([1]));
            })
            .unwrap_err(),
            EventError::WrongType {
                name: "eventData",
                ..
            }
        ));
    }

    #[test]
    fn labels_are_peeked_from_bodies_that_fail_to_parse() {
        let l = EventLabels::peek(br#"{"id":"x","eventType":"PersonUpdatedEvent","dateTime":5}"#);
        assert_eq!(l.event_type.as_deref(), Some("PersonUpdatedEvent"));
        assert_eq!(l.event_id.as_deref(), Some("x"));
        assert_eq!(EventLabels::peek(b"garbage"), EventLabels::default());
    }

    #[test]
    fn the_digest_ignores_formatting_key_order_and_unread_fields() {
        let compact = Event::parse(sample().to_string().as_bytes()).unwrap();
        let mut reordered = serde_json::to_string_pretty(&sample()).unwrap();
        reordered = reordered.replacen('{', "{\"someNewField\": [1, 2],", 1);
        let pretty = Event::parse(reordered.as_bytes()).unwrap();
        assert_eq!(compact.digest(), pretty.digest());
        assert_eq!(compact.digest().len(), 64);
    }

    /// Worked out apart from this code: SHA-256 of
    /// `["3f0b8f5e-…",…,null,{"firstName":"Susan","id":"6f22e9ae-…","title":"Ms"},{…}]`.
    const PINNED_DIGEST: &str = "e9572171926efe23c9328aef1341bc375bb3282ac0d1972fc9b4a12584eb8ec3";

    #[test]
    fn the_digest_of_an_event_stays_what_records_already_store() {
        // Records keep their event's digest for good: the text it is taken of
        // must never drift. This value is the SHA-256 of the canonical array of
        // the sample's twelve fields.
        let e = Event::parse(sample().to_string().as_bytes()).unwrap();
        assert_eq!(e.digest(), PINNED_DIGEST);
    }

    #[test]
    fn the_digest_changes_with_anything_the_event_says() {
        let base = Event::parse(sample().to_string().as_bytes())
            .unwrap()
            .digest();
        let changed: [fn(&mut Map<String, Value>); 4] = [
            |m| m["eventData"]["newData"]["firstName"] = json!("Mallory"),
            |m| m["user"]["name"] = json!("Someone Else"),
            |m| m["dateTime"] = json!("2021-09-14T10:02:32Z"),
            |m| m["eventType"] = json!("PersonCreatedEvent"),
        ];
        for change in changed {
            let other = with(change).unwrap().digest();
            assert_ne!(other, base);
        }
    }
}
