//! GET / LIST / POST / PUT / PATCH / DELETE on objects and their `status` subresource.

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::apply::{Writer, record_update};
use crate::defaults::apply_defaults;
use crate::fields::Scope;
use crate::gc::{self, DeleteOptions, Deleted};
use crate::routing::ApiRequest;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::ServerState;
use crate::status::{ApiError, json_response};
use crate::util::now;
use crate::validation::validate;
use crate::{scale, store::meta_str};

pub(crate) fn serve(
    state: &ServerState,
    method: &Method,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    if req.subresource.as_deref() == Some("scale") {
        return scale::serve(state, method, req);
    }
    let scope = match req.subresource.as_deref() {
        None => Scope::Main {
            status_subresource: req.rt.status_subresource,
        },
        Some("status") if req.rt.status_subresource => Scope::Status,
        Some(_) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    match (method.as_str(), req.name.as_deref()) {
        ("GET", Some(name)) => get(state, req, name),
        ("GET", None) => list(state, req),
        ("POST", None) => create(state, req),
        ("PUT", Some(name)) => replace(state, req, name, scope),
        ("PATCH", Some(name)) => crate::patch::patch(state, req, name, scope),
        ("DELETE", Some(name)) => delete(state, req, name),
        ("DELETE", None) => delete_collection(state, req),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The object as served: whole, or as `PartialObjectMetadata` when asked for metadata only.
pub(crate) fn render(object: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({ "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object["metadata"] })
    } else {
        object.clone()
    }
}

pub(crate) fn parse_body(req: &ApiRequest) -> Result<Value, ApiError> {
    serde_json::from_slice(&req.body).map_err(|e| {
        // JSON is the YAML subset kube-rs sends; real YAML documents are not supported here.
        ApiError::bad_request(format!(
            "error decoding body (this test server accepts JSON, including JSON apply patches): {e}"
        ))
    })
}

fn get(state: &ServerState, req: &ApiRequest, name: &str) -> Result<Response, ApiError> {
    let object = state
        .object(&req.rt, &req.namespace, name)
        .ok_or_else(|| ApiError::not_found(&req.rt, name))?;
    Ok(json_response(
        StatusCode::OK,
        &render(&object, req.metadata_only()),
    ))
}

/// Objects matching the request's namespace and selectors, plus the list resourceVersion.
pub(crate) fn matching(
    state: &ServerState,
    req: &ApiRequest,
) -> Result<(Vec<Value>, u64), ApiError> {
    matching_page(state, req, None, None).map(|(items, _, rv)| (items, rv))
}

/// One page of [`matching`]: the objects after position `after` (`namespace/name`, the
/// store's order), at most `limit` of them cloned, and how many more match. Like etcd's
/// range reads, a page costs what it returns, not the whole collection (a client listing
/// 10,000 pods in pages of 100 must not make the server copy them 100 times).
fn matching_page(
    state: &ServerState,
    req: &ApiRequest,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<(Vec<Value>, usize, u64), ApiError> {
    let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(req.param("fieldSelector").unwrap_or_default(), &req.rt)?;
    let store = state.store.lock();
    let ns = (!req.all_namespaces && req.rt.namespaced).then_some(req.namespace.as_str());
    let mut items = Vec::new();
    let mut more = 0;
    for object in store
        .list(&req.rt, ns)
        .into_iter()
        .filter(|o| after.is_none_or(|after| position(o).as_str() > after))
        .filter(|o| labels.matches(o) && fields.matches(o))
    {
        if limit.is_some_and(|limit| items.len() >= limit) {
            more += 1;
        } else {
            items.push(object.clone());
        }
    }
    Ok((items, more, store.resource_version()))
}

/// An object's place in the store's order: `namespace/name`.
fn position(o: &Value) -> String {
    format!(
        "{}/{}",
        meta_str(o, "namespace").unwrap_or_default(),
        meta_str(o, "name").unwrap_or_default()
    )
}

fn list(state: &ServerState, req: &ApiRequest) -> Result<Response, ApiError> {
    // The continue token is the hex of "<rv>:<last namespace/name>", opaque to clients.
    let (list_rv, after) = match req.param("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let decoded = decode_hex(token)
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            let (rv, key) = decoded
                .split_once(':')
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            (Some(rv.parse().unwrap_or(0)), Some(key.to_string()))
        }
        None => (None, None),
    };
    let limit = req
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (remaining, more, rv) = matching_page(state, req, after.as_deref(), limit)?;
    let list_rv = list_rv.unwrap_or(rv);
    let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
    if more > 0
        && let Some(last) = remaining.last()
    {
        let last = position(last);
        metadata["continue"] = json!(encode_hex(&format!("{list_rv}:{last}")));
        metadata["remainingItemCount"] = json!(more);
    }
    let metadata_only = req.metadata_only();
    // Like the real server, list items carry no apiVersion/kind of their own.
    let items: Vec<Value> = remaining
        .iter()
        .map(|o| {
            let mut item = render(o, metadata_only);
            if let Some(map) = item.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
            item
        })
        .collect();
    let (api_version, kind) = if metadata_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        )
    } else {
        (req.rt.api_version(), format!("{}List", req.rt.kind))
    };
    let body =
        json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items });
    Ok(json_response(StatusCode::OK, &body))
}

