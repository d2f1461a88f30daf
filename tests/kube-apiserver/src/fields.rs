//! Field sets for server-side apply: which leaf fields an object (or an apply configuration)
//! sets, in the real `fieldsV1` vocabulary (`f:<field>`, `k:<merge key json>`, `.` for a list
//! item itself), plus reading, removing and printing fields by path.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::merge::{item_key, list_map_keys};

/// One path from the object root: `["f:spec", "f:template", …, "k:{\"name\":\"gw\"}", "f:image"]`.
pub(crate) type FieldPath = Vec<String>;
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a write manages: the main resource or its `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Main { status_subresource: bool },
    Status,
}

/// Metadata fields users own; the rest of `metadata` is the server's.
const TRACKED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The part of `object` whose fields are tracked for `scope`.
pub(crate) fn tracked_part(object: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    let Some(map) = object.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in map {
        let keep = match (scope, k.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, field) => field == "status",
            (Scope::Main { status_subresource }, "status") => !status_subresource,
            (Scope::Main { .. }, "metadata") => {
                let mut meta = Map::new();
                for field in TRACKED_METADATA {
                    if let Some(value) = v.get(*field) {
                        meta.insert((*field).to_string(), value.clone());
                    }
                }
                if !meta.is_empty() {
                    out.insert("metadata".into(), Value::Object(meta));
                }
                false
            }
            _ => true,
        };
        if keep {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// Every leaf field and list item set in `value`.
pub(crate) fn field_set(value: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    walk(value, &mut Vec::new(), "", &mut set);
    set
}

fn walk(value: &Value, path: &mut FieldPath, field: &str, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(format!("f:{k}"));
                walk(v, path, k, set);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match list_map_keys(field, items) {
            Some(keys) => {
                for item in items {
                    path.push(format!("k:{}", Value::Object(item_key(item, keys))));
                    path.push(".".into());
                    set.insert(path.clone());
                    path.pop();
                    walk(item, path, "", set);
                    path.pop();
                }
            }
            None => {
                set.insert(path.clone());
            }
        },
        _ => {
            if !path.is_empty() {
                set.insert(path.clone());
            }
        }
    }
}

/// The `fieldsV1` JSON tree of a set.
pub(crate) fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for segment in path {
            node = node
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("fieldsV1 nodes are objects");
        }
    }
    Value::Object(root)
}

/// The set of a `fieldsV1` tree: its leaves (empty nodes).
pub(crate) fn from_fields_v1(tree: &Value) -> FieldSet {
    fn collect(node: &Value, path: &mut FieldPath, set: &mut FieldSet) {
        match node.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    path.push(k.clone());
                    collect(v, path, set);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    set.insert(path.clone());
                }
            }
        }
    }
    let mut set = FieldSet::new();
    collect(tree, &mut Vec::new(), &mut set);
    set
}

fn item_matches(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter().all(|(k, v)| match item.get(k) {
        Some(have) => have == v,
        None => k == "protocol" && v == "TCP",
    })
}

fn parse_key(segment: &str) -> Option<Map<String, Value>> {
    serde_json::from_str(segment.strip_prefix("k:")?).ok()
}

/// The value at `path` (`.` addresses the list item itself).
pub(crate) fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let Some((segment, rest)) = path.split_first() else {
        return Some(value);
    };
    if segment == "." {
        return Some(value);
    }
    if let Some(field) = segment.strip_prefix("f:") {
        return value_at(value.get(field)?, rest);
    }
    let key = parse_key(segment)?;
    let item = value.as_array()?.iter().find(|i| item_matches(i, &key))?;
    value_at(item, rest)
}

/// Removes the field (or, for a path ending in `.`, the list item) at `path`.
pub(crate) fn remove_at(value: &mut Value, path: &[String]) {
    match path {
        [] => {}
        [key, dot] if dot == "." && key.starts_with("k:") => {
            if let (Some(items), Some(key)) = (value.as_array_mut(), parse_key(key)) {
                items.retain(|i| !item_matches(i, &key));
            }
        }
        [last] => {
            if let (Some(map), Some(field)) = (value.as_object_mut(), last.strip_prefix("f:")) {
                map.remove(field);
            }
        }
        [segment, rest @ ..] => {
            let child = if let Some(field) = segment.strip_prefix("f:") {
                value.get_mut(field)
            } else {
                let key = parse_key(segment);
                value.as_array_mut().and_then(|items| {
                    items
                        .iter_mut()
                        .find(|i| key.as_ref().is_some_and(|k| item_matches(i, k)))
                })
            };
            if let Some(child) = child {
                remove_at(child, rest);
            }
        }
    }
}

/// The path as the real field manager prints it in conflicts: `.spec.containers[name="gw"].image`.
pub(crate) fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if let Some(field) = segment.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = parse_key(segment) {
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keyed_lists_and_round_trip() {
        let obj = json!({"spec": {"replicas": 1, "containers": [{"name": "gw", "image": "x", "args": ["a"]}]}});
        let set = field_set(&obj);
        let printed: Vec<String> = set.iter().map(|p| display_path(p)).collect();
        assert!(
            printed.contains(&".spec.containers[name=\"gw\"].image".to_string()),
            "{printed:?}"
        );
        assert!(set.contains(&vec![
            "f:spec".to_string(),
            "f:containers".into(),
            "k:{\"name\":\"gw\"}".into(),
            ".".into()
        ]));
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
        let image = set.iter().find(|p| p.last().unwrap() == "f:image").unwrap();
        assert_eq!(value_at(&obj, image), Some(&json!("x")));
        let mut copy = obj.clone();
        remove_at(&mut copy, image);
        assert_eq!(copy["spec"]["containers"][0].get("image"), None);
    }
}
