//! Reduces old and new data to what changed, and masks fields that must not be
//! stored.
//!
//! Objects are compared key by key, recursively; anything else (arrays, strings,
//! numbers, a change of type) is compared as a whole value and kept whole when it
//! differs, because an array's elements have no stable identity to diff by. A key
//! present on one side only appears with `null` on the other.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One changed leaf: where, from what, to what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// RFC 6901 JSON Pointer into the entity (`""` is the whole entity).
    pub path: String,
    /// Value before (`null` when the key was added).
    pub old: Value,
    /// Value after (`null` when the key was removed).
    pub new: Value,
}

/// The result of comparing two versions of an entity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    /// The old side, reduced to changed keys (`None` when there was no old data).
    pub old: Option<Value>,
    /// The new side, reduced to changed keys (`None` when there is no new data).
    pub new: Option<Value>,
    /// One entry per changed leaf, in key order.
    pub changes: Vec<Change>,
}

impl Diff {
    /// Whether anything changed at all.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Appends one JSON Pointer segment, escaping `~` and `/` (RFC 6901).
fn push_segment(path: &str, key: &str) -> String {
    let mut p = String::with_capacity(path.len() + key.len() + 1);
    p.push_str(path);
    p.push('/');
    for c in key.chars() {
        match c {
            '~' => p.push_str("~0"),
            '/' => p.push_str("~1"),
            c => p.push(c),
        }
    }
    p
}

/// Compares two versions. Both `None` or equal gives an empty diff whose sides are
/// empty objects when the inputs were objects.
pub fn diff(old: Option<&Value>, new: Option<&Value>) -> Diff {
    walk(old, new, true)
}

/// Only the list of changes, for records that keep their data whole (create,
/// delete, migrate): the same list as [`diff`] gives, without building the
/// reduced copies of both sides.
pub fn changes(old: Option<&Value>, new: Option<&Value>) -> Vec<Change> {
    walk(old, new, false).changes
}

/// The diff; with `reduce` false only its change list is filled in.
fn walk(old: Option<&Value>, new: Option<&Value>, reduce: bool) -> Diff {
    let mut changes = Vec::new();
    let null = Value::Null;
    let o = old.unwrap_or(&null);
    let n = new.unwrap_or(&null);
    if let (Value::Object(a), Value::Object(b)) = (o, n) {
        let (ra, rb) = diff_objects(a, b, "", &mut changes, reduce);
        return Diff {
            old: Some(Value::Object(ra)),
            new: Some(Value::Object(rb)),
            changes,
        };
    }
    if o != n {
        changes.push(Change {
            path: String::new(),
            old: o.clone(),
            new: n.clone(),
        });
    }
    Diff {
        old: old.filter(|_| reduce).cloned(),
        new: new.filter(|_| reduce).cloned(),
        changes,
    }
}

/// Walks two objects in key order, listing changes; with `reduce`, also builds
/// both sides reduced to the changed keys.
fn diff_objects(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    path: &str,
    changes: &mut Vec<Change>,
    reduce: bool,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut ra = Map::new();
    let mut rb = Map::new();
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let null = Value::Null;
    for key in keys {
        // .NET publishers omit or send null for the same thing: absent equals null.
        let x = a.get(key).unwrap_or(&null);
        let y = b.get(key).unwrap_or(&null);
        match (x, y) {
            _ if x == y => {}
            (Value::Object(x), Value::Object(y)) => {
                let (sx, sy) = diff_objects(x, y, &push_segment(path, key), changes, reduce);
                if reduce {
                    ra.insert(key.clone(), Value::Object(sx));
                    rb.insert(key.clone(), Value::Object(sy));
                }
            }
            _ => {
                changes.push(Change {
                    path: push_segment(path, key),
                    old: x.clone(),
                    new: y.clone(),
                });
                if reduce {
                    ra.insert(key.clone(), x.clone());
                    rb.insert(key.clone(), y.clone());
                }
            }
        }
    }
    (ra, rb)
}

/// What a masked value is replaced with.
pub const MASK: &str = "********";

/// Replaces the value of every key named in `fields`, at any depth, with [`MASK`].
/// Nulls stay null, so "added" and "removed" remain visible.
pub fn mask_value(value: &mut Value, fields: &BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if fields.contains(k) {
                    if !v.is_null() {
                        *v = Value::String(MASK.to_owned());
                    }
                } else {
                    mask_value(v, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask_value(v, fields)),
        _ => {}
    }
}

/// Masks the change list: a change whose path passes through a masked key has its
/// non-null values replaced by [`MASK`]; a change above a masked key (e.g. a whole
/// object added) is masked inside.
pub fn mask_changes(changes: &mut [Change], fields: &BTreeSet<String>) {
    for c in changes {
        let hit = c
            .path
            .split('/')
            .skip(1)
            .any(|seg| fields.contains(&seg.replace("~1", "/").replace("~0", "~")));
        for v in [&mut c.old, &mut c.new] {
            if hit {
                if !v.is_null() {
                    *v = Value::String(MASK.to_owned());
                }
            } else {
                mask_value(v, fields);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn nested_change_keeps_only_the_changed_branch() {
        let old = json!({"id": 1, "name": {"first": "Sue", "last": "Fox"}});
        let new = json!({"id": 1, "name": {"first": "Susanna", "last": "Fox"}});
        let d = diff(Some(&old), Some(&new));
        assert_eq!(d.old, Some(json!({"name": {"first": "Sue"}})));
        assert_eq!(d.new, Some(json!({"name": {"first": "Susanna"}})));
        assert_eq!(
            d.changes,
            vec![Change {
                path: "/name/first".into(),
                old: json!("Sue"),
                new: json!("Susanna")
            }]
        );
    }

    #[test]
    fn changed_array_is_kept_whole() {
        let old = json!({"tags": [1, 2, 3], "x": 1});
        let new = json!({"tags": [1, 2, 4], "x": 1});
        let d = diff(Some(&old), Some(&new));
        assert_eq!(d.old, Some(json!({"tags": [1, 2, 3]})));
        assert_eq!(d.new, Some(json!({"tags": [1, 2, 4]})));
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].path, "/tags");
    }

    #[test]
    fn added_key_has_null_on_the_old_side() {
        let d = diff(
            Some(&json!({"a": 1})),
            Some(&json!({"a": 1, "b": {"c": 2}})),
        );
        assert_eq!(d.old, Some(json!({"b": null})));
        assert_eq!(d.new, Some(json!({"b": {"c": 2}})));
        assert_eq!(
            d.changes,
            vec![Change {
                path: "/b".into(),
                old: Value::Null,
                new: json!({"c": 2})
            }]
        );
    }

    #[test]
    fn removed_key_has_null_on_the_new_side() {
        let d = diff(Some(&json!({"a": 1, "b": "x"})), Some(&json!({"a": 1})));
        assert_eq!(d.old, Some(json!({"b": "x"})));
        assert_eq!(d.new, Some(json!({"b": null})));
    }

    #[test]
    fn type_change_is_one_whole_change() {
        let d = diff(Some(&json!({"a": {"b": 1}})), Some(&json!({"a": "flat"})));
        assert_eq!(d.old, Some(json!({"a": {"b": 1}})));
        assert_eq!(d.new, Some(json!({"a": "flat"})));
        assert_eq!(
            d.changes,
            vec![Change {
                path: "/a".into(),
                old: json!({"b": 1}),
                new: json!("flat")
            }]
        );
    }

    #[test]
    fn absent_and_null_are_the_same() {
        let d = diff(Some(&json!({"a": null, "b": 1})), Some(&json!({"b": 1})));
        assert!(d.is_empty());
    }

    #[test]
    fn no_change_gives_empty_sides_and_no_changes() {
        let v = json!({"a": [1], "b": {"c": null}});
        let d = diff(Some(&v), Some(&v.clone()));
        assert!(d.is_empty());
        assert_eq!(d.old, Some(json!({})));
        assert_eq!(d.new, Some(json!({})));
    }

    #[test]
    fn missing_side_is_a_whole_change_at_the_root() {
        let d = diff(None, Some(&json!({"a": 1})));
        assert_eq!(
            d.changes,
            vec![Change {
                path: String::new(),
                old: Value::Null,
                new: json!({"a": 1})
            }]
        );
        assert_eq!(d.old, None);
    }

    #[test]
    fn pointer_segments_are_escaped() {
        let d = diff(
            Some(&json!({"a/b": {"~x": 1}})),
            Some(&json!({"a/b": {"~x": 2}})),
        );
        assert_eq!(d.changes[0].path, "/a~1b/~0x");
    }

    #[test]
    fn masking_hides_values_but_not_that_they_changed() {
        let fields: BTreeSet<String> = ["dateOfBirth".to_string()].into();
        let old =
            json!({"dateOfBirth": "1980-01-01", "name": "Sue", "nested": {"dateOfBirth": "x"}});
        let new =
            json!({"dateOfBirth": "1981-01-01", "name": "Sue", "nested": {"dateOfBirth": "y"}});
        let mut d = diff(Some(&old), Some(&new));
        mask_value(d.old.as_mut().unwrap(), &fields);
        mask_value(d.new.as_mut().unwrap(), &fields);
        mask_changes(&mut d.changes, &fields);
        assert_eq!(
            d.old,
            Some(json!({"dateOfBirth": MASK, "nested": {"dateOfBirth": MASK}}))
        );
        assert_eq!(d.changes.len(), 2);
        assert!(
            d.changes
                .iter()
                .all(|c| c.old == json!(MASK) && c.new == json!(MASK))
        );
        // A whole object added above a masked key is masked inside.
        let mut added = vec![Change {
            path: "/p".into(),
            old: Value::Null,
            new: json!({"dateOfBirth": "z"}),
        }];
        mask_changes(&mut added, &fields);
        assert_eq!(added[0].new, json!({"dateOfBirth": MASK}));
        assert_eq!(added[0].old, Value::Null);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(|n| json!(n)),
            "[ab]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[abc]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn strip_nulls(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, strip_nulls(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
            v => v,
        }
    }

    /// Applies the change list to `old` via JSON Pointers, treating `null` on the new
    /// side of an object key as removal.
    fn apply(old: &Value, changes: &[Change]) -> Value {
        let mut v = old.clone();
        for c in changes {
            if c.path.is_empty() {
                v = c.new.clone();
                continue;
            }
            let (parent, last) = c.path.rsplit_once('/').unwrap();
            let last = last.replace("~1", "/").replace("~0", "~");
            let obj = v.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            if c.new.is_null() && !c.old.is_null() {
                obj.remove(&last);
            } else {
                obj.insert(last, c.new.clone());
            }
        }
        v
    }

    proptest! {
        #[test]
        fn applying_the_changes_to_old_gives_new(
            a in prop::collection::btree_map("[abc]", arb_json(), 0..4),
            b in prop::collection::btree_map("[abc]", arb_json(), 0..4),
        ) {
            // An object key that is null counts as absent, so compare without them.
            let old = Value::Object(a.into_iter().collect());
            let new = Value::Object(b.into_iter().collect());
            let d = diff(Some(&old), Some(&new));
            prop_assert_eq!(strip_nulls(apply(&old, &d.changes)), strip_nulls(new.clone()));
            prop_assert_eq!(d.is_empty(), strip_nulls(old) == strip_nulls(new));
        }

        #[test]
        fn the_changes_alone_are_the_changes_of_the_full_diff(
            old in prop::option::of(arb_json()),
            new in prop::option::of(arb_json()),
        ) {
            let full = diff(old.as_ref(), new.as_ref());
            prop_assert_eq!(changes(old.as_ref(), new.as_ref()), full.changes);
        }
    }
}
