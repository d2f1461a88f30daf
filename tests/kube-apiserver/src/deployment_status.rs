//! The Deployment `status` the real controller reports: counts (zero counts omitted, as
//! `omitempty` does) and the `Available` / `Progressing` conditions, whose timestamps only move
//! when their status or reason changes.

use serde_json::{Map, Value, json};

use crate::controller::{ByOwner, deleting, is_ready, replicas, write_status};
use crate::resources::ResourceType;
use crate::state::ServerState;
use crate::util::now;

/// Percent or absolute `maxUnavailable`, rounded down like the real controller.
fn max_unavailable(d: &Value, desired: i64, recreate: bool) -> i64 {
    if recreate {
        return 0;
    }
    match d.pointer("/spec/strategy/rollingUpdate/maxUnavailable") {
        Some(Value::String(p)) => p
            .trim_end_matches('%')
            .parse::<i64>()
            .map(|p| desired * p / 100)
            .unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => desired / 4,
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    state: &ServerState,
    deploy_rt: &ResourceType,
    d: &Value,
    owned: &[&Value],
    all_pods: &ByOwner,
    current_pods: &[&Value],
    rs_name: &str,
    recreate: bool,
) {
    let pods: Vec<&Value> = owned
        .iter()
        .flat_map(|rs| all_pods.of(rs))
        .filter(|p| !deleting(p))
        .collect();
    let desired = replicas(d);
    let ready = pods.iter().filter(|p| is_ready(p)).count() as i64;
    let updated = current_pods.len() as i64;
    let total = pods.len() as i64;
    let available_ok = ready >= desired - max_unavailable(d, desired, recreate);
    let complete = updated == desired && ready >= desired && total == desired;
    let old_conditions = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |kind: &str, ok: bool, reason: &str, message: String| {
        let t = now();
        let previous = old_conditions.iter().find(|c| c["type"] == kind);
        let same = previous.is_some_and(|p| {
            p["status"] == if ok { "True" } else { "False" } && p["reason"] == reason
        });
        let keep = |field: &str| {
            previous
                .filter(|_| same)
                .map(|p| p[field].clone())
                .unwrap_or(json!(t))
        };
        json!({ "type": kind, "status": if ok { "True" } else { "False" }, "lastUpdateTime": keep("lastUpdateTime"), "lastTransitionTime": keep("lastTransitionTime"), "reason": reason, "message": message })
    };
    let available = if available_ok {
        condition(
            "Available",
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        )
    } else {
        condition(
            "Available",
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )
    };
    let progressing = if complete {
        condition(
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else {
        condition(
            "Progressing",
            true,
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    // Zero counts are omitted, as `omitempty` does on the real server.
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        d["metadata"]["generation"].clone(),
    );
    for (field, value) in [
        ("replicas", total),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
        ("unavailableReplicas", (desired - ready).max(0)),
    ] {
        if value != 0 {
            status.insert(field.into(), json!(value));
        }
    }
    status.insert("conditions".into(), json!([available, progressing]));
    write_status(state, deploy_rt, d, Value::Object(status));
}
