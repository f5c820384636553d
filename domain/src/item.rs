//! The DynamoDB item codec, compatible both ways with the existing table
//! (docs/contracts.md §3).
//!
//! What we write stays readable by the old reader: lowerCamelCase names,
//! `createdAt` with 7 fraction digits, data as maps (or `NULL`), `authorDetails`
//! as a map and `timetoLiveForRecord` as a number. What the old writer wrote
//! decodes here: no `changes`, no provenance, `NULL` data. New attributes are
//! additive: `ttl`, `changes`, `eventId`, `eventType`, `correlationId`,
//! `sourceSystem`, `eventDigest`, `truncated` and `compressed`.
//!
//! DynamoDB numbers have no integer/float distinction: a `0.0` in event data reads
//! back as `0` (the old writer behaved the same).

use std::collections::HashMap;
use std::io::Read;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::activity::{Activity, Author, Provenance};
use crate::diff::Change;
use crate::event::parse_guid;
use crate::mapping::ActivityType;
use crate::time::Timestamp;

/// A DynamoDB item as the SDK carries it.
pub type Item = HashMap<String, AttributeValue>;

/// An item that cannot be read as an activity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// An attribute is missing or of the wrong DynamoDB type.
    #[error("item attribute does not decode: {0}")]
    Shape(String),
    /// An attribute has a value the activity model cannot hold.
    #[error("item attribute `{name}` has an unusable value")]
    Value {
        /// Attribute name.
        name: &'static str,
    },
    /// The serializer refused a value (e.g. a number DynamoDB cannot store).
    #[error("activity cannot be encoded as an item: {0}")]
    Encode(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Packed {
    old_data: Option<Value>,
    new_data: Option<Value>,
    changes: Option<Vec<Change>>,
}

/// The attribute holding the digest of the event that wrote a record: what makes
/// records append-only (a different event may not rewrite it).
pub const EVENT_DIGEST: &str = "eventDigest";

/// How the data of an activity is laid out in its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Data as DynamoDB maps: what the old reader expects.
    Plain,
    /// Data gzip-compressed into one binary attribute, for records over the size limit.
    Compressed,
}

/// A JSON value as a DynamoDB attribute: objects as maps, arrays as lists,
/// numbers as numbers, null as NULL.
fn attribute(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(attribute).collect()),
        Value::Object(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
        }
    }
}

fn optional(v: Option<&Value>) -> AttributeValue {
    v.map_or(AttributeValue::Null(true), attribute)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn changes_attribute(changes: &[Change]) -> AttributeValue {
    AttributeValue::L(
        changes
            .iter()
            .map(|c| {
                AttributeValue::M(HashMap::from([
                    ("path".to_owned(), s(c.path.as_str())),
                    ("old".to_owned(), attribute(&c.old)),
                    ("new".to_owned(), attribute(&c.new)),
                ]))
            })
            .collect(),
    )
}

/// How deep DynamoDB lets attributes nest (32 levels), less a margin: an
/// activity's data sits inside `oldData`/`newData`, or two levels down in `changes`.
const MAX_NESTING: usize = 30;
/// The magnitudes a DynamoDB number may have (1E-130 to 9.99...E+125).
const NUMBER_RANGE: (f64, f64) = (1e-130, 1e126);

/// Whether DynamoDB would take the activity's data as maps. It refuses, for the
/// whole request it comes in, data nested deeper than 32 levels, numbers outside
/// its range and empty attribute names; such a record is stored compressed, which
/// DynamoDB does not look into.
pub fn storable_as_maps(a: &Activity) -> bool {
    let data = [a.old_data.as_ref(), a.new_data.as_ref()];
    let data_ok = data.into_iter().flatten().all(|v| storable(v, 1));
    let changes = a.changes.iter().flatten();
    data_ok
        && changes
            .flat_map(|c| [&c.old, &c.new])
            .all(|v| storable(v, 3))
}

fn storable(v: &Value, level: usize) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_none_or(|f| {
            let m = f.abs();
            m == 0.0 || (NUMBER_RANGE.0..NUMBER_RANGE.1).contains(&m)
        }),
        Value::Array(items) => level <= MAX_NESTING && items.iter().all(|v| storable(v, level + 1)),
        Value::Object(m) => {
            level <= MAX_NESTING
                && m.iter()
                    .all(|(k, v)| !k.is_empty() && storable(v, level + 1))
        }
        Value::Null | Value::Bool(_) | Value::String(_) => true,
    }
}

