//! Query parameters, parsed into values that are valid once they exist. Each
//! rejection says what to send instead.

use domain::event::parse_guid;
use domain::{ActivityType, Timestamp};
use uuid::Uuid;

use crate::error::ApiError;

/// The largest page a caller may ask for (the old service had no bound).
pub const MAX_PAGE_SIZE: u32 = 100;
/// The page size when none is given (docs/contracts.md §4).
pub const DEFAULT_PAGE_SIZE: u32 = 10;

/// Newest first (the contract's order) or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

impl Order {
    fn as_str(self) -> &'static str {
        match self {
            Self::Desc => "desc",
            Self::Asc => "asc",
        }
    }
}

/// Filters shared by the list and the export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Only these activity types; empty means all. Sorted, no repeats.
    pub types: Vec<ActivityType>,
    /// `createdAt` at or after this.
    pub from: Option<Timestamp>,
    /// `createdAt` at or before this.
    pub to: Option<Timestamp>,
    /// Direction.
    pub order: Order,
    /// Only activities that changed this field (a JSON Pointer).
    pub field: Option<String>,
    /// Only activities by this author (e-mail address, lower case).
    pub author: Option<String>,
    /// Only activities of this publishing domain (`sourceDomain`, lower case).
    pub domain: Option<String>,
    /// Only these target types; empty means all. Sorted, no repeats.
    pub target_types: Vec<String>,
}

/// Most levels a `field` pointer may have (each adds a condition to the query).
pub const MAX_FIELD_DEPTH: usize = 16;

/// Most target types one query filters on.
pub const MAX_TARGET_TYPES: usize = 20;

impl Filters {
    /// The filters as the access log records them: the fingerprint, but an
    /// author's e-mail address is only said to be given, never written.
    pub fn logged(&self) -> String {
        let mut f = self.clone();
        f.author = f.author.map(|_| "(given)".to_owned());
        f.fingerprint()
    }

    /// A canonical rendering, so a page token can be bound to the query it came
    /// from (inside the token it is only a digest, and the token is encrypted).
    pub fn fingerprint(&self) -> String {
        let types: Vec<&str> = self.types.iter().map(|t| t.as_str()).collect();
        let mut f = format!(
            "types={};from={};to={};order={}",
            types.join(","),
            self.from.map(|t| t.to_table_string()).unwrap_or_default(),
            self.to.map(|t| t.to_table_string()).unwrap_or_default(),
            self.order.as_str()
        );
        // Appended only when used, so tokens issued before these filters existed
        // still resume.
        if let Some(field) = &self.field {
            f.push_str(&format!(";field={field}"));
        }
        if let Some(author) = &self.author {
            f.push_str(&format!(";author={author}"));
        }
        if let Some(domain) = &self.domain {
            f.push_str(&format!(";domain={domain}"));
        }
        if !self.target_types.is_empty() {
            f.push_str(&format!(";targetTypes={}", self.target_types.join(",")));
        }
        f
    }

    /// Whether no filter leaves any record out (the order aside).
    pub fn narrows_nothing(&self) -> bool {
        let Self {
            types,
            from,
            to,
            order: _,
            field,
            author,
            domain,
            target_types,
        } = self;
        types.is_empty()
            && from.is_none()
            && to.is_none()
            && field.is_none()
            && author.is_none()
            && domain.is_none()
            && target_types.is_empty()
    }

    /// Whether the record passes the field, author, domain and target-type
    /// filters (the query applied them too where records carry what they need;
    /// this decides for every record, the old service's included).
    pub fn matches(&self, a: &domain::Activity) -> bool {
        let field = self
            .field
            .as_deref()
            .is_none_or(|f| domain::search::changed_field(a, f));
        let author =
            (self.author.as_deref()).is_none_or(|e| a.author.email.trim().to_lowercase() == e);
        let domain =
            (self.domain.as_deref()).is_none_or(|d| a.source_domain.trim().to_lowercase() == d);
        let target_type =
            self.target_types.is_empty() || self.target_types.contains(&a.target_type);
        field && author && domain && target_type
    }
}

