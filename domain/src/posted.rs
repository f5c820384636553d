//! Activities posted over HTTP (`POST /api/v1/activityhistory`), and the queue
//! message that carries one to the listener, which records it like an event.
//!
//! The API validates every posted item with [`PostedActivity::from_value`] and
//! queues it with [`PostedActivity::to_message`]; the listener parses the message
//! back with the same function, so both apply one set of rules. The message looks
//! enough like an event (`id`, `eventType`, `correlationId` at the top) that the
//! dead-letter tools label it like one.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::activity::{self, Activity, Author, Provenance};
use crate::event::{self, Event, EventError, opt_guid, opt_str, req_guid, req_str};
use crate::mapping::{ActivityType, Mapping};
use crate::time::Timestamp;

/// The `eventType` of a queue message carrying a posted activity. Reserved: no
/// domain event may use it.
pub const POSTED_EVENT_TYPE: &str = "ActivityPosted";

/// The `sourceSystem` of a posted activity's record.
pub const POSTED_SOURCE_SYSTEM: &str = "ActivityHistoryAPI";

/// The `sourceDomain` of a posted activity that names none.
pub const DEFAULT_SOURCE_DOMAIN: &str = "ActivityHistory";

/// Longest retention a posted activity may ask for, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// How far ahead of the clock a posted `createdAt` may be: clocks differ a little,
/// a history of things that have not happened yet is an error.
const FUTURE_SLACK_SECS: i64 = 3600;

/// 1900-01-01T00:00:00Z in Unix seconds: no housing record is older.
const YEAR_1900: i64 = -2_208_988_800;

const FIELDS: [&str; 10] = [
    "id",
    "type",
    "targetType",
    "targetId",
    "createdAt",
    "timetoLiveForRecord",
    "oldData",
    "newData",
    "authorDetails",
    "sourceDomain",
];

const KNOWN: &str = "id, type, targetType, targetId, createdAt, timetoLiveForRecord, oldData, newData, authorDetails and sourceDomain";

/// One activity as a writer posted it, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedActivity {
    /// The id the record keeps.
    pub id: Uuid,
    /// What happened.
    pub activity_type: ActivityType,
    /// A target type the mapping records.
    pub target_type: String,
    /// The entity whose history the activity joins.
    pub target_id: Uuid,
    /// When it happened.
    pub created_at: Timestamp,
    /// Days to keep the record; `None`: the target type's retention.
    pub retention_days: Option<u32>,
    /// The entity before, if any.
    pub old_data: Option<Value>,
    /// The entity after, if any.
    pub new_data: Option<Value>,
    /// Who made the change.
    pub author: Author,
    /// The domain the activity belongs to.
    pub source_domain: String,
}

/// The key the API signs posted activities' messages with and the listener checks
/// them with (`ACTIVITY_INGEST_KEY`): the queue also takes messages from every
/// domain topic, so only a signature tells the API's messages apart.
#[derive(Clone)]
pub struct IngestKey(Vec<u8>);

impl std::fmt::Debug for IngestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestKey(<redacted>)")
    }
}

/// The shortest ingest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