/// Encodes an activity as an item with its data as maps.
pub fn to_item(a: &Activity) -> Result<Item, ItemError> {
    to_item_with(a, Layout::Plain)
}

/// Encodes an activity with the given data layout. Built by hand rather than
/// through a generic serializer: this runs for every event and is most of its cost.
pub fn to_item_with(a: &Activity, layout: Layout) -> Result<Item, ItemError> {
    let mut item: Item = HashMap::with_capacity(20);
    item.insert("targetId".into(), s(a.target_id.to_string()));
    item.insert("id".into(), s(a.id.to_string()));
    item.insert("type".into(), s(a.activity_type.as_str()));
    item.insert("targetType".into(), s(a.target_type.as_str()));
    item.insert("createdAt".into(), s(a.created_at.to_table_string()));
    // The old reader shows this field; mirror the real expiry (0 = kept).
    item.insert(
        "timetoLiveForRecord".into(),
        AttributeValue::N(a.ttl.unwrap_or(0).to_string()),
    );
    item.insert(
        "authorDetails".into(),
        AttributeValue::M(HashMap::from([
            ("fullName".to_owned(), s(a.author.full_name.as_str())),
            ("email".to_owned(), s(a.author.email.as_str())),
        ])),
    );
    item.insert("sourceDomain".into(), s(a.source_domain.as_str()));
    insert_search_attributes(&mut item, a);
    if let Some(ttl) = a.ttl {
        item.insert("ttl".into(), AttributeValue::N(ttl.to_string()));
    }
    if let Some(p) = &a.provenance {
        item.insert("eventId".into(), s(p.event_id.to_string()));
        item.insert("eventType".into(), s(p.event_type.as_str()));
        item.insert("sourceSystem".into(), s(p.source_system.as_str()));
        if let Some(c) = p.correlation_id {
            item.insert("correlationId".into(), s(c.to_string()));
        }
        if let Some(d) = &p.event_digest {
            item.insert(EVENT_DIGEST.into(), s(d.as_str()));
        }
    }
    if a.truncated {
        item.insert("truncated".into(), AttributeValue::Bool(true));
    }
    match layout {
        Layout::Plain => {
            item.insert("oldData".into(), optional(a.old_data.as_ref()));
            item.insert("newData".into(), optional(a.new_data.as_ref()));
            if let Some(c) = &a.changes {
                item.insert("changes".into(), changes_attribute(c));
            }
        }
        Layout::Compressed => {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct PackedRef<'a> {
                old_data: Option<&'a Value>,
                new_data: Option<&'a Value>,
                changes: Option<&'a [Change]>,
            }
            let packed = PackedRef {
                old_data: a.old_data.as_ref(),
                new_data: a.new_data.as_ref(),
                changes: a.changes.as_deref(),
            };
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            serde_json::to_writer(&mut gz, &packed)
                .map_err(|e| ItemError::Encode(e.to_string()))?;
            let bytes = gz.finish().map_err(|e| ItemError::Encode(e.to_string()))?;
            item.insert("oldData".into(), AttributeValue::Null(true));
            item.insert("newData".into(), AttributeValue::Null(true));
            item.insert(
                "compressed".into(),
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes)),
            );
        }
    }
    Ok(item)
}

/// The attributes the API's field, author and domain filters query
/// ([`crate::search`]); derived, so never decoded back.
fn insert_search_attributes(item: &mut Item, a: &Activity) {
    use crate::search::{AUTHOR_EMAIL, CHANGED_PATHS, SOURCE_DOMAIN, indexed_paths};
    let paths = indexed_paths(a.changes.as_deref().unwrap_or_default(), a.truncated);
    if !paths.is_empty() {
        item.insert(
            CHANGED_PATHS.into(),
            AttributeValue::Ss(paths.into_iter().collect()),
        );
    }
    let email = a.author.email.trim();
    if !email.is_empty() {
        item.insert(AUTHOR_EMAIL.into(), s(email.to_lowercase()));
    }
    item.insert(
        SOURCE_DOMAIN.into(),
        s(a.source_domain.trim().to_lowercase()),
    );
}