/// `GET /api/v1/activityhistory` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Whose history.
    pub target_id: Uuid,
    /// More targets, for one merged history (`targetId` repeated); each once.
    pub more_targets: Vec<Uuid>,
    /// Items per page, 1..=100.
    pub page_size: u32,
    /// Where the previous page ended, as issued by this API.
    pub token: Option<String>,
    /// Filters and order.
    pub filters: Filters,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// `GET /api/v1/activityhistory/export` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportQuery {
    /// Whose history.
    pub target_id: Uuid,
    /// More targets, for one merged history; each once.
    pub more_targets: Vec<Uuid>,
    /// Output format.
    pub format: Format,
    /// Where the previous part of the export stopped, as issued by this API.
    pub token: Option<String>,
    /// Filters and order.
    pub filters: Filters,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// The raw pairs of a query string; a name may repeat.
fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut it = pairs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
    let first = it.next().map(|(_, v)| v.as_str());
    if it.next().is_some() {
        return Err(bad(format!("{name} is given more than once; send it once")));
    }
    Ok(first)
}

/// An optional parameter: sent empty counts as not sent (forms and report tools
/// send blank fields).
fn optional<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    Ok(single(pairs, name)?
        .map(str::trim)
        .filter(|v| !v.is_empty()))
}

/// Most targets one merged history reads.
pub const MAX_TARGETS: usize = 10;

/// `targetId`, once or repeated (a merged history): the first target and the
/// others, each once, in the order given.
fn target_ids(pairs: &[(String, String)]) -> Result<(Uuid, Vec<Uuid>), ApiError> {
    let given: Vec<&str> = (pairs.iter())
        .filter(|(k, _)| k.eq_ignore_ascii_case("targetId"))
        .map(|(_, v)| v.as_str())
        .collect();
    let mut ids: Vec<Uuid> = Vec::with_capacity(given.len());
    for v in given {
        let id = target_id(Some(v))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.len() > MAX_TARGETS {
        return Err(bad(format!(
            "targetId is given for {} targets; a merged history reads at most {MAX_TARGETS}",
            ids.len()
        )));
    }
    let mut ids = ids.into_iter();
    let first = ids.next().map_or_else(|| target_id(None), Ok)?;
    Ok((first, ids.collect()))
}

fn target_id(given: Option<&str>) -> Result<Uuid, ApiError> {
    match given {
        None => Err(bad(
            "targetId is required: the GUID of the entity whose history you want",
        )),
        Some(v) if v.trim().is_empty() => Err(bad(
            "targetId is empty: send the GUID of the entity whose history you want",
        )),
        Some(v) => match parse_guid(v) {
            Some(id) if !id.is_nil() => Ok(id),
            Some(_) => Err(bad(
                "targetId is the empty GUID: send the GUID of a real entity",
            )),
            None => Err(bad(
                "targetId is not a GUID (expected e.g. 6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7)",
            )),
        },
    }
}

/// Parses `from`/`to`: a date-time (any offset, 0-7 fraction digits) or a date,
/// which means the start of that day for `from` and its end for `to`.
fn bound(
    pairs: &[(String, String)],
    name: &str,
    end_of_day: bool,
) -> Result<Option<Timestamp>, ApiError> {
    let Some(v) = optional(pairs, name)? else {
        return Ok(None);
    };
    let parsed = if v.len() == 10 {
        Timestamp::parse(&format!("{v}T00:00:00Z")).map(|t| {
            if end_of_day {
                Timestamp::from_unix(t.unix_seconds() + 86_399, 9_999_999).unwrap_or(t)
            } else {
                t
            }
        })
    } else {
        Timestamp::parse(v)
    };
    parsed.map(Some).map_err(|e| {
        bad(format!(
            "{name} is not a date or date-time ({}); send e.g. 2024-03-01 or 2024-03-01T09:30:00Z",
            e.reason
        ))
    })
}

/// `paginationToken`; the text `null` (a client echoing a JSON null) is no token.
fn token(pairs: &[(String, String)]) -> Result<Option<String>, ApiError> {
    Ok(optional(pairs, "paginationToken")?
        .filter(|t| *t != "null")
        .map(str::to_owned))
}

fn filters(pairs: &[(String, String)]) -> Result<Filters, ApiError> {
    let mut types = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k.eq_ignore_ascii_case("type")) {
        for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let parsed = ActivityType::parse(t).ok_or_else(|| {
                let all: Vec<&str> = ActivityType::ALL.iter().map(|t| t.as_str()).collect();
                bad(format!(
                    "type `{t}` is not an activity type; use one or more of {}",
                    all.join(", ")
                ))
            })?;
            types.push(parsed);
        }
    }
    types.sort();
    types.dedup();
    let from = bound(pairs, "from", false)?;
    let to = bound(pairs, "to", true)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(bad("from is after to: swap them or widen the range"));
    }
    let order = match optional(pairs, "order")?.map(str::to_ascii_lowercase) {
        None => Order::Desc,
        Some(o) if o == "desc" => Order::Desc,
        Some(o) if o == "asc" => Order::Asc,
        Some(o) => return Err(bad(format!("order `{o}` is not asc or desc"))),
    };
    Ok(Filters {
        types,
        from,
        to,
        order,
        field: field(pairs)?,
        author: author(pairs)?,
        domain: source_domain(pairs)?,
        target_types: target_types(pairs)?,
    })
}

