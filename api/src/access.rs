//! Who may read which records, how much one answer may hold, and the access log
//! that accounts for every read.
//!
//! Rules come from the TOML file named by `ACTIVITY_ACCESS_FILE`: for each caller
//! group (the JWT `groups` claim), the target types its members may read, or `*`
//! for all. A record a caller may not read does not exist for that caller: the
//! store applies the caller's [`Visible`] set in every query (docs/api.md, Access).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Claims;
use crate::error::ApiError;

/// What a group grants.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    /// `*`: every target type.
    All,
    /// These target types, as stored (case matters).
    Only(BTreeSet<String>),
}

/// The access rules in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Caller group to what it grants; a caller in none of them reads nothing.
    /// `None` when no file is configured: every authenticated caller reads every
    /// record, as before rules existed (and a warning at start says so).
    groups: Option<BTreeMap<String, Grant>>,
}

/// The target types one caller may read; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// Every record.
    All,
    /// Records of these target types only.
    Only(BTreeSet<String>),
}

/// DynamoDB's `IN` takes at most 100 values; a caller's set must fit one.
pub const MAX_TARGET_TYPES: usize = 100;

/// Why an access file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// `[groups]` names no group, so every caller would be refused.
    #[error("[groups] names no group: every caller would be refused")]
    NoGroups,
    /// A group name that is empty or padded with spaces (a typo would lock its members out).
    #[error("group name {0:?} is empty or starts or ends with a space")]
    BadGroup(String),
    /// A target type that is empty or contains spaces.
    #[error(
        "group {group:?} lists target type {target_type:?}, which is empty or contains a space"
    )]
    BadTargetType {
        /// The group listing it.
        group: String,
        /// The value as written.
        target_type: String,
    },
    /// More distinct target types than one query can filter on.
    #[error("the file names {0} target types; at most {MAX_TARGET_TYPES} are supported")]
    TooManyTargetTypes(usize),
}

/// An access file that could not be used, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("ACTIVITY_ACCESS_FILE {}: {reason}", path.display())]
pub struct LoadError {
    /// The file named by the setting.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The file's shape; anything else in it is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    groups: BTreeMap<String, Vec<String>>,
}

fn grant(group: &str, types: Vec<String>) -> Result<Grant, RulesError> {
    let mut only = BTreeSet::new();
    for t in types {
        if t == "*" {
            return Ok(Grant::All);
        }
        if t.is_empty() || t.chars().any(char::is_whitespace) {
            return Err(RulesError::BadTargetType {
                group: group.to_owned(),
                target_type: t,
            });
        }
        only.insert(t);
    }
    Ok(Grant::Only(only))
}

impl Rules {
    /// Parses the text of an access file.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: File = toml::from_str(text).map_err(|e| RulesError::Syntax(e.to_string()))?;
        if file.groups.is_empty() {
            return Err(RulesError::NoGroups);
        }
        let mut groups = BTreeMap::new();
        let mut named = BTreeSet::new();
        for (group, types) in file.groups {
            if group.is_empty() || group.trim() != group {
                return Err(RulesError::BadGroup(group));
            }
            let g = grant(&group, types)?;
            if let Grant::Only(types) = &g {
                named.extend(types.iter().cloned());
            }
            groups.insert(group, g);
        }
        if named.len() > MAX_TARGET_TYPES {
            return Err(RulesError::TooManyTargetTypes(named.len()));
        }
        Ok(Self {
            groups: Some(groups),
        })
    }

    /// Reads and parses the file at `path`; the error names the file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let fail = |reason: String| LoadError {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::parse(&text).map_err(|e| fail(e.to_string()))
    }

    /// No rules: every caller reads everything.
    pub fn open() -> Self {
        Self::default()
    }

    /// The rules configured by `ACTIVITY_ACCESS_FILE`, or [`Rules::open`] with a
    /// warning when it is not set, so an open deployment is never silent.
    pub fn configured(path: Option<&Path>) -> Result<Self, LoadError> {
        match path {
            Some(p) => Self::load(p),
            None => {
                tracing::warn!(
                    "no access rules are in force (ACTIVITY_ACCESS_FILE is not set): every authenticated caller may read every record"
                );
                Ok(Self::open())
            }
        }
    }

    /// What a caller in `groups` may read; `None` when nothing.
    pub fn visible_to(&self, groups: &[String]) -> Option<Visible> {
        let Some(rules) = &self.groups else {
            return Some(Visible::All);
        };
        let mut only = BTreeSet::new();
        for g in groups.iter().filter_map(|g| rules.get(g)) {
            match g {
                Grant::All => return Some(Visible::All),
                Grant::Only(types) => only.extend(types.iter().cloned()),
            }
        }
        (!only.is_empty()).then_some(Visible::Only(only))
    }
}

