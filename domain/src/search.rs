//! What makes history searchable by field, author and domain: attributes the
//! listener writes on every record, so the API filters in the query, and the
//! rules that decide a match, which the API applies again to every record read
//! (records written before these attributes existed have none, and match by
//! their change list or by comparing their old and new data).

use std::collections::BTreeSet;

use crate::activity::Activity;
use crate::diff::{self, Change};

/// String set: every changed path (JSON Pointer) with each of its ancestors.
pub const CHANGED_PATHS: &str = "changedPaths";
/// The author's e-mail address, lower case; absent when there is none.
pub const AUTHOR_EMAIL: &str = "authorEmailLower";
/// `sourceDomain`, lower case.
pub const SOURCE_DOMAIN: &str = "sourceDomainLower";
/// In [`CHANGED_PATHS`]: the record matches every field (the whole entity
/// changed, or its paths were too many or cut).
pub const ANY_PATH: &str = "*";
/// Most paths one record lists, and most bytes they may take together; beyond
/// either it lists [`ANY_PATH`] only, so the set never crowds out the record's
/// data under DynamoDB's item limit.
pub const MAX_PATHS: usize = 1000;
/// See [`MAX_PATHS`].
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// A pointer and its ancestors: `/address/postcode` gives `/address` and
/// `/address/postcode`. The whole entity (`""`) gives nothing.
pub fn with_ancestors(pointer: &str) -> Vec<&str> {
    pointer
        .match_indices('/')
        .skip(1)
        .map(|(i, _)| &pointer[..i])
        .chain((!pointer.is_empty()).then_some(pointer))
        .collect()
}

/// The [`CHANGED_PATHS`] of a record with these changes.
pub fn indexed_paths(changes: &[Change], truncated: bool) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for c in changes {
        if c.path.is_empty() {
            paths.insert(ANY_PATH.to_owned());
        }
        paths.extend(with_ancestors(&c.path).into_iter().map(str::to_owned));
        if paths.len() > MAX_PATHS {
            break;
        }
    }
    let bytes: usize = paths.iter().map(String::len).sum();
    if truncated || paths.len() > MAX_PATHS || bytes > MAX_PATH_BYTES {
        return BTreeSet::from([ANY_PATH.to_owned()]);
    }
    paths
}

/// A field as a caller names it: a JSON Pointer as it is, a top-level name as the
/// pointer to it.
pub fn field_pointer(field: &str) -> String {
    if field.starts_with('/') {
        return field.to_owned();
    }
    format!("/{}", field.replace('~', "~0").replace('/', "~1"))
}

/// Whether a change at `changed` concerns `field`: the same path, a path under
/// it, or a path that contains it (a create that set `/address` concerns
/// `/address/postcode`). Both are JSON Pointers; `""` is the whole entity.
pub fn path_matches(changed: &str, field: &str) -> bool {
    let under = |long: &str, short: &str| {
        long.strip_prefix(short)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under(changed, field) || under(field, changed)
}

/// The paths a record changed: its change list, or for a record of the old
/// service (none kept) its old and new data compared, a missing side counting as
/// an empty entity (as the listener compares them), so a create lists its fields.
pub fn changed_paths(a: &Activity) -> Vec<String> {
    if let Some(changes) = &a.changes {
        return changes.iter().map(|c| c.path.clone()).collect();
    }
    let empty = serde_json::Value::Object(serde_json::Map::new());
    let old = a.old_data.as_ref().unwrap_or(&empty);
    let new = a.new_data.as_ref().unwrap_or(&empty);
    diff::changes(Some(old), Some(new))
        .into_iter()
        .map(|c| c.path)
        .collect()
}

/// Whether a record changed `field` (a JSON Pointer). A truncated record, whose
/// paths may have been cut, matches every field.
pub fn changed_field(a: &Activity, field: &str) -> bool {
    a.truncated || changed_paths(a).iter().any(|p| path_matches(p, field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn change(path: &str) -> Change {
        Change {
            path: path.into(),
            old: Value::Null,
            new: Value::Null,
        }
    }

    #[test]
    fn a_pointer_lists_itself_and_its_ancestors() {
        assert_eq!(
            with_ancestors("/address/postcode"),
            ["/address", "/address/postcode"]
        );
        assert_eq!(with_ancestors("/phone"), ["/phone"]);
        assert!(with_ancestors("").is_empty());
    }

    #[test]
    fn a_field_matches_itself_what_is_under_it_and_what_holds_it() {
        assert!(path_matches("/phone", "/phone"));
        assert!(path_matches("/address/postcode", "/address"));
        assert!(path_matches("/address", "/address/postcode"));
        assert!(
            path_matches("", "/address"),
            "the whole entity holds every field"
        );
        assert!(
            !path_matches("/phoneNumber", "/phone"),
            "a prefix of a name is not a path"
        );
        assert!(!path_matches("/address/line1", "/address/postcode"));
    }

    #[test]
    fn field_names_become_pointers_and_pointers_stay() {
        assert_eq!(field_pointer("phone"), "/phone");
        assert_eq!(field_pointer("/address/postcode"), "/address/postcode");
        assert_eq!(field_pointer("a/b"), "/a~1b");
    }

    #[test]
    fn indexed_paths_hold_each_change_and_its_ancestors_or_match_everything() {
        let paths = indexed_paths(&[change("/address/postcode"), change("/phone")], false);
        let want: BTreeSet<String> = ["/address", "/address/postcode", "/phone"]
            .map(String::from)
            .into();
        assert_eq!(paths, want);
        assert_eq!(
            indexed_paths(&[change("")], false),
            BTreeSet::from(["*".to_owned()])
        );
        assert_eq!(
            indexed_paths(&[change("/a")], true),
            BTreeSet::from(["*".to_owned()])
        );
        let long: Vec<Change> = (0..20)
            .map(|i| change(&format!("/{i}{}", "x".repeat(500))))
            .collect();
        assert_eq!(
            indexed_paths(&long, false),
            BTreeSet::from(["*".to_owned()]),
            "over 8 KB"
        );
        let many: Vec<Change> = (0..=MAX_PATHS).map(|i| change(&format!("/f{i}"))).collect();
        assert_eq!(
            indexed_paths(&many, false),
            BTreeSet::from(["*".to_owned()])
        );
    }
}
