//! What each event type records: the table of docs/contracts.md §2 as data, extendable
//! by an operator's file (`ACTIVITY_MAPPING_FILE`) without a rebuild, plus the
//! fields to mask and the retention per target type.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;

/// The kinds of activity the frontend knows (docs/contracts.md §2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ActivityType {
    /// The entity was created.
    Create,
    /// The entity was changed.
    Update,
    /// The entity was removed.
    Delete,
    /// The entity was brought over from an older system.
    Migrate,
    /// The entity came to an end (e.g. a cautionary alert).
    End,
}

impl ActivityType {
    /// Every activity type, in the order the contract lists them.
    pub const ALL: [ActivityType; 5] = [
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Migrate,
        Self::End,
    ];

    /// The stored and published name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Migrate => "migrate",
            Self::End => "end",
        }
    }

    /// Parses a name in any case (items written by other tools may capitalise).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for ActivityType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one event type records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Acknowledged and counted; no activity.
    Ignore,
    /// Recorded as an activity.
    Record(RecordRule),
}

/// How an event type becomes activities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRule {
    /// The activity's `type`.
    pub activity: ActivityType,
    /// The activity's `targetType` for the record on `entityId`.
    pub target_type: String,
    /// When set, a second record on `entityTargetId` with this target type.
    pub also_on_entity_target: Option<String>,
    /// Whether the record is part of its target's state: `false` for an event
    /// about another entity recorded on the target (a process started against a
    /// tenure), which a state of the tenure leaves out.
    pub in_state: bool,
}

/// The event-type table with masks and retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    rules: HashMap<String, Rule>,
    masks: HashMap<String, BTreeSet<String>>,
    retention_days: HashMap<String, u32>,
}

/// The event type has no entry in the table: neither recorded nor ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event type `{event_type}` has no mapping; add it to the mapping file to record or ignore it"
)]
pub struct Unmapped {
    /// The event type as published.
    pub event_type: String,
}

/// A mapping file that cannot be used. The listener refuses to start with one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping file {path}: {detail}")]
pub struct MappingFileError {
    /// The file named by `ACTIVITY_MAPPING_FILE`.
    pub path: String,
    /// What is wrong with it.
    pub detail: String,
}