/// The attributes of an item, taken out one by one as they are decoded (no copies
/// of the data). `NULL` counts as absent, as the old writer used it.
struct Attributes(Item);

impl Attributes {
    fn take(&mut self, name: &str) -> Option<AttributeValue> {
        match self.0.remove(name) {
            None | Some(AttributeValue::Null(_)) => None,
            v => v,
        }
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, ItemError> {
        match self.take(name) {
            None => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(name, "a string")),
        }
    }

    fn required(&mut self, name: &str) -> Result<String, ItemError> {
        self.string(name)?
            .ok_or_else(|| ItemError::Shape(format!("missing attribute `{name}`")))
    }

    fn integer(&mut self, name: &str) -> Result<Option<i64>, ItemError> {
        match self.take(name) {
            None => Ok(None),
            Some(AttributeValue::N(n)) => n
                .parse()
                .map(Some)
                .map_err(|_| ItemError::Shape(format!("`{name}` is not a whole number: {n}"))),
            Some(_) => Err(wrong_type(name, "a number")),
        }
    }

    fn data(&mut self, name: &str) -> Result<Option<Value>, ItemError> {
        self.take(name).map(json_value).transpose()
    }
}

fn wrong_type(name: &str, want: &str) -> ItemError {
    ItemError::Shape(format!("`{name}` is not {want}"))
}

/// A DynamoDB number as JSON: whole numbers as integers, the rest as floats.
fn json_number(n: &str) -> Result<Value, ItemError> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(i.into());
    }
    if let Ok(u) = n.parse::<u64>() {
        return Ok(u.into());
    }
    n.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| ItemError::Shape(format!("number out of range: {n}")))
}

/// A DynamoDB attribute as JSON, the inverse of [`attribute`]; string and number
/// sets (which the old writer never used) read as arrays.
fn json_value(v: AttributeValue) -> Result<Value, ItemError> {
    Ok(match v {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::N(n) => json_number(&n)?,
        AttributeValue::S(s) => Value::String(s),
        AttributeValue::L(l) => {
            Value::Array(l.into_iter().map(json_value).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| Ok((k, json_value(v)?)))
                .collect::<Result<_, ItemError>>()?,
        ),
        AttributeValue::Ss(ss) => Value::Array(ss.into_iter().map(Value::String).collect()),
        AttributeValue::Ns(ns) => Value::Array(
            ns.iter()
                .map(|n| json_number(n))
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err(ItemError::Shape(
                "binary or unknown value inside data".into(),
            ));
        }
    })
}

