//! The API's JSON shapes (docs/contracts.md §4), kept apart from the stored shape and
//! built from it by named conversions.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Who made a change.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorDetails {
    /// Display name; the publishing system when no person was named.
    pub full_name: String,
    /// E-mail address; empty when unknown.
    pub email: String,
}

/// One changed leaf of the entity.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ChangeJson {
    /// JSON Pointer into the entity; empty for the whole entity.
    pub path: String,
    /// Value before; null when the field was added.
    #[schema(value_type = Object, nullable = true)]
    pub old: Value,
    /// Value after; null when the field was removed.
    #[schema(value_type = Object, nullable = true)]
    pub new: Value,
}

/// One entry of a target's history.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityJson {
    /// Activity id.
    pub id: Uuid,
    /// The entity whose history this is.
    pub target_id: Uuid,
    /// `create`, `update`, `delete`, `migrate` or `end`.
    #[serde(rename = "type")]
    pub activity_type: String,
    /// The kind of entity, e.g. `person`, `tenure`.
    pub target_type: String,
    /// When the change happened, ISO 8601 UTC with 7 fraction digits.
    pub created_at: String,
    /// Epoch seconds after which the record may be deleted; 0 when kept.
    pub timeto_live_for_record: i64,
    /// Before: the changed part for updates, whole for creates and deletes.
    #[schema(value_type = Object, nullable = true)]
    pub old_data: Option<Value>,
    /// After: the changed part for updates, whole for creates and deletes.
    #[schema(value_type = Object, nullable = true)]
    pub new_data: Option<Value>,
    /// Who made the change.
    pub author_details: AuthorDetails,
    /// The domain that published the change, e.g. `Person`.
    pub source_domain: String,
    /// One entry per changed field; null on records from before changes were listed.
    pub changes: Option<Vec<ChangeJson>>,
    /// True when the data was too large to keep and only changed paths remain.
    pub truncated: bool,
    /// The event that wrote the record, e.g. `TransactionCreatedEvent`
    /// (`ActivityPosted` for one posted to this API); null on the old service's records.
    pub event_type: Option<String>,
    /// The system that published it, e.g. `TransactionAPI`; null on the old service's records.
    pub source_system: Option<String>,
    /// The request that caused it; records sharing one were one change. Null when
    /// the publisher sent none, and on the old service's records.
    pub correlation_id: Option<Uuid>,
}

impl ActivityJson {
    /// The API shape of a stored activity.
    pub fn from_activity(a: domain::Activity) -> Self {
        Self {
            id: a.id,
            target_id: a.target_id,
            activity_type: a.activity_type.as_str().to_owned(),
            target_type: a.target_type,
            created_at: a.created_at.to_table_string(),
            timeto_live_for_record: a.ttl.unwrap_or(0),
            old_data: a.old_data,
            new_data: a.new_data,
            author_details: AuthorDetails {
                full_name: a.author.full_name,
                email: a.author.email,
            },
            source_domain: a.source_domain,
            changes: a.changes.map(|cs| {
                cs.into_iter()
                    .map(|c| ChangeJson {
                        path: c.path,
                        old: c.old,
                        new: c.new,
                    })
                    .collect()
            }),
            truncated: a.truncated,
            event_type: a.provenance.as_ref().map(|p| p.event_type.clone()),
            source_system: a.provenance.as_ref().map(|p| p.source_system.clone()),
            correlation_id: a.provenance.and_then(|p| p.correlation_id),
        }
    }
}

/// Where the next page is.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaginationDetails {
    /// Pass as `paginationToken` for the next page; null on the last page.
    pub next_token: Option<String>,
    /// The whole URL of the next page (for clients that follow URLs, e.g. Qlik); null on the last page.
    pub next_url: Option<String>,
}

/// A page of history.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageJson {
    /// Activities, newest first unless `order=asc`.
    pub results: Vec<ActivityJson>,
    /// How to get the next page.
    pub pagination_details: PaginationDetails,
}

/// A CSV cell a spreadsheet will not run: text starting with `=`, `+`, `-`, `@`,
/// tab or carriage return gets a leading `'` (the OWASP rule against CSV
/// injection), except a plain number such as `-12.5`, which stays a number.
pub fn neutralise(cell: String) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// `[+-]digits[.digits][e[+-]digits]`, with digits on at least one side of the point.
fn is_plain_number(s: &str) -> bool {
    fn digits(s: &str) -> (usize, &str) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (n, &s[n..])
    }
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (whole, rest) = digits(s);
    let (fraction, rest) = match rest.strip_prefix('.') {
        Some(r) => digits(r),
        None => (0, rest),
    };
    if whole + fraction == 0 {
        return false;
    }
    match rest.strip_prefix(['e', 'E']) {
        None => rest.is_empty(),
        Some(exp) => {
            let (n, rest) = digits(exp.strip_prefix(['+', '-']).unwrap_or(exp));
            n > 0 && rest.is_empty()
        }
    }
}