impl Visible {
    /// Whether a record of `target_type` may be shown.
    pub fn allows(&self, target_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(target_type),
        }
    }

    /// The target types to filter on; `None` for all.
    pub fn only(&self) -> Option<&BTreeSet<String>> {
        match self {
            Self::All => None,
            Self::Only(types) => Some(types),
        }
    }

    /// A canonical rendering bound into page tokens, so a token only resumes for a
    /// caller who sees the same records. Empty for [`Visible::All`], which keeps the
    /// tokens of a deployment without rules what they were.
    pub fn binding(&self) -> String {
        match self {
            Self::All => String::new(),
            Self::Only(types) => {
                format!(
                    ";visible={}",
                    types.iter().cloned().collect::<Vec<_>>().join(",")
                )
            }
        }
    }
}

/// How much one answer may hold. On Lambda a response is buffered and capped at
/// 6 MB, and API Gateway sends a compressed body base64-encoded (a third larger):
/// 4 MB of body stays under the cap with room for headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of encoded JSON in one list page before it stops with a token.
    pub page_bytes: usize,
    /// Rows in one export response before it stops with a token.
    pub export_rows: usize,
    /// Bytes in one export response before it stops with a token.
    pub export_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            page_bytes: 4 * 1024 * 1024,
            export_rows: 10_000,
            export_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What the read routes enforce: who reads what, and how much at once.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Who may read which target types.
    pub rules: Rules,
    /// How much one answer may hold.
    pub limits: Limits,
}

/// The verified caller of a read route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Subject claim, logged as who read; empty when the token has none.
    pub sub: String,
    /// What the caller may read; `None` when nothing.
    visible: Option<Visible>,
    /// The caller's groups (`groups` claim), for the writer check.
    pub groups: Vec<String>,
}

impl Caller {
    /// What the caller may read, or a 403 that names no group or target type.
    pub fn visible(&self) -> Result<&Visible, ApiError> {
        self.visible.as_ref().ok_or_else(|| {
            ApiError::Forbidden("your groups do not give access to any activity history".into())
        })
    }
}

impl FromRequestParts<crate::AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        // The authentication layer leaves the verified claims here; a read route
        // reached without them is a wiring defect, never a caller's fault.
        let claims = parts.extensions.get::<Claims>().ok_or_else(|| {
            ApiError::Unexpected(anyhow::anyhow!(
                "read route reached without verified claims"
            ))
        })?;
        Ok(Self {
            sub: claims.sub.clone().unwrap_or_default(),
            visible: state.access.rules.visible_to(&claims.groups),
            groups: claims.groups.clone(),
        })
    }
}

/// The read routes, as the access log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/v1/activityhistory`.
    List,
    /// `GET /api/v1/activityhistory/{id}`.
    Lookup,
    /// `GET /api/v1/activityhistory/export`.
    Export,
    /// `POST /api/v1/activityhistory`.
    Create,
    /// `GET /api/v1/activityhistory/state`.
    State,
}

impl Route {
    fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Lookup => "lookup",
            Self::Export => "export",
            Self::Create => "create",
            Self::State => "state",
        }
    }
}