/// `field`: a top-level field name or a JSON Pointer.
fn field(pairs: &[(String, String)]) -> Result<Option<String>, ApiError> {
    let Some(f) = optional(pairs, "field")? else {
        return Ok(None);
    };
    if f.len() > 256 || f == "/" || f.matches('/').count() > MAX_FIELD_DEPTH {
        return Err(bad(format!(
            "field should be a field name (phone) or a JSON Pointer (/address/postcode) of at most 256 characters and {MAX_FIELD_DEPTH} levels"
        )));
    }
    Ok(Some(domain::search::field_pointer(f)))
}

/// `author`: an e-mail address, matched in any case.
fn author(pairs: &[(String, String)]) -> Result<Option<String>, ApiError> {
    let Some(a) = optional(pairs, "author")? else {
        return Ok(None);
    };
    if a.len() > 254 || !a.contains('@') {
        return Err(bad(
            "author should be the author's e-mail address (e.g. paul.fox@example.gov.uk)",
        ));
    }
    Ok(Some(a.to_lowercase()))
}

/// `domain`: the publishing domain, matched in any case.
fn source_domain(pairs: &[(String, String)]) -> Result<Option<String>, ApiError> {
    let Some(d) = optional(pairs, "domain")? else {
        return Ok(None);
    };
    if d.len() > 64 {
        return Err(bad(
            "domain should be a publishing domain such as Person, Tenure or Transactions",
        ));
    }
    Ok(Some(d.to_lowercase()))
}

/// `targetType`: one or more, repeated or comma-separated.
fn target_types(pairs: &[(String, String)]) -> Result<Vec<String>, ApiError> {
    let mut types = Vec::new();
    for (_, v) in pairs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("targetType"))
    {
        for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if t.len() > 64 || t.contains(char::is_whitespace) {
                return Err(bad(format!(
                    "targetType `{}` is not a target type (e.g. person, tenure, tenurePerson)",
                    t.chars().take(64).collect::<String>()
                )));
            }
            types.push(t.to_owned());
        }
    }
    types.sort();
    types.dedup();
    if types.len() > MAX_TARGET_TYPES {
        return Err(bad(format!(
            "targetType names {} types; send at most {MAX_TARGET_TYPES}",
            types.len()
        )));
    }
    Ok(types)
}

/// `GET /api/v1/activityhistory/state` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateQuery {
    /// Whose state.
    pub target_id: Uuid,
    /// As of when: a date means the end of that day; now when not given.
    pub at: Timestamp,
    /// The target type whose state to fold; by default the target's own.
    pub target_type: Option<String>,
}

/// 1900-01-01T00:00:00Z: no housing record is older.
const YEAR_1900: i64 = -2_208_988_800;

impl StateQuery {
    /// Parses a raw query string; `now` is the default `at`.
    pub fn parse(raw: Option<&str>, now: Timestamp) -> Result<Self, ApiError> {
        let p = pairs(raw);
        let target_id = target_id(single(&p, "targetId")?)?;
        let at = bound(&p, "at", true)?.unwrap_or(now);
        if at.unix_seconds() < YEAR_1900 {
            return Err(bad("at is before 1900; send a date-time from 1900 on"));
        }
        let mut types = target_types(&p)?;
        if types.len() > 1 {
            return Err(bad("targetType: send one target type for a state"));
        }
        Ok(Self {
            target_id,
            at,
            target_type: types.pop(),
        })
    }
}

impl ListQuery {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let p = pairs(raw);
        let (target_id, more_targets) = target_ids(&p)?;
        let page_size = match optional(&p, "pageSize")? {
            None => DEFAULT_PAGE_SIZE,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (1..=i64::from(MAX_PAGE_SIZE)).contains(&n) => n as u32,
                Ok(n) if n > i64::from(MAX_PAGE_SIZE) => {
                    return Err(bad(format!(
                        "pageSize {n} is over the limit of {MAX_PAGE_SIZE}"
                    )));
                }
                Ok(_) => {
                    return Err(bad(format!(
                        "pageSize must be at least 1 (and at most {MAX_PAGE_SIZE})"
                    )));
                }
                Err(_) => {
                    return Err(bad(format!(
                        "pageSize `{v}` is not a whole number from 1 to {MAX_PAGE_SIZE}"
                    )));
                }
            },
        };
        Ok(Self {
            target_id,
            more_targets,
            page_size,
            token: token(&p)?,
            filters: filters(&p)?,
        })
    }
}

