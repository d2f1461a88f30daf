//! "Does the live object already say what we would apply?" — the test that keeps the
//! runtime from writing when nothing changed (the reconcile storm of the
//! openclaw-operator came from diffing against objects the apiserver had defaulted).
//!
//! Every field of the desired object must be present in the live one with the same
//! value; fields the live object has beyond that (apiserver defaults, status,
//! metadata, other managers' fields) are ignored. Lists match element-wise when they
//! have the same length, otherwise each desired element must match some live one (a
//! keyed list another manager added to, which apply could not shrink either).

use serde_json::Value;

/// Whether every field of `desired` is in `live` with the same value.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(desired), Value::Object(live)) => desired.iter().all(|(key, value)| {
            match live.get(key) {
                Some(live_value) => is_subset(value, live_value),
                // An empty map or list we set reads back as absent.
                None => is_empty(value),
            }
        }),
        (Value::Array(desired), Value::Array(live)) => {
            if desired.len() == live.len() {
                desired
                    .iter()
                    .zip(live)
                    .all(|(desired, live)| is_subset(desired, live))
            } else {
                desired.len() < live.len()
                    && desired
                        .iter()
                        .all(|desired| live.iter().any(|live| is_subset(desired, live)))
            }
        }
        (Value::Number(desired), Value::Number(live)) => {
            desired == live || desired.as_f64() == live.as_f64()
        }
        (desired, Value::Null) => is_empty(desired),
        (desired, live) => desired == live,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_status_and_metadata_added_by_the_server_are_not_drift() {
        let desired = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "gateway", "image": "x"}]}}}});
        let live = json!({
            "metadata": {"resourceVersion": "7", "managedFields": []},
            "spec": {"replicas": 1, "revisionHistoryLimit": 10, "template": {"spec": {
                "containers": [{"name": "gateway", "image": "x", "imagePullPolicy": "Always"}],
                "dnsPolicy": "ClusterFirst"}}},
            "status": {"replicas": 1}
        });
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn a_changed_or_missing_field_is_drift() {
        let desired = json!({"spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 81}]}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 0, "ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 1, "ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})
        ));
        // Another manager's extra list element is not ours to fight over.
        assert!(is_subset(
            &desired,
            &json!({"spec": {"replicas": 1, "ports": [{"port": 81}, {"port": 82}, {"port": 80}]}})
        ));
        assert!(is_subset(
            &json!({"metadata": {"annotations": {}}}),
            &json!({"metadata": {}})
        ));
    }
}