fn encode_hex(s: &str) -> String {
    hex::encode(s)
}

fn decode_hex(s: &str) -> Option<String> {
    String::from_utf8(hex::decode(s).ok()?).ok()
}

/// Checks `apiVersion`/`kind`/namespace of a body against the URL, filling them when absent.
pub(crate) fn check_identity(req: &ApiRequest, object: &mut Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let rt = &req.rt;
    for (field, want) in [("apiVersion", rt.api_version()), ("kind", rt.kind.clone())] {
        match object.get(field).and_then(Value::as_str) {
            Some(have) if have != want => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({}) does not match the expected API version ({})",
                    object["apiVersion"].as_str().unwrap_or_default(),
                    rt.api_version()
                )));
            }
            _ => object[field] = json!(want),
        }
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if rt.namespaced {
        match meta_str(object, "namespace") {
            Some(ns) if !ns.is_empty() && ns != req.namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => object["metadata"]["namespace"] = json!(req.namespace),
        }
    }
    Ok(())
}

/// The status a new object starts with, as the real registry strategies set it.
pub(crate) fn initial_status(kind: &str) -> Option<Value> {
    match kind {
        "Pod" => Some(json!({ "phase": "Pending", "qosClass": "BestEffort" })),
        "PersistentVolumeClaim" => Some(json!({ "phase": "Pending" })),
        "Service" => Some(json!({ "loadBalancer": {} })),
        "Deployment" | "ReplicaSet" => Some(json!({})),
        _ => None,
    }
}

fn create(state: &ServerState, req: &ApiRequest) -> Result<Response, ApiError> {
    let mut object = parse_body(req)?;
    check_identity(req, &mut object)?;
    if let Some(map) = object["metadata"].as_object_mut() {
        map.remove("managedFields");
        map.remove("resourceVersion");
    }
    if req.rt.status_subresource {
        object.as_object_mut().map(|m| m.remove("status"));
        if let Some(status) = initial_status(&req.rt.kind) {
            object["status"] = status;
        }
    }
    let created = create_object(
        state,
        &req.rt,
        &req.namespace,
        object,
        &req.update_manager(),
        req.param("dryRun").is_some(),
    )?;
    Ok(json_response(StatusCode::CREATED, &created))
}

/// Creates `object` as `manager` (shared with the controllers).
pub(crate) fn create_object(
    state: &ServerState,
    rt: &crate::resources::ResourceType,
    ns: &str,
    mut object: Value,
    manager: &str,
    dry_run: bool,
) -> Result<Value, ApiError> {
    apply_defaults(&rt.kind, &mut object);
    let now = now();
    let who = Writer {
        rt,
        manager,
        scope: Scope::Main {
            status_subresource: rt.status_subresource,
        },
        now: &now,
    };
    record_update(None, &mut object, &who);
    let name = meta_str(&object, "name").unwrap_or_default().to_string();
    if !name.is_empty() {
        validate(rt, &object, None)?;
    }
    let mut store = state.store.lock();
    if dry_run {
        return match store.get(rt, ns, &name) {
            Some(_) => Err(ApiError::already_exists(rt, &name)),
            None => Ok(object),
        };
    }
    store.create(rt, ns, object)
}