impl ExportQuery {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let p = pairs(raw);
        let (target_id, more_targets) = target_ids(&p)?;
        let format = match optional(&p, "format")?.map(str::to_ascii_lowercase) {
            None => Format::Csv,
            Some(f) if f == "csv" => Format::Csv,
            Some(f) if f == "ndjson" => Format::Ndjson,
            Some(f) => return Err(bad(format!("format `{f}` is not csv or ndjson"))),
        };
        Ok(Self {
            target_id,
            more_targets,
            format,
            token: token(&p)?,
            filters: filters(&p)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "targetId=6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7";

    fn list(q: &str) -> Result<ListQuery, String> {
        ListQuery::parse(Some(q)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let q = list(T).unwrap();
        assert_eq!(q.page_size, 10);
        assert_eq!(q.filters.order, Order::Desc);
        assert!(q.token.is_none());
    }

    #[test]
    fn target_id_errors_say_what_to_send() {
        assert!(list("").unwrap_err().contains("targetId is required"));
        assert!(list("targetId=").unwrap_err().contains("empty"));
        assert!(list("targetId=abc").unwrap_err().contains("not a GUID"));
        assert!(
            list("targetId=00000000-0000-0000-0000-000000000000")
                .unwrap_err()
                .contains("empty GUID")
        );
        assert!(
            list("targetid=6F22E9AE-3E8A-4E0E-AF46-DB02EB87F8E7").is_ok(),
            "names and GUIDs in any case"
        );
    }

    #[test]
    fn page_size_bounds() {
        for bad in ["0", "-1", "abc", "101", "1.5"] {
            assert!(list(&format!("{T}&pageSize={bad}")).is_err(), "{bad}");
        }
        assert!(
            list(&format!("{T}&pageSize=101"))
                .unwrap_err()
                .contains("limit of 100")
        );
        assert_eq!(list(&format!("{T}&pageSize=100")).unwrap().page_size, 100);
        assert_eq!(
            list(&format!("{T}&pageSize=")).unwrap().page_size,
            10,
            "blank means not sent"
        );
        assert_eq!(
            list(&format!("{T}&from=&to=&order=&type="))
                .unwrap()
                .filters,
            Filters::default()
        );
    }

    #[test]
    fn filters_parse_and_canonicalise() {
        let a = list(&format!(
            "{T}&type=update,create&type=update&from=2024-01-01&to=2024-01-31&order=ASC"
        ))
        .unwrap();
        let b = list(&format!("{T}&type=create&type=update&from=2024-01-01T00:00:00Z&to=2024-01-31T23:59:59.9999999Z&order=asc")).unwrap();
        assert_eq!(
            a.filters.types,
            vec![ActivityType::Create, ActivityType::Update]
        );
        assert_eq!(a.filters.fingerprint(), b.filters.fingerprint());
        assert!(
            list(&format!("{T}&type=frob"))
                .unwrap_err()
                .contains("create, update")
        );
        assert!(list(&format!("{T}&from=yesterday")).is_err());
        assert!(
            list(&format!("{T}&from=2024-02-01&to=2024-01-01"))
                .unwrap_err()
                .contains("after")
        );
        assert!(list(&format!("{T}&order=sideways")).is_err());
        assert!(
            list(&format!("{T}&pageSize=5&pageSize=6"))
                .unwrap_err()
                .contains("more than once")
        );
    }

    #[test]
    fn export_format() {
        assert_eq!(ExportQuery::parse(Some(T)).unwrap().format, Format::Csv);
        assert_eq!(
            ExportQuery::parse(Some(&format!("{T}&format=NDJSON")))
                .unwrap()
                .format,
            Format::Ndjson
        );
        assert!(ExportQuery::parse(Some(&format!("{T}&format=xlsx"))).is_err());
        let continued = ExportQuery::parse(Some(&format!("{T}&paginationToken=abc"))).unwrap();
        assert_eq!(continued.token.as_deref(), Some("abc"));
    }
}
