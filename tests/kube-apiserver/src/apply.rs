//! Server-side apply and `metadata.managedFields` bookkeeping.
//!
//! Each manager owns a set of leaf fields (see [`crate::fields`]). An apply takes ownership of the
//! fields in its configuration, removes fields it applied before and omits now (unless another
//! manager also owns them), merges associative lists by key, and reports a 409 for fields another
//! manager owns with a different value unless `force` is set, which moves ownership. Any other
//! write (create, update, patch) is an `Update` operation: its manager takes the fields it
//! changed, and fields it removed disappear from every manager's set.

use serde_json::{Map, Value, json};

use crate::fields::{
    FieldPath, FieldSet, Scope, display_path, field_set, from_fields_v1, remove_at, to_fields_v1,
    tracked_part, value_at,
};
use crate::merge::list_map_keys;
use crate::resources::ResourceType;
use crate::status::ApiError;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn in_scope(&self, scope: Scope) -> bool {
        match scope {
            Scope::Status => self.subresource.as_deref() == Some("status"),
            Scope::Main { .. } => self.subresource.is_none(),
        }
    }
}

/// Who is writing and how.
pub(crate) struct Writer<'a> {
    pub rt: &'a ResourceType,
    pub manager: &'a str,
    pub scope: Scope,
    pub now: &'a str,
}

fn read_entries(object: &Value) -> Vec<Entry> {
    let Some(items) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    items
        .iter()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or_default().to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .map(str::to_string),
            fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
        .collect()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let rendered: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(sub) = e.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    let meta = object
        .as_object_mut()
        .expect("objects are JSON objects")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if rendered.is_empty() {
        meta.as_object_mut().map(|m| m.remove("managedFields"));
    } else {
        meta["managedFields"] = Value::Array(rendered);
    }
}