/// One row of an export: one changed field of one activity.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    /// Activity id.
    pub activity_id: Uuid,
    /// When the change happened.
    pub created_at: String,
    /// Activity type.
    #[serde(rename = "type")]
    pub activity_type: String,
    /// Kind of entity.
    pub target_type: String,
    /// The entity.
    pub target_id: Uuid,
    /// Who made the change.
    pub author_name: String,
    /// JSON Pointer of the changed field; empty for the whole entity.
    pub path: String,
    /// Value before.
    #[schema(value_type = Object, nullable = true)]
    pub old: Value,
    /// Value after.
    #[schema(value_type = Object, nullable = true)]
    pub new: Value,
}

impl ExportRow {
    /// One row per changed field; an activity without a change list (older records)
    /// or with an empty one gives one row for the whole entity.
    pub fn rows(a: &domain::Activity) -> Vec<Self> {
        let row = |path: &str, old: &Value, new: &Value| Self {
            activity_id: a.id,
            created_at: a.created_at.to_table_string(),
            activity_type: a.activity_type.as_str().to_owned(),
            target_type: a.target_type.clone(),
            target_id: a.target_id,
            author_name: a.author.full_name.clone(),
            path: path.to_owned(),
            old: old.clone(),
            new: new.clone(),
        };
        match &a.changes {
            Some(cs) if !cs.is_empty() => cs.iter().map(|c| row(&c.path, &c.old, &c.new)).collect(),
            _ => vec![row(
                "",
                a.old_data.as_ref().unwrap_or(&Value::Null),
                a.new_data.as_ref().unwrap_or(&Value::Null),
            )],
        }
    }

    /// The CSV cells: strings as their text, null as empty, anything else as JSON;
    /// every cell passed through [`neutralise`], since a spreadsheet would run
    /// text from residents' records as a formula.
    pub fn csv_record(&self) -> [String; 9] {
        let cell = |v: &Value| match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        [
            self.activity_id.to_string(),
            self.created_at.clone(),
            self.activity_type.clone(),
            self.target_type.clone(),
            self.target_id.to_string(),
            self.author_name.clone(),
            self.path.clone(),
            cell(&self.old),
            cell(&self.new),
        ]
        .map(neutralise)
    }

    /// The CSV header row.
    pub const CSV_HEADER: [&'static str; 9] = [
        "activityId",
        "createdAt",
        "type",
        "targetType",
        "targetId",
        "authorName",
        "path",
        "old",
        "new",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_neutralised() {
        for formula in [
            "=HYPERLINK(\"http://evil.example\",\"click\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A9)",
            "\t=1+1",
            "\r=1+1",
            "-",
            "+",
            "-1e",
            "-.",
            "-12.5.3",
            "-0x1F",
            "-inf",
        ] {
            assert_eq!(
                neutralise(formula.into()),
                format!("'{formula}"),
                "{formula:?}"
            );
        }
    }

    #[test]
    fn plain_numbers_and_ordinary_text_are_left_as_they_are() {
        for kept in [
            "-12.5",
            "+44",
            "-0",
            "-.5",
            "-5.",
            "-1e6",
            "+2.5E-3",
            "12",
            "Susan",
            "",
            "a=b",
            "{\"a\":1}",
            "'quoted",
        ] {
            assert_eq!(neutralise(kept.into()), kept, "{kept:?}");
        }
    }
}

/// One queued activity.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// The activity's id: the one posted, or a new one.
    pub id: Uuid,
    /// Its target.
    pub target_id: Uuid,
    /// Where to read it once recorded (`GET /api/v1/activityhistory/{id}`).
    pub url: String,
}

/// The answer to a post.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct AcceptedJson {
    /// One entry per posted activity, in the order posted.
    pub results: Vec<Accepted>,
}

/// An entity as its history knows it at one moment.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateJson {
    /// The entity.
    pub target_id: Uuid,
    /// Its target type, from the last record folded.
    pub target_type: String,
    /// The moment asked for (ISO 8601, UTC).
    pub at: String,
    /// The entity as its records up to `at` make it; `null` once deleted.
    #[schema(value_type = Option<Object>)]
    pub state: Option<Value>,
    /// True only when the fold started from a create or migrate that held the
    /// whole entity and no record after it was truncated or withheld: then
    /// `state` is the whole entity. Otherwise it holds what the history knows.
    pub complete: bool,
    /// The last record up to `at` is a delete.
    pub deleted: bool,
    /// Records folded.
    pub activities: usize,
    /// When the last record folded happened.
    pub last_changed_at: String,
}