impl IngestKey {
    /// A key of at least [`MIN_KEY_BYTES`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (bytes.len() >= MIN_KEY_BYTES).then_some(Self(bytes))
    }

    fn mac(&self, digest: &str, posting: &Posting) -> HmacSha256 {
        use hmac::Mac;
        // Any key length is valid for HMAC.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let correlation = posting
            .correlation_id
            .map(|c| c.to_string())
            .unwrap_or_default();
        let signed = serde_json::to_string(&(POSTED_EVENT_TYPE, correlation, &posting.posted_by));
        m.update(signed.unwrap_or_default().as_bytes());
        m.update(digest.as_bytes());
        m
    }

    /// The signature of the message of the activity whose [`PostedActivity::digest`]
    /// is `digest`, hex.
    pub fn sign(&self, digest: &str, posting: &Posting) -> String {
        use hmac::Mac;
        let tag = self.mac(digest, posting).finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `signature` is this key's, compared in constant time.
    fn verify(&self, digest: &str, posting: &Posting, signature: &str) -> bool {
        use hmac::Mac;
        let Some(bytes) = hex_bytes(signature) else {
            return false;
        };
        self.mac(digest, posting).verify_slice(&bytes).is_ok()
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Who posted an activity, carried in its message and signed with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Posting {
    /// A new id per post (not the caller's `x-correlation-id`, which anyone may
    /// set): on the records and on the post's access-log line.
    pub correlation_id: Option<Uuid>,
    /// The poster's `sub` claim, kept in the record's `sourceSystem`.
    pub posted_by: String,
}

/// A queue message: an event, or an activity posted over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A domain service's change event.
    Event(Event),
    /// A posted activity, with who posted it and its [`PostedActivity::digest`]
    /// (worked out once, to check the signature).
    Posted(PostedActivity, Posting, String),
}

impl Inbound {
    /// Parses a queue message body. A posted activity's message is accepted only
    /// when signed with `key`; without a key none is.
    pub fn parse(body: &[u8], key: Option<&IngestKey>) -> Result<Self, EventError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| EventError::NotJson {
            detail: e.to_string(),
        })?;
        let mut envelope = match value {
            Value::Object(o)
                if o.get("eventType").and_then(Value::as_str) == Some(POSTED_EVENT_TYPE) =>
            {
                o
            }
            other => return Event::from_value(other).map(Self::Event),
        };
        let posting = Posting {
            correlation_id: opt_guid(&envelope, "correlationId")?,
            posted_by: opt_str(&envelope, "postedBy")?
                .unwrap_or_default()
                .to_owned(),
        };
        let activity = envelope
            .remove("activity")
            .ok_or(EventError::MissingField { name: "activity" })?;
        let signature = opt_str(&envelope, "signature")?.unwrap_or_default();
        // Queued by the API moments ago: "now" only bounds how far ahead it may be.
        let posted = PostedActivity::from_value(activity, None, Timestamp::now())?;
        let digest = posted.digest();
        if !key.is_some_and(|k| k.verify(&digest, &posting, signature)) {
            return Err(invalid(
                "signature",
                "the signature of this service's API (ACTIVITY_INGEST_KEY): only the API may queue posted activities",
            ));
        }
        Ok(Self::Posted(posted, posting, digest))
    }

    /// The labels for the message's log lines.
    pub fn labels(&self) -> event::EventLabels {
        match self {
            Self::Event(e) => event::EventLabels::of(e),
            Self::Posted(p, posting, _) => event::EventLabels {
                event_id: Some(p.id.to_string()),
                event_type: Some(POSTED_EVENT_TYPE.to_owned()),
                correlation_id: posting.correlation_id.map(|c| c.to_string()),
            },
        }
    }
}

fn invalid(name: &'static str, expected: impl Into<String>) -> EventError {
    EventError::Invalid {
        name,
        expected: expected.into(),
    }
}

/// An object or null: the data fields.
fn data(obj: &mut Map<String, Value>, name: &'static str) -> Result<Option<Value>, EventError> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(EventError::WrongType {
            name,
            expected: "an object or null",
        }),
    }
}

fn author(obj: &Map<String, Value>) -> Result<Author, EventError> {
    let details = match event::field(obj, "authorDetails") {
        None => {
            return Err(EventError::MissingField {
                name: "authorDetails",
            });
        }
        Some(Value::Object(d)) => d,
        Some(_) => {
            return Err(EventError::WrongType {
                name: "authorDetails",
                expected: "an object with fullName and email",
            });
        }
    };
    let name = opt_str(details, "fullName").map_err(|_| EventError::WrongType {
        name: "authorDetails/fullName",
        expected: "a string",
    })?;
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or(EventError::MissingField {
            name: "authorDetails/fullName",
        })?;
    let email = opt_str(details, "email").map_err(|_| EventError::WrongType {
        name: "authorDetails/email",
        expected: "a string",
    })?;
    Ok(Author {
        full_name: name.to_owned(),
        email: email.unwrap_or_default().trim().to_owned(),
    })
}

fn retention(obj: &Map<String, Value>) -> Result<Option<u32>, EventError> {
    let expected = || {
        format!(
            "a whole number of days from 1 to {MAX_RETENTION_DAYS}, or absent for the target type's retention"
        )
    };
    match event::field(obj, "timetoLiveForRecord") {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .filter(|d| (1..=MAX_RETENTION_DAYS).contains(d))
            .map(Some)
            .ok_or_else(|| invalid("timetoLiveForRecord", expected())),
    }
}