/// One line of the access log, filled in as a read route learns what was asked
/// and written once when it answers: who read what, how it ended, how much was
/// returned. It holds identifiers and filters only, never resident data.
#[derive(Debug)]
pub struct AccessLog {
    sub: String,
    route: Route,
    /// The target whose history was read (for a lookup, the record's target).
    pub target_id: Option<Uuid>,
    /// The targets of the activities a post queued.
    pub targets: Vec<Uuid>,
    /// A post's own id, which its records carry as `correlationId`.
    pub post_id: Option<Uuid>,
    /// The activity asked for by a lookup.
    pub activity_id: Option<Uuid>,
    /// The filters, as bound into page tokens.
    pub filters: String,
    /// Whether the request continued from a page token.
    pub continued: bool,
    /// Activities returned.
    pub records: usize,
    /// Export rows returned.
    pub rows: usize,
    written: bool,
}

impl AccessLog {
    /// A line for `caller` reading through `route`, not yet written.
    pub fn new(caller: &Caller, route: Route) -> Self {
        Self {
            sub: caller.sub.clone(),
            route,
            target_id: None,
            targets: Vec::new(),
            post_id: None,
            activity_id: None,
            filters: String::new(),
            continued: false,
            records: 0,
            rows: 0,
            written: false,
        }
    }

    /// A line for a caller refused before any route ran (in none of
    /// `ACTIVITY_ALLOWED_GROUPS`): the route, target and activity come from the
    /// request's address.
    pub fn refused(sub: &str, method: &axum::http::Method, uri: &axum::http::Uri) -> Self {
        let path = uri.path().trim_end_matches('/').to_ascii_lowercase();
        let last = path.rsplit('/').next().unwrap_or("");
        let route = match last {
            _ if method == axum::http::Method::POST => Route::Create,
            "export" => Route::Export,
            "state" => Route::State,
            "activityhistory" => Route::List,
            _ => Route::Lookup,
        };
        let target_id = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("targetId"))
            .and_then(|(_, v)| domain::event::parse_guid(&v));
        Self {
            sub: sub.to_owned(),
            route,
            target_id,
            targets: Vec::new(),
            post_id: None,
            activity_id: (route == Route::Lookup)
                .then(|| domain::event::parse_guid(last))
                .flatten(),
            filters: String::new(),
            continued: false,
            records: 0,
            rows: 0,
            written: false,
        }
    }

    /// Writes the line with the answer's status.
    pub fn write(&mut self, status: u16) {
        self.emit(status, false);
    }

    fn emit(&mut self, status: u16, abandoned: bool) {
        if std::mem::replace(&mut self.written, true) {
            return;
        }
        let id = |v: Option<Uuid>| v.map(|u| u.to_string()).unwrap_or_default();
        tracing::info!(
            target: "access",
            log = "access",
            sub = %self.sub,
            route = self.route.as_str(),
            target_id = %id(self.target_id),
            target_ids = %self.targets.iter().map(Uuid::to_string).collect::<Vec<_>>().join(","),
            activity_id = %id(self.activity_id),
            post_id = %id(self.post_id),
            filters = %self.filters,
            continued = self.continued,
            status,
            records = self.records,
            rows = self.rows,
            abandoned,
            "access"
        );
    }
}

