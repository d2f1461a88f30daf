//! The non-apply patch formats: JSON merge patch (RFC 7386), strategic merge patch (merge patch
//! where lists of objects with a merge key merge by key), and JSON patch (RFC 6902). Also the
//! shared table of list merge keys, used by server-side apply too.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// Merge keys of the associative lists of the kinds we serve (the `x-kubernetes-list-map-keys`
/// of the OpenAPI schema). `None` means the list is atomic.
pub(crate) fn list_map_keys(field: &str, items: &[Value]) -> Option<&'static [&'static str]> {
    let all_have = |key: &str| !items.is_empty() && items.iter().all(|i| i.get(key).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "hostAliases"
        | "containerStatuses"
        | "initContainerStatuses" => Some(&["name"]),
        "volumeMounts" | "volumeDevices" => Some(&["mountPath"]),
        "conditions" => Some(&["type"]),
        "ports" if all_have("containerPort") => Some(&["containerPort", "protocol"]),
        "ports" if all_have("port") => Some(&["port", "protocol"]),
        "ownerReferences" => Some(&["uid"]),
        "managedFields" => None,
        // Anything else that is a list of objects all carrying a `name` merges by name.
        _ if all_have("name") && items.iter().all(Value::is_object) => Some(&["name"]),
        _ => None,
    }
}

/// The key of one list item: the values of the merge-key fields it has.
pub(crate) fn item_key(item: &Value, keys: &[&str]) -> Map<String, Value> {
    let mut key = Map::new();
    for k in keys {
        if let Some(v) = item.get(*k) {
            key.insert((*k).to_string(), v.clone());
        } else if *k == "protocol" {
            // `protocol` defaults to TCP before merging, so an omitted protocol keys as TCP.
            key.insert("protocol".into(), Value::String("TCP".into()));
        }
    }
    key
}

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("object");
    for (k, v) in patch_map {
        if v.is_null() {
            target_map.remove(k);
        } else {
            merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Strategic merge patch: like a merge patch, but lists with a merge key merge item by item
/// (an item with `$patch: delete` removes the match), and `finalizers` are unioned.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    strategic_merge(target, patch, "")
}

fn strategic_merge(target: &mut Value, patch: &Value, field: &str) {
    match patch {
        Value::Object(patch_map) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let target_map = target.as_object_mut().expect("object");
            for (k, v) in patch_map {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    target_map.remove(k);
                } else {
                    strategic_merge(target_map.entry(k.clone()).or_insert(Value::Null), v, k);
                }
            }
        }
        Value::Array(patch_items) => {
            let live_items = target.as_array().cloned().unwrap_or_default();
            if field == "finalizers" {
                let mut merged = live_items;
                for item in patch_items {
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                }
                *target = Value::Array(merged);
                return;
            }
            let all: Vec<Value> = live_items.iter().chain(patch_items).cloned().collect();
            let Some(keys) = list_map_keys(field, &all) else {
                *target = patch.clone();
                return;
            };
            let mut merged = live_items;
            for item in patch_items {
                let key = item_key(item, keys);
                let position = merged.iter().position(|m| item_key(m, keys) == key);
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        merged.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => strategic_merge(&mut merged[i], item, ""),
                    (None, false) => {
                        let mut fresh = Value::Null;
                        strategic_merge(&mut fresh, item, "");
                        merged.push(fresh);
                    }
                }
            }
            *target = Value::Array(merged);
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch (`add`, `remove`, `replace`, `move`, `copy`, `test`).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch must be an array of operations"))?;
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::bad_request(format!("missing value for {name} {path}")))
        };
        match name {
            "add" => add(target, path, value()?)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value()?)?;
            }
            "move" | "copy" => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or_default();
                let moved = if name == "move" {
                    remove(target, from)?
                } else {
                    target.pointer(from).cloned().ok_or_else(|| missing(from))?
                };
                add(target, path, moved)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: testing value {path} failed"
                        ),
                    ));
                }
            }
            other => return Err(ApiError::bad_request(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(())
}

fn missing(path: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!(
            "the server rejected our request due to an error in our request: jsonpatch: path {path} does not exist"
        ),
    )
}

fn split_pointer(path: &str) -> Result<(String, String), ApiError> {
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| missing(path))?;
    Ok((
        parent.to_string(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
        }
        Some(Value::Array(items)) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse().map_err(|_| missing(path))?
            };
            if index > items.len() {
                return Err(missing(path));
            }
            items.insert(index, value);
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(map)) => map.remove(&last).ok_or_else(|| missing(path)),
        Some(Value::Array(items)) => {
            let index: usize = last.parse().map_err(|_| missing(path))?;
            (index < items.len())
                .then(|| items.remove(index))
                .ok_or_else(|| missing(path))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut live = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}], "args": [1, 2]}});
        strategic_merge_patch(
            &mut live,
            &json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}], "args": [3]}}),
        );
        assert_eq!(
            live,
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}], "args": [3]}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut v = json!({"a": [1, 2], "b": {"c": 1}});
        json_patch(&mut v, &json!([{"op": "add", "path": "/a/-", "value": 3}, {"op": "remove", "path": "/b/c"}, {"op": "replace", "path": "/a/0", "value": 9}])).unwrap();
        assert_eq!(v, json!({"a": [9, 2, 3], "b": {}}));
    }
}
