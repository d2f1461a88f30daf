//! PATCH: server-side apply (`application/apply-patch+yaml`, `fieldManager` required, `force`),
//! JSON merge patch, strategic merge patch and JSON patch, on objects and their `status`.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use crate::apply::{Writer, apply};
use crate::crud::{
    check_identity, check_version, current, initial_status, parse_body, scoped, update_object,
};
use crate::defaults::apply_defaults;
use crate::fields::Scope;
use crate::merge::{json_patch, merge_patch, strategic_merge_patch};
use crate::routing::ApiRequest;
use crate::state::ServerState;
use crate::status::{ApiError, json_response};
use crate::store::meta_str;
use crate::util::now;
use crate::validation::validate;

pub(crate) fn patch(
    state: &ServerState,
    req: &ApiRequest,
    name: &str,
    scope: Scope,
) -> Result<Response, ApiError> {
    let content_type = req.header(http::header::CONTENT_TYPE).unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let body = parse_body(req)?;
    // Like the real apiserver's update loop: a patch that names no resourceVersion is
    // re-applied to the newest object when another writer (e.g. a controller's status
    // update) got in between, instead of failing with a conflict.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let outcome = if media == "application/apply-patch+yaml" {
            server_side_apply(state, req, name, scope, body.clone())
        } else {
            patch_once(state, req, name, scope, media, &body)
        };
        match outcome {
            Err(error)
                if is_stale(&error)
                    && !names_resource_version(&body)
                    && attempts < INTERNAL_RETRIES =>
            {
                continue;
            }
            other => return other,
        }
    }
}

/// How often a precondition-free write is retried against a newer object.
const INTERNAL_RETRIES: usize = 16;

fn is_stale(error: &ApiError) -> bool {
    error.code == 409 && error.message.contains("the object has been modified")
}

fn names_resource_version(body: &Value) -> bool {
    body["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|version| !version.is_empty())
}

fn patch_once(
    state: &ServerState,
    req: &ApiRequest,
    name: &str,
    scope: Scope,
    media: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let old = current(state, req, name)?;
    let mut new = old.clone();
    match media {
        "application/merge-patch+json" => merge_patch(&mut new, body),
        "application/strategic-merge-patch+json" => strategic_merge_patch(&mut new, body),
        "application/json-patch+json" => json_patch(&mut new, body)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    }
    check_version(req, name, &old, &new)?;
    let new = scoped(&old, new, scope);
    let updated = update_object(
        state,
        &req.rt,
        &req.namespace,
        &old,
        new,
        &req.update_manager(),
        scope,
    )?;
    Ok(json_response(StatusCode::OK, &updated))
}

fn server_side_apply(
    state: &ServerState,
    req: &ApiRequest,
    name: &str,
    scope: Scope,
    mut body: Value,
) -> Result<Response, ApiError> {
    let manager = req.param("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
        ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
    })?;
    check_identity(req, &mut body)?;
    match meta_str(&body, "name") {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        _ => body["metadata"]["name"] = json!(name),
    }
    let now = now();
    let rt = &req.rt;
    let who = Writer {
        rt,
        manager,
        scope,
        now: &now,
    };
    let old = state.object(rt, &req.namespace, name);
    let mut new = apply(old.as_ref(), &body, &who, req.flag("force"))?;
    apply_defaults(&rt.kind, &mut new);
    validate(rt, &new, old.as_ref())?;
    let mut store = state.store.lock();
    let result = match store.get(rt, &req.namespace, name).cloned() {
        // Re-check under the lock: the object may have changed since we read it.
        Some(live) if Some(&live) != old.as_ref() => {
            return Err(ApiError::stale_resource_version(rt, name));
        }
        Some(_) => store.update(rt, &req.namespace, new)?,
        // Deleted since we read it: like the apiserver, apply again, which creates it.
        None if old.is_some() => return Err(ApiError::stale_resource_version(rt, name)),
        None => {
            if let (true, Some(status)) = (rt.status_subresource, initial_status(&rt.kind)) {
                new["status"] = status;
            }
            let created = store.create(rt, &req.namespace, new)?;
            return Ok(json_response(StatusCode::CREATED, &created));
        }
    };
    Ok(json_response(StatusCode::OK, &result))
}
