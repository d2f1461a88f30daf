//! The `scale` subresource of Deployments and ReplicaSets (`autoscaling/v1` `Scale`).

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::crud::update_object;
use crate::fields::Scope;
use crate::merge::{json_patch, merge_patch};
use crate::routing::ApiRequest;
use crate::state::ServerState;
use crate::status::{ApiError, json_response};

fn to_scale(object: &Value) -> Value {
    let selector: Vec<String> = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1)) },
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector.join(","),
        },
    })
}

pub(crate) fn serve(
    state: &ServerState,
    method: &Method,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    if !matches!(req.rt.kind.as_str(), "Deployment" | "ReplicaSet") {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let name = req.name.as_deref().unwrap_or_default();
    let old = state
        .object(&req.rt, &req.namespace, name)
        .ok_or_else(|| ApiError::not_found(&req.rt, name))?;
    let mut scale = to_scale(&old);
    if *method == Method::GET {
        return Ok(json_response(StatusCode::OK, &scale));
    }
    let body: Value =
        serde_json::from_slice(&req.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let media = req
        .header(http::header::CONTENT_TYPE)
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    match (method.as_str(), media.as_str()) {
        ("PUT", _) => scale = body,
        ("PATCH", "application/json-patch+json") => json_patch(&mut scale, &body)?,
        // Merge, strategic and apply patches of a Scale all come down to a merge of spec.replicas.
        ("PATCH", _) => merge_patch(&mut scale, &body),
        _ => return Err(ApiError::method_not_allowed()),
    }
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let mut new = old.clone();
    new["spec"]["replicas"] = replicas;
    let manager = req.update_manager();
    let updated = update_object(
        state,
        &req.rt,
        &req.namespace,
        &old,
        new,
        &manager,
        Scope::Main {
            status_subresource: true,
        },
    )?;
    Ok(json_response(StatusCode::OK, &to_scale(&updated)))
}