/// The `changes` list: maps of `path`, `old` and `new`.
fn changes_of(v: AttributeValue) -> Result<Vec<Change>, ItemError> {
    let AttributeValue::L(list) = v else {
        return Err(wrong_type("changes", "a list"));
    };
    list.into_iter()
        .map(|c| {
            let AttributeValue::M(m) = c else {
                return Err(wrong_type("changes", "a list of maps"));
            };
            let mut c = Attributes(m);
            Ok(Change {
                path: c.required("path")?,
                old: c.data("old")?.unwrap_or(Value::Null),
                new: c.data("new")?.unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// The most a compressed item may inflate to. An item holds at most 400 KB; gzip
/// of real records inflates ten- or twentyfold, while a crafted one could inflate a
/// thousandfold: reading stops here instead of filling memory.
pub const MAX_UNPACKED_BYTES: u64 = 32 * 1024 * 1024;

fn unpack(bytes: &[u8]) -> Result<Packed, ItemError> {
    let bad = |_| ItemError::Value { name: "compressed" };
    let mut json = Vec::new();
    let gz = flate2::read::GzDecoder::new(bytes);
    gz.take(MAX_UNPACKED_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(bad)?;
    if json.len() as u64 > MAX_UNPACKED_BYTES {
        return Err(ItemError::Value { name: "compressed" });
    }
    serde_json::from_slice(&json).map_err(|_| ItemError::Value { name: "compressed" })
}

/// Decodes an item written by this service or by the service it replaces.
pub fn from_item(item: Item) -> Result<Activity, ItemError> {
    let mut a = Attributes(item);
    let guid = |v: &str, name| parse_guid(v).ok_or(ItemError::Value { name });
    let id = a.required("id")?;
    let target_id = a.required("targetId")?;
    let target_type = a.required("targetType")?;
    let activity_type = a.required("type")?;
    let created_at = a.required("createdAt")?;
    let (old_data, new_data, changes) = match a.take("compressed") {
        None => (
            a.data("oldData")?,
            a.data("newData")?,
            a.take("changes").map(changes_of).transpose()?,
        ),
        Some(AttributeValue::B(bytes)) => {
            let p = unpack(bytes.as_ref())?;
            (p.old_data, p.new_data, p.changes)
        }
        Some(_) => return Err(wrong_type("compressed", "binary")),
    };
    let provenance = match (a.string("eventId")?, a.string("eventType")?) {
        (Some(event_id), Some(event_type)) => Some(Provenance {
            event_id: guid(&event_id, "eventId")?,
            event_type,
            correlation_id: a.string("correlationId")?.as_deref().and_then(parse_guid),
            source_system: a.string("sourceSystem")?.unwrap_or_default(),
            event_digest: a.string("eventDigest")?,
        }),
        _ => None,
    };
    let author = match a.take("authorDetails") {
        None => Author::default(),
        Some(AttributeValue::M(m)) => {
            let mut m = Attributes(m);
            Author {
                full_name: m.string("fullName")?.unwrap_or_default(),
                email: m.string("email")?.unwrap_or_default(),
            }
        }
        Some(_) => return Err(wrong_type("authorDetails", "a map")),
    };
    let ttl = a.integer("ttl")?;
    let expiry = a.integer("timetoLiveForRecord")?.unwrap_or(0);
    let truncated = match a.take("truncated") {
        None => false,
        Some(AttributeValue::Bool(b)) => b,
        Some(_) => return Err(wrong_type("truncated", "a boolean")),
    };
    Ok(Activity {
        id: guid(&id, "id")?,
        target_id: guid(&target_id, "targetId")?,
        target_type,
        activity_type: ActivityType::parse(&activity_type)
            .ok_or(ItemError::Value { name: "type" })?,
        created_at: Timestamp::parse(&created_at)
            .map_err(|_| ItemError::Value { name: "createdAt" })?,
        old_data,
        new_data,
        changes,
        author,
        source_domain: a.string("sourceDomain")?.unwrap_or_default(),
        // The old writer stored 0 for "no expiry".
        ttl: ttl.or(Some(expiry).filter(|t| *t > 0)),
        provenance,
        truncated,
    })
}

/// The size DynamoDB charges for an item (attribute names plus values), in bytes.
/// Items are limited to 400 KB.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Size of one attribute value by DynamoDB's documented rules: strings and binary by
/// length, numbers by about one byte per two digits plus one, 3 bytes of overhead
/// per list or map plus one per element.
fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(n) => n.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(b) => b.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// The `id` of an item, for logs and batch bookkeeping.
pub fn item_id(item: &Item) -> Option<Uuid> {
    item.get("id")?.as_s().ok().and_then(|s| parse_guid(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::{Outcome, transform};
    use crate::mapping::Mapping;
    use aws_sdk_dynamodb::primitives::Blob;
    use proptest::prelude::*;
    use serde_json::json;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    /// An item exactly as the old .NET writer stored it (docs/contracts.md §3).
    fn old_writer_item() -> Item {
        HashMap::from([
            (
                "targetId".to_owned(),
                s("6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7"),
            ),
            ("id".to_owned(), s("a5b4c3d2-e1f0-4a5b-8c7d-6e5f4a3b2c1d")),
            ("type".to_owned(), s("update")),
            ("targetType".to_owned(), s("person")),
            ("createdAt".to_owned(), s("2021-09-14T10:02:31.5738462Z")),
            (
                "timetoLiveForRecord".to_owned(),
                AttributeValue::N("0".into()),
            ),
            ("oldData".to_owned(), AttributeValue::Null(true)),
            (
                "newData".to_owned(),
                AttributeValue::M(HashMap::from([
                    ("firstName".to_owned(), s("Susanna")),
                    ("age".to_owned(), AttributeValue::N("42".into())),
                    (
                        "tags".to_owned(),
                        AttributeValue::L(vec![s("a"), AttributeValue::Bool(true)]),
                    ),
                ])),
            ),
            (
                "authorDetails".to_owned(),
                AttributeValue::M(HashMap::from([
                    ("fullName".to_owned(), s("Paul Fox")),
                    ("email".to_owned(), s("paul.fox@example.gov.uk")),
                ])),
            ),
            ("sourceDomain".to_owned(), s("Person")),
        ])
    }

    #[test]
    fn items_in_the_old_writers_format_decode() {
        let a = from_item(old_writer_item()).unwrap();
        assert_eq!(
            a.target_id.to_string(),
            "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7"
        );
        assert_eq!(a.activity_type, ActivityType::Update);
        assert_eq!(a.old_data, None);
        assert_eq!(
            a.new_data,
            Some(json!({"firstName": "Susanna", "age": 42, "tags": ["a", true]}))
        );
        assert_eq!(a.author.full_name, "Paul Fox");
        assert_eq!(a.changes, None);
        assert_eq!(a.provenance, None);
        assert_eq!(a.ttl, None);
    }

    #[test]
    fn old_items_with_missing_author_or_odd_case_still_decode() {
        let mut item = old_writer_item();
        item.remove("authorDetails");
        item.insert("type".into(), s("Create"));
        item.insert("createdAt".into(), s("2021-09-14T10:02:31"));
        let a = from_item(item).unwrap();
        assert_eq!(a.author, Author::default());
        assert_eq!(a.activity_type, ActivityType::Create);
    }

    #[test]
    fn broken_items_are_errors_not_panics() {
        let mut item = old_writer_item();
        item.remove("createdAt");
        assert!(matches!(from_item(item), Err(ItemError::Shape(_))));
        let mut item = old_writer_item();
        item.insert("targetId".into(), s("nope"));
        assert_eq!(from_item(item), Err(ItemError::Value { name: "targetId" }));
        let mut item = old_writer_item();
        item.insert(
            "compressed".into(),
            AttributeValue::B(Blob::new(b"not gzip".to_vec())),
        );
        assert_eq!(
            from_item(item),
            Err(ItemError::Value { name: "compressed" })
        );
    }

    #[test]
    fn data_numbers_sets_and_nulls_read_as_json() {
        let mut item = old_writer_item();
        item.insert(
            "oldData".into(),
            AttributeValue::M(HashMap::from([
                ("rent".to_owned(), AttributeValue::N("101.25".into())),
                (
                    "big".to_owned(),
                    AttributeValue::N("18446744073709551615".into()),
                ),
                ("neg".to_owned(), AttributeValue::N("-7".into())),
                ("exp".to_owned(), AttributeValue::N("1E+2".into())),
                ("gone".to_owned(), AttributeValue::Null(true)),
                (
                    "tags".to_owned(),
                    AttributeValue::Ss(vec!["a".into(), "b".into()]),
                ),
            ])),
        );
        // A NULL author name reads as empty, as an absent one does.
        item.insert(
            "authorDetails".into(),
            AttributeValue::M(HashMap::from([
                ("fullName".to_owned(), AttributeValue::Null(true)),
                ("email".to_owned(), s("a@example.gov.uk")),
            ])),
        );
        let a = from_item(item).unwrap();
        assert_eq!(
            a.old_data,
            Some(
                json!({"rent": 101.25, "big": 18446744073709551615u64, "neg": -7,
                        "exp": 100.0, "gone": null, "tags": ["a", "b"]})
            )
        );
        assert_eq!(a.author.full_name, "");
        assert_eq!(a.author.email, "a@example.gov.uk");
    }

    #[test]
    fn wrong_attribute_types_name_the_attribute() {
        for (name, value) in [
            ("createdAt", AttributeValue::N("1".into())),
            ("authorDetails", s("Paul")),
            ("timetoLiveForRecord", s("soon")),
            ("changes", s("all")),
            ("newData", AttributeValue::B(Blob::new(b"x".to_vec()))),
        ] {
            let mut item = old_writer_item();
            item.insert(name.into(), value);
            match from_item(item) {
                Err(ItemError::Shape(m)) => {
                    assert!(
                        m.contains(name) || name == "newData",
                        "{name}: message {m:?} does not name it"
                    )
                }
                other => panic!("{name}: expected a shape error, got {other:?}"),
            }
        }
    }

    fn sample_activity() -> Activity {
        let body = json!({
            "id": "3f0b8f5e-0c7c-4a3e-9b1e-2f1d7f6a9c11", "eventType": "PersonUpdatedEvent",
            "sourceDomain": "Person", "sourceSystem": "PersonAPI",
            "correlationId": "9a1c3b7e-5d2f-4e8a-b6c4-0e1f2a3b4c5d",
            "dateTime": "2021-09-14T10:02:31.5738462Z",
            "user": { "name": "Paul Fox", "email": "paul.fox@example.gov.uk" },
            "entityId": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7",
            "eventData": {
                "oldData": {"name": {"first": "Sue"}, "n": 1.5, "list": [1, "x", null], "gone": "y"},
                "newData": {"name": {"first": "Susanna"}, "n": -2, "list": [], "empty": ""}
            }
        });
        let Outcome::Record(mut r) =
            transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
        else {
            panic!("expected a record")
        };
        r.remove(0)
    }

    #[test]
    fn written_items_have_the_shape_the_old_reader_expects() {
        let item = to_item(&sample_activity()).unwrap();
        assert_eq!(item["createdAt"], s("2021-09-14T10:02:31.5738462Z"));
        assert_eq!(item["timetoLiveForRecord"], AttributeValue::N("0".into()));
        assert!(item["oldData"].is_m());
        assert!(
            item["authorDetails"]
                .as_m()
                .unwrap()
                .contains_key("fullName")
        );
        assert_eq!(item["type"], s("update"));
        assert!(
            !item.contains_key("ttl"),
            "no ttl attribute when the record is kept"
        );
    }

    #[test]
    fn encode_decode_round_trip_in_both_layouts() {
        let a = sample_activity();
        assert_eq!(from_item(to_item(&a).unwrap()).unwrap(), a);
        let packed = to_item_with(&a, Layout::Compressed).unwrap();
        assert!(packed["oldData"].is_null() && packed.contains_key("compressed"));
        assert_eq!(from_item(packed).unwrap(), a);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1.0e12f64..1.0e12).prop_map(|f| json!(f)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z]{1,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_data_round_trips_through_an_item(old in arb_json(), new in arb_json(), secs in 0i64..4_000_000_000, ticks in 0u32..10_000_000) {
            let mut a = sample_activity();
            a.old_data = Some(old).filter(|v| !v.is_null());
            a.new_data = Some(new).filter(|v| !v.is_null());
            a.created_at = Timestamp::from_unix(secs, ticks).unwrap();
            let back = from_item(to_item(&a).unwrap()).unwrap();
            prop_assert_eq!(back, a);
        }
    }

    #[test]
    fn size_estimate_grows_with_content() {
        let mut a = sample_activity();
        a.new_data = Some(json!({"blob": ""}));
        let small = item_size(&to_item(&a).unwrap());
        a.new_data = Some(json!({"blob": "x".repeat(10_000)}));
        let big = item_size(&to_item(&a).unwrap());
        assert!(big >= small + 10_000, "{small} -> {big}");
    }

    fn with_new_data(v: Value) -> Activity {
        let mut a = sample_activity();
        a.new_data = Some(v);
        a
    }

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
    }

    #[test]
    fn values_dynamodb_refuses_in_maps_are_told_apart() {
        assert!(storable_as_maps(&sample_activity()));
        assert!(storable_as_maps(&with_new_data(nested(29))));
        assert!(storable_as_maps(&with_new_data(
            json!({"n": 0.0, "m": -1e125, "k": 1e-129})
        )));
        for refused in [
            nested(40),
            json!([nested(35)]),
            json!({"rent": 1e200}),
            json!({"tiny": -1e-200}),
            json!({"": 1}),
            json!({"a": [{"": null}]}),
        ] {
            assert!(
                !storable_as_maps(&with_new_data(refused.clone())),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_compressed_item_that_inflates_past_the_cap_is_refused() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1024 * 1024];
        for _ in 0..=(MAX_UNPACKED_BYTES / (1024 * 1024)) {
            std::io::Write::write_all(&mut gz, &zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        let mut item = to_item(&sample_activity()).unwrap();
        item.insert("compressed".into(), AttributeValue::B(Blob::new(bomb)));
        assert_eq!(
            from_item(item),
            Err(ItemError::Value { name: "compressed" })
        );
    }
}