impl Drop for AccessLog {
    /// A read cut short (the request timed out, or the caller went away) is still
    /// accounted for: 503 is what the timeout answers.
    fn drop(&mut self) {
        self.emit(503, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[groups]
"housing-officers" = ["person", "tenure", "tenurePerson", "contactDetails", "asset", "transaction", "process"]
"equality-team"    = ["personEqualityInformation"]
"support-admins"   = ["*"]
"#;

    fn groups(gs: &[&str]) -> Vec<String> {
        gs.iter().map(|g| (*g).to_owned()).collect()
    }

    fn only(ts: &[&str]) -> Option<Visible> {
        Some(Visible::Only(ts.iter().map(|t| (*t).to_owned()).collect()))
    }

    #[test]
    fn the_documented_example_parses_into_what_each_group_reads() {
        let rules = Rules::parse(EXAMPLE).expect("valid");
        assert_eq!(
            rules.visible_to(&groups(&["equality-team"])),
            only(&["personEqualityInformation"])
        );
        assert_eq!(
            rules.visible_to(&groups(&["support-admins"])),
            Some(Visible::All)
        );
        let officer = rules
            .visible_to(&groups(&["housing-officers"]))
            .expect("some");
        assert!(officer.allows("tenurePerson"));
        assert!(!officer.allows("personEqualityInformation"));
        assert!(
            !officer.allows("Person"),
            "target types are matched exactly"
        );
    }

    #[test]
    fn a_caller_in_several_groups_reads_what_any_of_them_grants() {
        let rules = Rules::parse(EXAMPLE).expect("valid");
        let both = rules
            .visible_to(&groups(&["equality-team", "housing-officers"]))
            .expect("some");
        assert!(both.allows("person") && both.allows("personEqualityInformation"));
        assert_eq!(
            rules.visible_to(&groups(&["equality-team", "support-admins"])),
            Some(Visible::All)
        );
    }

    #[test]
    fn a_caller_in_none_of_the_groups_reads_nothing() {
        let rules = Rules::parse(EXAMPLE).expect("valid");
        assert_eq!(rules.visible_to(&groups(&["finance-staff"])), None);
        assert_eq!(rules.visible_to(&[]), None);
        let empty = Rules::parse("[groups]\nnobody = []\n").expect("valid");
        assert_eq!(empty.visible_to(&groups(&["nobody"])), None);
    }

    #[test]
    fn without_a_file_every_caller_reads_everything() {
        assert_eq!(Rules::open().visible_to(&[]), Some(Visible::All));
        assert_eq!(Rules::configured(None).expect("open"), Rules::open());
    }

    #[test]
    fn bad_files_are_refused_with_what_is_wrong() {
        let cases = [
            (
                "[groups]\na = [\"person\"]\n[extra]\nb = 1\n",
                "unknown field `extra`",
            ),
            ("[grups]\na = [\"person\"]\n", "unknown field `grups`"),
            ("", "missing field `groups`"),
            ("[groups]\na = \"person\"\n", "invalid type"),
            ("[groups]\na = [1]\n", "invalid type"),
            ("[groups]\na = [\"person\"\n", "TOML parse error"),
            ("[groups]\n", "names no group"),
            ("[groups]\n\"\" = [\"person\"]\n", "group name \"\""),
            (
                "[groups]\n\" a\" = [\"person\"]\n",
                "starts or ends with a space",
            ),
            ("[groups]\na = [\"\"]\n", "target type \"\""),
            ("[groups]\na = [\"per son\"]\n", "contains a space"),
        ];
        for (text, needle) in cases {
            let err = Rules::parse(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn more_target_types_than_one_query_can_filter_on_are_refused() {
        let types: Vec<String> = (0..=MAX_TARGET_TYPES)
            .map(|i| format!("\"t{i}\""))
            .collect();
        let text = format!("[groups]\na = [{}]\n", types.join(", "));
        assert_eq!(
            Rules::parse(&text),
            Err(RulesError::TooManyTargetTypes(MAX_TARGET_TYPES + 1))
        );
    }

    #[test]
    fn a_load_error_names_the_file() {
        let path = std::env::temp_dir().join(format!("access-{}.toml", Uuid::new_v4()));
        std::fs::write(&path, "[groups]\na = [\"person\"]\nb = 2\n").expect("write");
        let err = Rules::load(&path).expect_err("bad").to_string();
        std::fs::remove_file(&path).ok();
        assert!(err.starts_with("ACTIVITY_ACCESS_FILE "), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("invalid type"), "{err}");
        let missing = Rules::load(Path::new("/nonexistent/access.toml"))
            .expect_err("missing")
            .to_string();
        assert!(missing.contains("/nonexistent/access.toml"), "{missing}");
    }

    #[test]
    fn the_token_binding_is_canonical_and_empty_when_everything_is_visible() {
        assert_eq!(Visible::All.binding(), "");
        let a = only(&["tenure", "person"]).expect("some").binding();
        let b = only(&["person", "tenure"]).expect("some").binding();
        assert_eq!(a, b);
        assert_eq!(a, ";visible=person,tenure");
        assert_ne!(a, only(&["person"]).expect("some").binding());
    }
}