fn created_at(obj: &Map<String, Value>, now: Timestamp) -> Result<Timestamp, EventError> {
    let at = Timestamp::parse(req_str(obj, "createdAt")?).map_err(|e| EventError::BadDate {
        name: "createdAt",
        reason: e.reason,
    })?;
    if at.unix_seconds() < YEAR_1900 {
        return Err(invalid("createdAt", "a date-time in or after 1900"));
    }
    if at.unix_seconds() > now.unix_seconds() + FUTURE_SLACK_SECS {
        return Err(invalid(
            "createdAt",
            "a date-time that is not in the future",
        ));
    }
    Ok(at)
}

fn target_type(obj: &Map<String, Value>, mapping: &Mapping) -> Result<String, EventError> {
    let t = req_str(obj, "targetType")?;
    if mapping.records_target_type(t) {
        return Ok(t.to_owned());
    }
    Err(unknown_target_type(mapping))
}

fn unknown_target_type(mapping: &Mapping) -> EventError {
    let list: Vec<&str> = mapping.target_types().into_iter().collect();
    invalid(
        "targetType",
        format!(
            "one of the target types this service records: {}",
            list.join(", ")
        ),
    )
}

/// Which data an activity type needs: a create or migrate sets the entity, a
/// delete removes it, an update is compared old against new, an end records the
/// entity as it ended.
fn check_data(
    activity: ActivityType,
    old: &Option<Value>,
    new: &Option<Value>,
) -> Result<(), EventError> {
    let (needs_old, needs_new) = match activity {
        ActivityType::Create | ActivityType::Migrate | ActivityType::End => (false, true),
        ActivityType::Delete => (true, false),
        ActivityType::Update => (true, true),
    };
    let what = |side: &'static str| {
        invalid(
            side,
            format!("an object: a `{}` activity needs it", activity.as_str()),
        )
    };
    if needs_old && old.is_none() {
        return Err(what("oldData"));
    }
    if needs_new && new.is_none() {
        return Err(what("newData"));
    }
    Ok(())
}

