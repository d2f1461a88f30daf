//! Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`, and the
//! aggregated (apidiscovery.k8s.io/v2) form of `/api` and `/apis` that kube-rs asks for with
//! `Discovery::run_aggregated`.

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::state::ServerState;
use crate::status::{ApiError, json_response, json_response_typed};
use axum::response::IntoResponse;

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The subresources of a kind: (name, response group, version, kind, verbs).
fn subresources(
    rt: &ResourceType,
) -> Vec<(&'static str, String, String, String, Vec<&'static str>)> {
    let mut subs = Vec::new();
    if rt.status_subresource {
        subs.push((
            "status",
            rt.group.clone(),
            rt.version.clone(),
            rt.kind.clone(),
            vec!["get", "patch", "update"],
        ));
    }
    if matches!(rt.kind.as_str(), "Deployment" | "ReplicaSet") {
        subs.push((
            "scale",
            "autoscaling".into(),
            "v1".into(),
            "Scale".into(),
            vec!["get", "patch", "update"],
        ));
    }
    if rt.kind == "Pod" {
        subs.push((
            "exec",
            String::new(),
            "v1".into(),
            "PodExecOptions".into(),
            vec!["create", "get"],
        ));
        subs.push(("log", String::new(), "v1".into(), "Pod".into(), vec!["get"]));
    }
    subs
}

fn resource_list(state: &ServerState, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for rt in state.registry.in_group_version(group, version) {
        let mut entry = json!({
            "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
            "kind": rt.kind, "verbs": VERBS,
        });
        if !rt.short_names.is_empty() {
            entry["shortNames"] = json!(rt.short_names);
        }
        resources.push(entry);
        for (sub, _, _, kind, verbs) in subresources(rt) {
            resources.push(json!({
                "name": format!("{}/{sub}", rt.plural), "singularName": "", "namespaced": rt.namespaced,
                "kind": kind, "verbs": verbs,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    json!({ "name": name, "versions": versions, "preferredVersion": versions[0] })
}

fn aggregated_group(state: &ServerState, name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = state
                .registry
                .in_group_version(name, v)
                .into_iter()
                .map(|rt| {
                    let subs: Vec<Value> = subresources(rt)
                        .into_iter()
                        .map(|(sub, g, ver, kind, verbs)| json!({ "subresource": sub, "responseKind": { "group": g, "version": ver, "kind": kind }, "verbs": verbs }))
                        .collect();
                    json!({
                        "resource": rt.plural,
                        "responseKind": { "group": rt.group, "version": rt.version, "kind": rt.kind },
                        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": rt.singular,
                        "verbs": VERBS,
                        "shortNames": rt.short_names,
                        "subresources": subs,
                    })
                })
                .collect();
            json!({ "version": v, "resources": resources, "freshness": "Current" })
        })
        .collect();
    json!({ "metadata": { "name": name, "creationTimestamp": null }, "versions": versions })
}

fn aggregated_list(items: Vec<Value>) -> Response {
    let body = json!({ "kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items });
    json_response_typed(
        StatusCode::OK,
        &body,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    )
}

pub(crate) fn serve(state: &ServerState, segments: &[String], headers: &HeaderMap) -> Response {
    let aggregated = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"));
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let groups = state.registry.groups();
    let body = match segments.as_slice() {
        ["version"] => json!({
            "major": "1", "minor": "35", "emulationMajor": "1", "emulationMinor": "35",
            "gitVersion": "v1.35.0", "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2025-12-17T00:00:00Z", "goVersion": "go1.25.5",
            "compiler": "gc", "platform": "linux/amd64",
        }),
        ["api"] if aggregated => {
            return aggregated_list(vec![aggregated_group(state, "", &["v1".to_string()])]);
        }
        ["api"] => {
            let address = state.address.lock().map(|a| a.clone()).unwrap_or_default();
            json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": address }] })
        }
        ["api", "v1"] => resource_list(state, "", "v1"),
        ["apis"] if aggregated => {
            return aggregated_list(
                groups
                    .iter()
                    .map(|(g, vs)| aggregated_group(state, g, vs))
                    .collect(),
            );
        }
        ["apis"] => {
            let list: Vec<Value> = groups.iter().map(|(g, vs)| group_entry(g, vs)).collect();
            json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": list })
        }
        ["apis", group] => match groups.iter().find(|(g, _)| g == group) {
            Some((g, vs)) => {
                let mut entry = group_entry(g, vs);
                entry["kind"] = json!("APIGroup");
                entry["apiVersion"] = json!("v1");
                entry
            }
            None => return not_found(),
        },
        ["apis", group, version]
            if groups
                .iter()
                .any(|(g, vs)| g == group && vs.iter().any(|v| v == version)) =>
        {
            resource_list(state, group, version)
        }
        _ => return not_found(),
    };
    json_response(StatusCode::OK, &body)
}

fn not_found() -> Response {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    .into_response()
}