/// Shapes `new` for `scope`: a main write keeps the stored status, a status write keeps the rest.
pub(crate) fn scoped(old: &Value, mut new: Value, scope: Scope) -> Value {
    match scope {
        Scope::Main {
            status_subresource: true,
        } => {
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
            new
        }
        Scope::Main { .. } => new,
        Scope::Status => {
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if let Some(map) = merged
                .as_object_mut()
                .filter(|_| new.get("status").is_none())
            {
                map.remove("status");
            }
            merged
        }
    }
}

/// Defaults, records managed fields, validates and stores `new` over `old`.
pub(crate) fn update_object(
    state: &ServerState,
    rt: &crate::resources::ResourceType,
    ns: &str,
    old: &Value,
    mut new: Value,
    manager: &str,
    scope: Scope,
) -> Result<Value, ApiError> {
    apply_defaults(&rt.kind, &mut new);
    let now = now();
    record_update(
        Some(old),
        &mut new,
        &Writer {
            rt,
            manager,
            scope,
            now: &now,
        },
    );
    validate(rt, &new, Some(old))?;
    state.store.lock().update(rt, ns, new)
}

pub(crate) fn current(
    state: &ServerState,
    req: &ApiRequest,
    name: &str,
) -> Result<Value, ApiError> {
    state
        .object(&req.rt, &req.namespace, name)
        .ok_or_else(|| ApiError::not_found(&req.rt, name))
}

pub(crate) fn check_version(
    req: &ApiRequest,
    name: &str,
    old: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    match meta_str(new, "resourceVersion") {
        Some(rv) if !rv.is_empty() && Some(rv) != meta_str(old, "resourceVersion") => {
            Err(ApiError::stale_resource_version(&req.rt, name))
        }
        _ => Ok(()),
    }
}

fn replace(
    state: &ServerState,
    req: &ApiRequest,
    name: &str,
    scope: Scope,
) -> Result<Response, ApiError> {
    let mut object = parse_body(req)?;
    check_identity(req, &mut object)?;
    if meta_str(&object, "name") != Some(name) {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    let old = current(state, req, name)?;
    check_version(req, name, &old, &object)?;
    let new = scoped(&old, object, scope);
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

fn delete_options(req: &ApiRequest) -> Result<DeleteOptions, ApiError> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        parse_body(req)?
    };
    DeleteOptions::parse(&body, req.param("propagationPolicy"))
}

fn delete(state: &ServerState, req: &ApiRequest, name: &str) -> Result<Response, ApiError> {
    let options = delete_options(req)?;
    let result = gc::delete(
        &mut state.store.lock(),
        &req.rt,
        &req.namespace,
        name,
        &options,
    )?;
    Ok(match result {
        Deleted::Gone(object) => json_response(StatusCode::OK, &object),
        Deleted::Pending(object) => json_response(StatusCode::ACCEPTED, &object),
    })
}

fn delete_collection(state: &ServerState, req: &ApiRequest) -> Result<Response, ApiError> {
    let options = delete_options(req)?;
    let (items, _) = matching(state, req)?;
    let mut store = state.store.lock();
    let mut deleted = Vec::new();
    for item in items {
        let ns = meta_str(&item, "namespace").unwrap_or_default().to_string();
        let name = meta_str(&item, "name").unwrap_or_default().to_string();
        if let Ok(Deleted::Gone(o) | Deleted::Pending(o)) =
            gc::delete(&mut store, &req.rt, &ns, &name, &options)
        {
            deleted.push(o);
        }
    }
    let body = json!({
        "kind": format!("{}List", req.rt.kind),
        "apiVersion": req.rt.api_version(),
        "metadata": { "resourceVersion": store.resource_version().to_string() },
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, &body))
}