impl PostedActivity {
    /// Validates one posted activity. `mapping` decides the target types that may
    /// be posted (`None` skips that check: the listener rechecks with its own
    /// mapping in [`PostedActivity::into_record`]); `now` bounds `createdAt`.
    /// `id` and `createdAt` are required here: the API fills them in first.
    pub fn from_value(
        value: Value,
        mapping: Option<&Mapping>,
        now: Timestamp,
    ) -> Result<Self, EventError> {
        let Value::Object(mut obj) = value else {
            return Err(EventError::WrongType {
                name: "(activity)",
                expected: "a JSON object",
            });
        };
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(EventError::UnknownField {
                name: unknown.chars().take(100).collect(),
                known: KNOWN,
            });
        }
        let id = req_guid(&obj, "id")?;
        let activity_type = ActivityType::parse(req_str(&obj, "type")?)
            .ok_or_else(|| invalid("type", "one of create, update, delete, migrate, end"))?;
        let target_type = match mapping {
            Some(m) => target_type(&obj, m)?,
            None => req_str(&obj, "targetType")?.to_owned(),
        };
        let target_id = req_guid(&obj, "targetId")?;
        let created_at = created_at(&obj, now)?;
        let retention_days = retention(&obj)?;
        let author = author(&obj)?;
        let source_domain = opt_str(&obj, "sourceDomain")?
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_SOURCE_DOMAIN)
            .to_owned();
        let old_data = data(&mut obj, "oldData")?;
        let new_data = data(&mut obj, "newData")?;
        check_data(activity_type, &old_data, &new_data)?;
        Ok(Self {
            id,
            activity_type,
            target_type,
            target_id,
            created_at,
            retention_days,
            old_data,
            new_data,
            author,
            source_domain,
        })
    }

    /// The activity as JSON, every field filled in (the inverse of [`from_value`]).
    ///
    /// [`from_value`]: PostedActivity::from_value
    pub fn to_value(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.activity_type.as_str(),
            "targetType": self.target_type,
            "targetId": self.target_id,
            "createdAt": self.created_at.to_table_string(),
            "timetoLiveForRecord": self.retention_days,
            "oldData": self.old_data,
            "newData": self.new_data,
            "authorDetails": { "fullName": self.author.full_name, "email": self.author.email },
            "sourceDomain": self.source_domain,
        })
    }

    /// The queue message that asks the listener to record this activity, signed
    /// with `key`; `digest` is [`PostedActivity::digest`], which the caller also
    /// needs (deduplication, the append-only check), so it is worked out once.
    ///
    /// SQS refuses bodies holding U+FFFE or U+FFFF (JSON allows them, and the
    /// serialiser already escapes control characters): they are written as
    /// `\ufffe` and `\uffff`, which read back as the same text.
    pub fn to_message(&self, digest: &str, posting: &Posting, key: &IngestKey) -> String {
        let text = json!({
            "id": self.id,
            "eventType": POSTED_EVENT_TYPE,
            "correlationId": posting.correlation_id,
            "postedBy": posting.posted_by,
            "activity": self.to_value(),
            "signature": key.sign(digest, posting),
        })
        .to_string();
        if !text.contains(['\u{fffe}', '\u{ffff}']) {
            return text;
        }
        text.replace('\u{fffe}', "\\ufffe")
            .replace('\u{ffff}', "\\uffff")
    }

    /// A SHA-256 digest (hex) of everything the activity says, like
    /// [`Event::digest`]: posting the same activity again rewrites nothing, another
    /// activity posted with the same id conflicts.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut canonical = String::from(POSTED_EVENT_TYPE);
        event::write_canonical(&self.to_value(), &mut canonical);
        let hash = Sha256::digest(canonical.as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The record the listener writes: the same reduction, masks and retention
    /// as an event's, with the id it was posted with; `digest` is
    /// [`PostedActivity::digest`], stored as the record's `eventDigest`.
    pub fn into_record(
        self,
        mapping: &Mapping,
        posting: Posting,
        digest: String,
    ) -> Result<Activity, EventError> {
        if !mapping.records_target_type(&self.target_type) {
            // The listener's mapping may differ from the API's.
            return Err(unknown_target_type(mapping));
        }
        let event_digest = Some(digest);
        let (old_data, new_data, changes) =
            activity::reduce(self.activity_type, self.old_data, self.new_data);
        let days = self
            .retention_days
            .or_else(|| mapping.retention_days(&self.target_type));
        let mut a = Activity {
            id: self.id,
            target_id: self.target_id,
            activity_type: self.activity_type,
            created_at: self.created_at,
            old_data,
            new_data,
            changes: Some(changes),
            author: self.author,
            source_domain: self.source_domain,
            ttl: days.map(|d| self.created_at.plus_days(d).unix_seconds()),
            provenance: Some(Provenance {
                event_id: self.id,
                event_type: POSTED_EVENT_TYPE.to_owned(),
                correlation_id: posting.correlation_id,
                source_system: match posting.posted_by.trim() {
                    "" => POSTED_SOURCE_SYSTEM.to_owned(),
                    by => format!("{POSTED_SOURCE_SYSTEM} ({by})"),
                },
                event_digest,
            }),
            truncated: false,
            target_type: self.target_type,
        };
        activity::mask(&mut a, mapping);
        Ok(a)
    }
}