/// The on-disk shape shared by the built-in table and operators' files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    events: BTreeMap<String, RuleFile>,
    #[serde(default)]
    masks: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    retention: BTreeMap<String, RetentionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleFile {
    #[serde(default)]
    ignore: bool,
    activity: Option<ActivityType>,
    target_type: Option<String>,
    also_on_entity_target: Option<String>,
    in_state: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RetentionFile {
    Days(u32),
    Keep(String),
}

const DEFAULT_TABLE: &str = include_str!("default_mapping.toml");

impl Default for Mapping {
    fn default() -> Self {
        let mut m = Self {
            rules: HashMap::new(),
            masks: HashMap::new(),
            retention_days: HashMap::new(),
        };
        // The built-in table is checked by the unit tests below; failing here is a
        // build defect, not bad input.
        #[allow(clippy::expect_used)]
        let file: MappingFile =
            toml::from_str(DEFAULT_TABLE).expect("built-in mapping table is valid");
        #[allow(clippy::expect_used)]
        m.merge(file).expect("built-in mapping table is valid");
        m
    }
}

impl Mapping {
    /// The built-in table, overlaid with `path` when given. JSON when the file name
    /// ends in `.json`, TOML otherwise.
    pub fn load(path: Option<&Path>) -> Result<Self, MappingFileError> {
        let mut m = Self::default();
        if let Some(path) = path {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| MappingFileError {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
            let is_json = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"));
            m.overlay_str(&text, is_json)
                .map_err(|detail| MappingFileError {
                    path: shown,
                    detail,
                })?;
        }
        Ok(m)
    }

    /// Overlays a mapping document (TOML, or JSON when `json`) on this table.
    pub fn overlay_str(&mut self, text: &str, json: bool) -> Result<(), String> {
        let file: MappingFile = if json {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            toml::from_str(text).map_err(|e| e.to_string())?
        };
        self.merge(file)
    }

    fn merge(&mut self, file: MappingFile) -> Result<(), String> {
        for (event_type, r) in file.events {
            let rule = match (r.ignore, r.activity, r.target_type) {
                (true, None, None) if r.also_on_entity_target.is_none() && r.in_state.is_none() => {
                    Rule::Ignore
                }
                (true, ..) => {
                    return Err(format!(
                        "event `{event_type}`: `ignore = true` cannot be combined with activity, targetType, alsoOnEntityTarget or inState"
                    ));
                }
                (false, Some(activity), Some(target_type)) if !target_type.trim().is_empty() => {
                    Rule::Record(RecordRule {
                        activity,
                        target_type,
                        also_on_entity_target: r
                            .also_on_entity_target
                            .filter(|t| !t.trim().is_empty()),
                        in_state: r.in_state.unwrap_or(true),
                    })
                }
                _ => {
                    return Err(format!(
                        "event `{event_type}` needs both `activity` and a non-empty `targetType`, or `ignore = true`"
                    ));
                }
            };
            self.rules.insert(event_type, rule);
        }
        for (target_type, fields) in file.masks {
            self.masks.entry(target_type).or_default().extend(fields);
        }
        for (target_type, r) in file.retention {
            match r {
                RetentionFile::Days(0) => {
                    return Err(format!(
                        "retention for `{target_type}`: 0 days would expire records at once; use \"keep\" or a number of days"
                    ));
                }
                RetentionFile::Days(d) => {
                    self.retention_days.insert(target_type, d);
                }
                RetentionFile::Keep(s) if s.eq_ignore_ascii_case("keep") => {
                    self.retention_days.remove(&target_type);
                }
                RetentionFile::Keep(s) => {
                    return Err(format!(
                        "retention for `{target_type}` is `{s}`: expected a number of days or \"keep\""
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rule for an event type; [`Unmapped`] when the table has no entry.
    pub fn rule(&self, event_type: &str) -> Result<&Rule, Unmapped> {
        self.rules.get(event_type).ok_or_else(|| Unmapped {
            event_type: event_type.to_owned(),
        })
    }

    /// Field names whose values are masked in records of `target_type`.
    pub fn masked_fields(&self, target_type: &str) -> Option<&BTreeSet<String>> {
        self.masks.get(target_type).filter(|s| !s.is_empty())
    }

    /// Days to keep records of `target_type`; `None` means keep for ever.
    pub fn retention_days(&self, target_type: &str) -> Option<u32> {
        self.retention_days.get(target_type).copied()
    }

    /// Every target type some event type records, sorted: the target types an
    /// activity may be posted for.
    pub fn target_types(&self) -> BTreeSet<&str> {
        let mut types = BTreeSet::new();
        for rule in self.rules.values() {
            if let Rule::Record(r) = rule {
                types.insert(r.target_type.as_str());
                types.extend(r.also_on_entity_target.as_deref());
            }
        }
        types
    }

    /// Whether some event type records `target_type`: the check each posted
    /// activity gets, without building [`Mapping::target_types`].
    pub fn records_target_type(&self, target_type: &str) -> bool {
        self.rules.values().any(|rule| match rule {
            Rule::Record(r) => {
                r.target_type == target_type
                    || r.also_on_entity_target.as_deref() == Some(target_type)
            }
            Rule::Ignore => false,
        })
    }

    /// Every mapped event type, sorted, for documentation and tests.
    pub fn event_types(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.rules.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(activity: ActivityType, target: &str) -> Rule {
        Rule::Record(RecordRule {
            activity,
            target_type: target.into(),
            also_on_entity_target: None,
            in_state: true,
        })
    }

    /// docs/contracts.md §2, transcribed independently of the TOML table.
    const CONTRACT: &[(&str, Option<(&str, &str)>)] = &[
        ("PersonCreatedEvent", Some(("create", "person"))),
        ("PersonUpdatedEvent", Some(("update", "person"))),
        (
            "ContactDetailAddedEvent",
            Some(("create", "contactDetails")),
        ),
        (
            "ContactDetailDeletedEvent",
            Some(("delete", "contactDetails")),
        ),
        ("ContactDetailEditedEvent", None),
        ("TenureCreatedEvent", Some(("create", "tenure"))),
        ("TenureUpdatedEvent", Some(("update", "tenure"))),
        ("PersonAddedToTenureEvent", Some(("create", "tenurePerson"))),
        (
            "PersonRemovedFromTenureEvent",
            Some(("delete", "tenurePerson")),
        ),
        ("AssetCreatedEvent", Some(("create", "asset"))),
        ("AssetUpdatedEvent", Some(("update", "asset"))),
        ("ContractCreatedEvent", Some(("create", "contract"))),
        ("ContractUpdatedEvent", Some(("update", "contract"))),
        (
            "HousingApplicationCreatedEvent",
            Some(("create", "housingApplication")),
        ),
        (
            "HousingApplicationUpdatedEvent",
            Some(("update", "housingApplication")),
        ),
        (
            "EqualityInformationCreatedEvent",
            Some(("create", "personEqualityInformation")),
        ),
        (
            "EqualityInformationUpdatedEvent",
            Some(("update", "personEqualityInformation")),
        ),
        ("ProcessStartedEvent", Some(("create", "process"))),
        ("ProcessUpdatedEvent", Some(("update", "process"))),
        ("ProcessClosedEvent", Some(("update", "process"))),
        ("ProcessCompletedEvent", Some(("update", "process"))),
        (
            "ProcessStartedAgainstTenureEvent",
            Some(("create", "tenure")),
        ),
        (
            "ProcessStartedAgainstPersonEvent",
            Some(("create", "person")),
        ),
        (
            "NoteCreatedAgainstProcessEvent",
            Some(("create", "process")),
        ),
        ("NoteCreatedAgainstTenureEvent", None),
        ("NoteCreatedAgainstPersonEvent", None),
        ("NoteCreatedAgainstAssetEvent", None),
        (
            "CautionaryAlertCreatedEvent",
            Some(("create", "cautionaryAlert")),
        ),
        (
            "CautionaryAlertEndedEvent",
            Some(("end", "cautionaryAlert")),
        ),
        (
            "PatchOrAreaResEntityEditedEvent",
            Some(("update", "patchesAndAreas")),
        ),
    ];

    #[test]
    fn in_state_is_read_from_a_file_and_refused_beside_ignore() {
        let mut m = Mapping::default();
        m.overlay_str(
            r#"[events]
NoteAddedAgainstAssetEvent = { activity = "create", targetType = "asset", inState = false }"#,
            false,
        )
        .unwrap();
        assert!(matches!(m.rule("NoteAddedAgainstAssetEvent"), Ok(Rule::Record(r)) if !r.in_state));
        let err = m
            .overlay_str(
                r#"[events]
X = { ignore = true, inState = false }"#,
                false,
            )
            .unwrap_err();
        assert!(err.contains("cannot be combined"), "{err}");
    }

    #[test]
    fn a_target_type_is_recorded_when_some_event_type_records_it() {
        let m = Mapping::default();
        for t in m.target_types() {
            assert!(m.records_target_type(t), "{t}");
        }
        assert!(
            m.records_target_type("tenure"),
            "also the second record of a finance event"
        );
        assert!(!m.records_target_type("tenancy"));
    }

    #[test]
    fn default_table_is_the_contract_table_exactly() {
        let m = Mapping::default();
        assert_eq!(CONTRACT.len(), 30);
        // Events about another entity, recorded on the target (docs/api.md, states).
        let not_in_state = [
            "ProcessStartedAgainstTenureEvent",
            "ProcessStartedAgainstPersonEvent",
            "NoteCreatedAgainstProcessEvent",
        ];
        for (event_type, expected) in CONTRACT {
            let want = match expected {
                None => Rule::Ignore,
                Some((a, t)) => match rec(ActivityType::parse(a).unwrap(), t) {
                    Rule::Record(r) => Rule::Record(RecordRule {
                        in_state: !not_in_state.contains(event_type),
                        ..r
                    }),
                    ignore => ignore,
                },
            };
            assert_eq!(m.rule(event_type).unwrap(), &want, "{event_type}");
        }
        // The contract's 30 plus the transaction event, nothing else.
        assert_eq!(m.event_types().len(), 31);
    }

    #[test]
    fn transaction_event_records_on_transaction_and_tenure() {
        let m = Mapping::default();
        assert_eq!(
            m.rule("TransactionCreatedEvent").unwrap(),
            &Rule::Record(RecordRule {
                activity: ActivityType::Create,
                target_type: "transaction".into(),
                also_on_entity_target: Some("tenure".into()),
                in_state: true,
            })
        );
    }

    #[test]
    fn unknown_event_type_is_unmapped() {
        let err = Mapping::default().rule("WidgetFrobbedEvent").unwrap_err();
        assert_eq!(err.event_type, "WidgetFrobbedEvent");
    }

    #[test]
    fn override_file_adds_a_mapping_and_a_mask_and_replaces_an_entry() {
        let dir = std::env::temp_dir().join(format!("mapping-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mapping.toml");
        std::fs::write(
            &path,
            r#"
[events]
WidgetFrobbedEvent = { activity = "migrate", targetType = "widget" }
ContactDetailEditedEvent = { activity = "update", targetType = "contactDetails" }
[masks]
person = ["dateOfBirth", "nationalInsuranceNumber"]
[retention]
transaction = 2555
"#,
        )
        .unwrap();
        let m = Mapping::load(Some(&path)).unwrap();
        assert_eq!(
            m.rule("WidgetFrobbedEvent").unwrap(),
            &rec(ActivityType::Migrate, "widget")
        );
        assert_eq!(
            m.rule("ContactDetailEditedEvent").unwrap(),
            &rec(ActivityType::Update, "contactDetails")
        );
        // Entries the file does not name keep their defaults.
        assert_eq!(
            m.rule("PersonCreatedEvent").unwrap(),
            &rec(ActivityType::Create, "person")
        );
        let masked = m.masked_fields("person").unwrap();
        assert!(masked.contains("dateOfBirth") && masked.contains("nationalInsuranceNumber"));
        assert!(m.masked_fields("tenure").is_none());
        assert_eq!(m.retention_days("transaction"), Some(2555));
        assert_eq!(m.retention_days("person"), None);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn json_override_is_accepted() {
        let mut m = Mapping::default();
        m.overlay_str(
            r#"{"events":{"X":{"ignore":true}},"masks":{"person":["dateOfBirth"]}}"#,
            true,
        )
        .unwrap();
        assert_eq!(m.rule("X").unwrap(), &Rule::Ignore);
    }

    #[test]
    fn bad_override_files_say_what_is_wrong() {
        let cases = [
            (
                r#"[events]
X = { activity = "create" }"#,
                "targetType",
            ),
            (
                r#"[events]
X = { activity = "frobnicate", targetType = "x" }"#,
                "frobnicate",
            ),
            (
                r#"[events]
X = { ignore = true, activity = "create", targetType = "x" }"#,
                "ignore",
            ),
            (
                r#"[retention]
person = "forever""#,
                "keep",
            ),
            (
                r#"[retention]
person = 0"#,
                "0 days",
            ),
            (r#"[evnets]"#, "evnets"),
        ];
        for (text, needle) in cases {
            let err = Mapping::default().overlay_str(text, false).unwrap_err();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
        let err = Mapping::load(Some(Path::new("/nonexistent/mapping.toml"))).unwrap_err();
        assert_eq!(err.path, "/nonexistent/mapping.toml");
    }
}