/// Replaces (or adds) `who`'s entry with `fields`, keeping its old timestamp when nothing changed
/// so that a no-op write stays a no-op.
fn set_entry(entries: &mut Vec<Entry>, who: &Writer<'_>, operation: &str, fields: FieldSet) {
    let subresource = matches!(who.scope, Scope::Status).then(|| "status".to_string());
    let position = entries.iter().position(|e| {
        e.manager == who.manager && e.operation == operation && e.subresource == subresource
    });
    let time = match position {
        Some(i) if entries[i].fields == fields => entries[i].time.clone(),
        _ => who.now.to_string(),
    };
    let entry = Entry {
        manager: who.manager.to_string(),
        operation: operation.to_string(),
        api_version: who.rt.api_version(),
        time,
        subresource,
        fields,
    };
    match position {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
}

/// Server-side apply of the configuration `applied` onto `live` (`None` creates).
pub(crate) fn apply(
    live: Option<&Value>,
    applied: &Value,
    who: &Writer<'_>,
    force: bool,
) -> Result<Value, ApiError> {
    let name = applied
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let config = tracked_part(applied, who.scope);
    let applied_set = field_set(&config);
    let mut object = match live {
        Some(live) => live.clone(),
        None => {
            let mut fresh =
                json!({ "apiVersion": who.rt.api_version(), "kind": who.rt.kind, "metadata": {} });
            if let Some(meta) = applied.get("metadata").and_then(Value::as_object) {
                for field in ["name", "namespace", "generateName"] {
                    if let Some(v) = meta.get(field) {
                        fresh["metadata"][field] = v.clone();
                    }
                }
            }
            fresh
        }
    };
    let mut entries = read_entries(&object);
    let is_me = |e: &Entry| e.manager == who.manager && e.operation == "Apply";

    // Conflicts: fields another manager owns whose live value differs from the applied one.
    let mut conflicts: Vec<(String, String)> = Vec::new();
    let mut conflicting: Vec<(usize, FieldPath)> = Vec::new();
    for (i, entry) in entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.in_scope(who.scope) && !is_me(e))
    {
        for path in entry.fields.intersection(&applied_set) {
            if path.last().is_some_and(|s| s == ".") {
                continue;
            }
            if value_at(&object, path) != value_at(&config, path) {
                conflicts.push((display_path(path), entry.manager.clone()));
                conflicting.push((i, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApiError::apply_conflicts(who.rt, name, &conflicts));
    }
    for (i, path) in conflicting {
        entries[i].fields.remove(&path);
    }

    // Fields this manager applied before and omits now go away unless someone else owns them.
    let previous: FieldSet = entries
        .iter()
        .find(|e| is_me(e) && e.in_scope(who.scope))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.in_scope(who.scope) && !is_me(e))
        .collect();
    for path in previous.difference(&applied_set) {
        // A list item (path ending in `.`) or a map stays while anything beneath it is owned.
        let prefix = if path.last().is_some_and(|s| s == ".") {
            &path[..path.len() - 1]
        } else {
            &path[..]
        };
        let still_owned = others
            .iter()
            .any(|e| e.fields.iter().any(|p| p.starts_with(prefix)))
            || applied_set.iter().any(|p| p.starts_with(prefix));
        if !still_owned {
            remove_at(&mut object, path);
        }
    }

    merge_config(&mut object, &config, "");
    set_entry(&mut entries, who, "Apply", applied_set);
    write_entries(&mut object, entries);
    Ok(object)
}

/// Merges an apply configuration: maps recursively, associative lists by key, the rest replaces.
fn merge_config(live: &mut Value, config: &Value, field: &str) {
    match config {
        Value::Object(map) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let live_map = live.as_object_mut().expect("object");
            for (k, v) in map {
                if v.is_null() {
                    live_map.remove(k);
                } else {
                    merge_config(live_map.entry(k.clone()).or_insert(Value::Null), v, k);
                }
            }
        }
        Value::Array(items) => {
            let live_items = live.as_array().cloned().unwrap_or_default();
            let all: Vec<Value> = live_items.iter().chain(items).cloned().collect();
            let Some(keys) = list_map_keys(field, &all) else {
                *live = config.clone();
                return;
            };
            let mut merged = live_items;
            for item in items {
                let key = crate::merge::item_key(item, keys);
                match merged
                    .iter()
                    .position(|m| crate::merge::item_key(m, keys) == key)
                {
                    Some(i) => merge_config(&mut merged[i], item, ""),
                    None => merged.push(item.clone()),
                }
            }
            *live = Value::Array(merged);
        }
        other => *live = other.clone(),
    }
}

/// Records a non-apply write of `new` over `old` (`None` for a create) in `new`'s managedFields.
pub(crate) fn record_update(old: Option<&Value>, new: &mut Value, who: &Writer<'_>) {
    let old_part = old
        .map(|o| tracked_part(o, who.scope))
        .unwrap_or_else(|| json!({}));
    let new_part = tracked_part(new, who.scope);
    let old_set = field_set(&old_part);
    let new_set = field_set(&new_part);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| !old_set.contains(*p) || value_at(&old_part, p) != value_at(&new_part, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();

    // The previous entries are authoritative: clients echo managedFields back on PUT.
    let mut entries = old.map(read_entries).unwrap_or_default();
    for entry in entries.iter_mut().filter(|e| e.in_scope(who.scope)) {
        entry
            .fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let mine = entries
        .iter()
        .find(|e| e.manager == who.manager && e.operation == "Update" && e.in_scope(who.scope))
        .map(|e| e.fields.clone());
    if !changed.is_empty() || mine.is_some() {
        let mut fields = mine.unwrap_or_default();
        fields.extend(changed);
        set_entry(&mut entries, who, "Update", fields);
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn who<'a>(rt: &'a ResourceType, manager: &'a str) -> Writer<'a> {
        Writer {
            rt,
            manager,
            scope: Scope::Main {
                status_subresource: true,
            },
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn conflicts_force_and_removal() {
        let registry = Registry::new(&[]);
        let rt = registry.find("Deployment").unwrap().clone();
        let a = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1, "paused": false}});
        let obj = apply(None, &a, &who(&rt, "a"), false).unwrap();
        // Same value from another manager: shared, no conflict.
        let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}});
        let obj = apply(Some(&obj), &b, &who(&rt, "b"), false).unwrap();
        let b2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 2}});
        let err = apply(Some(&obj), &b2, &who(&rt, "b"), false).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.message.contains(".spec.replicas"), "{}", err.message);
        let obj = apply(Some(&obj), &b2, &who(&rt, "b"), true).unwrap();
        assert_eq!(obj["spec"]["replicas"], 2);
        // `a` drops `paused`: removed, as nobody else owns it; replicas now b's alone.
        let a2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}});
        let obj2 = apply(Some(&obj), &a2, &who(&rt, "a"), false).unwrap();
        assert_eq!(obj2["spec"], json!({"replicas": 2}));
        // Unchanged re-apply is byte-identical.
        assert_eq!(
            apply(Some(&obj2), &a2, &who(&rt, "a"), false).unwrap(),
            obj2
        );
    }
}
