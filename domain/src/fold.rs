//! An entity as it was: its records folded, oldest first. A create or migrate
//! sets the whole entity; an update or end applies what changed (objects merged
//! key by key, anything else replaced whole, a key that became null or absent
//! removed, since publishers send either for "no value"); a delete leaves nothing.

use serde_json::{Map, Value};

use crate::activity::Activity;
use crate::mapping::ActivityType;
use crate::time::Timestamp;

/// What the history knows of an entity at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The entity; `None` once deleted.
    pub state: Option<Value>,
    /// True only when the fold started from a create or migrate that held the
    /// whole entity and no record after it was truncated.
    pub complete: bool,
    /// The last record folded was a delete.
    pub deleted: bool,
    /// Records folded.
    pub activities: usize,
    /// The time of the last record folded.
    pub last_changed_at: Timestamp,
    /// The target type of the last record folded.
    pub target_type: String,
}

/// Folds `records`, oldest first; `None` when there are none.
pub fn fold<'a>(records: impl IntoIterator<Item = &'a Activity>) -> Option<State> {
    let mut folded: Option<State> = None;
    for a in records {
        let s = folded.get_or_insert_with(|| State {
            state: None,
            complete: false,
            deleted: false,
            activities: 0,
            last_changed_at: a.created_at,
            target_type: a.target_type.clone(),
        });
        step(s, a);
        s.activities += 1;
        s.last_changed_at = a.created_at;
        s.target_type.clone_from(&a.target_type);
    }
    folded
}

/// Applies one record.
fn step(s: &mut State, a: &Activity) {
    match a.activity_type {
        ActivityType::Create | ActivityType::Migrate => {
            let whole = a.new_data.clone().filter(|_| !a.truncated);
            s.complete = whole.is_some();
            s.state = Some(whole.unwrap_or_else(|| Value::Object(Map::new())));
            s.deleted = false;
        }
        ActivityType::Update | ActivityType::End => {
            let state = s.state.get_or_insert_with(|| {
                // Changes with nothing known before them: what they say is all
                // the history knows.
                s.complete = false;
                Value::Object(Map::new())
            });
            if a.truncated {
                // What it changed them to is lost: those fields are no longer known.
                s.complete = false;
                for c in a.changes.iter().flatten() {
                    forget(state, &c.path);
                }
            } else {
                apply(state, a.old_data.as_ref(), a.new_data.as_ref());
            }
            s.deleted = false;
        }
        ActivityType::Delete => {
            s.state = None;
            s.deleted = true;
        }
    }
}

/// Removes the value at a JSON Pointer, if there is one.
fn forget(state: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(m)) = state.pointer_mut(parent) {
        m.remove(&key);
    }
}

/// Applies a change from `old` to `new` (reduced to what changed, or whole) to
/// `state`, key by key.
fn apply(state: &mut Value, old: Option<&Value>, new: Option<&Value>) {
    let (Some(Value::Object(new)), Value::Object(target)) = (new, &mut *state) else {
        // Not an object on both sides: the whole value was replaced.
        if let Some(new) = new {
            *state = new.clone();
        }
        return;
    };
    for (key, value) in new {
        let before = old.and_then(|o| o.get(key));
        match (value, target.get_mut(key)) {
            (Value::Null, _) => {
                target.remove(key);
            }
            (Value::Object(_), Some(current @ Value::Object(_))) => {
                apply(current, before, Some(value))
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(Value::Object(old)) = old {
        // A whole old side (the old service's records) names keys the new side
        // dropped: they were removed.
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            target.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::Author;
    use serde_json::json;
    use uuid::Uuid;

    fn record(t: ActivityType, old: Option<Value>, new: Option<Value>) -> Activity {
        Activity {
            id: Uuid::new_v4(),
            target_id: Uuid::nil(),
            target_type: "person".into(),
            activity_type: t,
            created_at: Timestamp::now(),
            old_data: old,
            new_data: new,
            changes: None,
            author: Author::default(),
            source_domain: "Person".into(),
            ttl: None,
            provenance: None,
            truncated: false,
        }
    }

    #[test]
    fn updates_merge_objects_replace_arrays_and_remove_what_became_null() {
        let create = record(
            ActivityType::Create,
            None,
            Some(
                json!({"name": "Sue", "address": {"line1": "1 St", "postcode": "E8 1AA"}, "phones": [1, 2], "nick": "S"}),
            ),
        );
        let update = record(
            ActivityType::Update,
            Some(json!({"address": {"postcode": "E8 1AA"}, "phones": [1, 2], "nick": "S"})),
            Some(json!({"address": {"postcode": "E8 2BB"}, "phones": [3], "nick": null})),
        );
        let s = fold([&create, &update]).unwrap();
        assert_eq!(
            s.state,
            Some(
                json!({"name": "Sue", "address": {"line1": "1 St", "postcode": "E8 2BB"}, "phones": [3]})
            )
        );
        assert!(s.complete);
        assert_eq!(s.activities, 2);
    }

    #[test]
    fn without_a_create_or_after_a_truncated_record_the_state_is_incomplete() {
        let update = record(
            ActivityType::Update,
            Some(json!({"a": 1})),
            Some(json!({"a": 2})),
        );
        let s = fold([&update]).unwrap();
        assert_eq!((s.state, s.complete), (Some(json!({"a": 2})), false));
        let create = record(
            ActivityType::Create,
            None,
            Some(json!({"a": 1, "b": {"c": 2, "d": 3}})),
        );
        let mut cut = update.clone();
        cut.truncated = true;
        cut.changes = Some(vec![crate::diff::Change {
            path: "/b/c".into(),
            old: Value::Null,
            new: Value::Null,
        }]);
        let s = fold([&create, &cut]).unwrap();
        assert!(!s.complete);
        assert_eq!(
            s.state,
            Some(json!({"a": 1, "b": {"d": 3}})),
            "the lost value is not kept stale"
        );
    }

    #[test]
    fn a_delete_leaves_nothing_and_a_create_after_it_starts_again() {
        let create = record(ActivityType::Create, None, Some(json!({"a": 1})));
        let delete = record(ActivityType::Delete, Some(json!({"a": 1})), None);
        let s = fold([&create, &delete]).unwrap();
        assert_eq!((s.state, s.deleted), (None, true));
        let again = record(ActivityType::Create, None, Some(json!({"b": 2})));
        let s = fold([&create, &delete, &again]).unwrap();
        assert_eq!(
            (s.state, s.deleted, s.complete),
            (Some(json!({"b": 2})), false, true)
        );
    }

    #[test]
    fn whole_old_and_new_data_of_the_old_service_fold_too() {
        let create = record(ActivityType::Create, None, Some(json!({"a": 1, "b": 2})));
        let update = record(
            ActivityType::Update,
            Some(json!({"a": 1, "b": 2})),
            Some(json!({"a": 3})),
        );
        assert_eq!(
            fold([&create, &update]).unwrap().state,
            Some(json!({"a": 3}))
        );
    }
}