/// Fills in what a writer may leave out and the listener needs fixed: a new `id`
/// and `createdAt` = `now`, so every redelivery of the message records the same.
pub fn fill_defaults(value: &mut Value, now: Timestamp) {
    if let Value::Object(obj) = value {
        if event::field(obj, "id").is_none() {
            obj.insert("id".into(), Value::String(Uuid::new_v4().to_string()));
        }
        if event::field(obj, "createdAt").is_none() {
            obj.insert("createdAt".into(), Value::String(now.to_table_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e6";
    const TARGET: &str = "0a0b0c0d-1111-2222-3333-444455556666";

    fn posted() -> Value {
        json!({
            "id": ID, "type": "update", "targetType": "person", "targetId": TARGET,
            "createdAt": "2021-02-19T15:12:00Z",
            "oldData": { "firstName": "Susan", "title": "Ms" },
            "newData": { "firstName": "Susanna", "title": "Ms" },
            "authorDetails": { "fullName": "Ann Officer", "email": "ann@example.gov.uk" }
        })
    }

    fn key() -> IngestKey {
        IngestKey::new(*b"an-ingest-key-of-32-bytes-or-mor").unwrap()
    }

    fn parse(v: Value) -> Result<PostedActivity, EventError> {
        PostedActivity::from_value(v, Some(&Mapping::default()), Timestamp::now())
    }

    fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Result<PostedActivity, EventError> {
        let mut v = posted();
        f(v.as_object_mut().unwrap());
        parse(v)
    }

    fn field_named(r: Result<PostedActivity, EventError>) -> String {
        let e = r.unwrap_err();
        let text = e.to_string();
        text.split('`').nth(1).unwrap_or(&text).to_owned()
    }

    #[test]
    fn a_posted_activity_reads_as_posted_with_the_documented_defaults() {
        let p = parse(posted()).unwrap();
        assert_eq!(p.id.to_string(), ID);
        assert_eq!(p.activity_type, ActivityType::Update);
        assert_eq!(
            p.created_at.to_table_string(),
            "2021-02-19T15:12:00.0000000Z"
        );
        assert_eq!(p.author.full_name, "Ann Officer");
        assert_eq!(p.source_domain, "ActivityHistory");
        assert_eq!(p.retention_days, None);
        assert_eq!(
            parse(p.to_value()).unwrap(),
            p,
            "to_value is read back as itself"
        );
    }

    #[test]
    fn each_invalid_field_is_named() {
        // (the field named, the field changed, its new value; `None` removes it)
        let cases = [
            ("type", "type", Some(json!("edit"))),
            ("targetId", "targetId", Some(json!("12"))),
            ("id", "id", Some(json!("nope"))),
            ("authorDetails", "authorDetails", None),
            (
                "authorDetails/fullName",
                "authorDetails",
                Some(json!({"email": "a@b"})),
            ),
            ("targetType", "targetType", Some(json!("tenancy"))),
            ("createdAt", "createdAt", Some(json!("19/02/2021"))),
            (
                "createdAt",
                "createdAt",
                Some(json!("2999-01-01T00:00:00Z")),
            ),
            (
                "createdAt",
                "createdAt",
                Some(json!("1850-01-01T00:00:00Z")),
            ),
            ("timetoLiveForRecord", "timetoLiveForRecord", Some(json!(0))),
            (
                "timetoLiveForRecord",
                "timetoLiveForRecord",
                Some(json!(-3)),
            ),
            ("oldData", "oldData", None),
            ("newData", "newData", Some(json!([1]))),
            ("timeToLive", "timeToLive", Some(json!(3))),
        ];
        for (named, field, value) in cases {
            let changed = with(|o| match value {
                Some(v) => drop(o.insert(field.into(), v)),
                None => drop(o.remove(field)),
            });
            assert_eq!(field_named(changed), named, "{field}");
        }
    }

    #[test]
    fn an_unknown_target_type_is_refused_with_the_ones_that_exist() {
        let e = with(|o| drop(o.insert("targetType".into(), json!("tenancy")))).unwrap_err();
        assert!(e.to_string().contains("tenure"), "{e}");
    }

    #[test]
    fn each_type_needs_its_own_side_of_the_data() {
        let create = json!({"id": ID, "type": "create", "targetType": "tenure", "targetId": TARGET,
            "createdAt": "2021-02-19T15:12:00Z", "newData": {"a": 1},
            "authorDetails": {"fullName": "A"}});
        assert!(parse(create.clone()).is_ok());
        let mut delete = create;
        delete["type"] = json!("delete");
        assert_eq!(field_named(parse(delete)), "oldData");
    }

    #[test]
    fn the_record_keeps_the_posted_id_and_only_what_an_update_changed() {
        let mapping = Mapping::default();
        let p = parse(posted()).unwrap();
        let digest = p.digest();
        let correlation = Uuid::new_v4();
        let posting = Posting {
            correlation_id: Some(correlation),
            posted_by: "migration-team".into(),
        };
        let a = p.into_record(&mapping, posting, digest.clone()).unwrap();
        assert_eq!(a.id.to_string(), ID);
        assert_eq!(a.target_id.to_string(), TARGET);
        assert_eq!(a.old_data, Some(json!({"firstName": "Susan"})));
        assert_eq!(a.new_data, Some(json!({"firstName": "Susanna"})));
        assert_eq!(a.author.email, "ann@example.gov.uk");
        let prov = a.provenance.unwrap();
        assert_eq!(prov.event_type, "ActivityPosted");
        assert_eq!(prov.correlation_id, Some(correlation));
        assert_eq!(prov.source_system, "ActivityHistoryAPI (migration-team)");
        assert_eq!(prov.event_digest, Some(digest));
    }

    #[test]
    fn retention_comes_from_the_post_or_else_the_target_type_and_masks_apply() {
        let mut mapping = Mapping::default();
        mapping
            .overlay_str(
                "[masks]\nperson = [\"firstName\"]\n[retention]\nperson = 10\n",
                false,
            )
            .unwrap();
        let record = |v: Value| {
            let p = parse(v).unwrap();
            let digest = p.digest();
            p.into_record(&mapping, Posting::default(), digest).unwrap()
        };
        let a = record(posted());
        let created = Timestamp::parse("2021-02-19T15:12:00Z").unwrap();
        assert_eq!(a.ttl, Some(created.plus_days(10).unix_seconds()));
        assert_ne!(a.new_data, Some(json!({"firstName": "Susanna"})), "masked");
        let mut v = posted();
        v["timetoLiveForRecord"] = json!(365);
        let a = record(v);
        assert_eq!(a.ttl, Some(created.plus_days(365).unix_seconds()));
    }

    #[test]
    fn the_digest_tells_a_repeat_from_another_activity_with_the_same_id() {
        let p = parse(posted()).unwrap();
        assert_eq!(p.digest(), parse(posted()).unwrap().digest());
        let mut other = posted();
        other["newData"]["firstName"] = json!("Sue");
        assert_ne!(p.digest(), parse(other).unwrap().digest());
    }

    #[test]
    fn a_queue_message_is_told_apart_from_an_event_and_read_back() {
        let p = parse(posted()).unwrap();
        let correlation = Uuid::new_v4();
        let posting = Posting {
            correlation_id: Some(correlation),
            posted_by: "writer".into(),
        };
        let digest = p.digest();
        let message = p.to_message(&digest, &posting, &key());
        assert_eq!(
            Inbound::parse(message.as_bytes(), Some(&key())).unwrap(),
            Inbound::Posted(p, posting, digest)
        );
        let labels = event::EventLabels::peek(message.as_bytes());
        assert_eq!(labels.event_id.as_deref(), Some(ID));
        assert_eq!(labels.event_type.as_deref(), Some("ActivityPosted"));
        let event = json!({
            "id": ID, "eventType": "PersonUpdatedEvent", "sourceDomain": "Person",
            "sourceSystem": "PersonAPI", "dateTime": "2021-09-14T10:02:31Z", "entityId": TARGET,
        });
        assert!(matches!(
            Inbound::parse(event.to_string().as_bytes(), None).unwrap(),
            Inbound::Event(_)
        ));
    }

    #[test]
    fn text_sqs_refuses_is_escaped_in_the_message_and_read_back_unchanged() {
        let mut v = posted();
        v["newData"]["firstName"] = json!("Sue\u{ffff}\u{fffe}\u{1}");
        let p = parse(v).unwrap();
        let digest = p.digest();
        let message = p.to_message(&digest, &Posting::default(), &key());
        assert!(
            !message.contains(['\u{fffe}', '\u{ffff}', '\u{1}']),
            "{message}"
        );
        assert_eq!(
            Inbound::parse(message.as_bytes(), Some(&key())).unwrap(),
            Inbound::Posted(p, Posting::default(), digest)
        );
    }

    #[test]
    fn only_a_message_signed_with_the_key_is_read_as_posted() {
        let p = parse(posted()).unwrap();
        let message = p.to_message(&p.digest(), &Posting::default(), &key());
        let other = IngestKey::new([7u8; 32]).unwrap();
        for refused in [None, Some(&other)] {
            let e = Inbound::parse(message.as_bytes(), refused).unwrap_err();
            assert!(e.to_string().contains("`signature`"), "{e}");
        }
        let forged = message.replace("Susanna", "Mallory");
        assert!(
            Inbound::parse(forged.as_bytes(), Some(&key())).is_err(),
            "changed after signing"
        );
        let unsigned = message.replace("\"signature\"", "\"signed\"");
        let other_poster = message.replace("\"postedBy\":\"\"", "\"postedBy\":\"someone\"");
        assert_ne!(other_poster, message);
        assert!(
            Inbound::parse(other_poster.as_bytes(), Some(&key())).is_err(),
            "the poster is signed"
        );
        assert!(Inbound::parse(unsigned.as_bytes(), Some(&key())).is_err());
        assert!(
            IngestKey::new(vec![1u8; 31]).is_none(),
            "short keys are refused"
        );
    }

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let now = Timestamp::parse("2024-05-01T10:00:00Z").unwrap();
        let mut v = posted();
        v.as_object_mut().unwrap().remove("createdAt");
        v["id"] = Value::Null;
        fill_defaults(&mut v, now);
        let p = parse(v).unwrap();
        assert_eq!(p.created_at, now);
        assert_ne!(p.id.to_string(), ID);
        let mut given = posted();
        fill_defaults(&mut given, now);
        assert_eq!(given, posted());
    }
}
