//! Request routing: authentication, URL parsing into discovery / collection / object /
//! subresource targets, the request log, fault injection, and dispatch to the handlers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method};

use crate::resources::ResourceType;
use crate::state::{RequestRecord, ServerState};
use crate::status::ApiError;
use crate::util::parse_query;
use crate::{crud, discovery, exec, logs, watch};

/// A request aimed at a resource: everything a handler needs.
pub(crate) struct ApiRequest {
    pub rt: ResourceType,
    /// Empty for cluster-scoped resources and for all-namespace collections.
    pub namespace: String,
    /// True for `/api/v1/pods` style all-namespace collection requests.
    pub all_namespaces: bool,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.param(key), Some("true" | "1"))
    }

    pub(crate) fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The field manager of a non-apply write: `fieldManager`, else the user agent's product.
    pub(crate) fn update_manager(&self) -> String {
        if let Some(m) = self.param("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        let agent = self.header(http::header::USER_AGENT).unwrap_or_default();
        let product = agent.split('/').next().unwrap_or_default();
        if product.is_empty() {
            "unknown".into()
        } else {
            product.into()
        }
    }

    /// Whether the client asked for `PartialObjectMetadata` (kube-rs `metadata_watcher`, `get_metadata`).
    pub(crate) fn metadata_only(&self) -> bool {
        self.header(http::header::ACCEPT)
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
    }
}

enum Target {
    Discovery(Vec<String>),
    Resource {
        rt: Box<ResourceType>,
        namespace: String,
        all_namespaces: bool,
        name: Option<String>,
        subresource: Option<String>,
    },
}

fn parse_target(state: &ServerState, path: &str) -> Option<Target> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let (group, version, rest) = match segments.first().map(String::as_str) {
        Some("api") if segments.len() > 2 => ("", segments[1].as_str(), &segments[2..]),
        Some("apis") if segments.len() > 3 => {
            (segments[1].as_str(), segments[2].as_str(), &segments[3..])
        }
        Some("api" | "apis" | "version") => return Some(Target::Discovery(segments.clone())),
        _ => return None,
    };
    let registry = &state.registry;
    let namespaced = rest.len() >= 3
        && rest[0] == "namespaces"
        && registry
            .by_path(group, version, &rest[2])
            .is_some_and(|t| t.namespaced);
    let (rt, namespace, all_namespaces, tail) = if namespaced {
        (
            registry.by_path(group, version, &rest[2])?,
            rest[1].clone(),
            false,
            &rest[3..],
        )
    } else {
        let rt = registry.by_path(group, version, &rest[0])?;
        (rt, String::new(), rt.namespaced, &rest[1..])
    };
    if tail.len() > 2 {
        return None;
    }
    Some(Target::Resource {
        rt: Box::new(rt.clone()),
        namespace,
        all_namespaces,
        name: tail.first().cloned(),
        subresource: tail.get(1).cloned(),
    })
}

fn verb_of(method: &Method, target: &Target, watch: bool) -> &'static str {
    let Target::Resource {
        name, subresource, ..
    } = target
    else {
        return "discovery";
    };
    match (method.as_str(), name.is_some(), subresource.as_deref()) {
        (_, true, Some("exec")) => "exec",
        (_, true, Some("log")) => "log",
        ("GET", false, _) if watch => "watch",
        ("GET", false, _) => "list",
        ("GET", true, _) => "get",
        ("POST", false, _) => "create",
        ("DELETE", false, _) => "deletecollection",
        ("PUT", true, _) => "update",
        ("PATCH", true, _) => "patch",
        ("DELETE", true, _) => "delete",
        _ => "unknown",
    }
}

fn authorized(state: &ServerState, headers: &HeaderMap, path: &str) -> bool {
    let Some(token) = &state.options.token else {
        return true;
    };
    if matches!(path, "/version" | "/healthz" | "/livez" | "/readyz") {
        return true;
    }
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    presented.and_then(|v| v.strip_prefix("Bearer ")) == Some(token.as_str())
}

/// The single entry point: every request comes through here.
pub(crate) async fn dispatch(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let query = parse_query(Some(&raw_query));
    let header = |name: http::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        content_type: header(http::header::CONTENT_TYPE),
        accept: header(http::header::ACCEPT),
        status: 0,
        verb: String::new(),
        resource: String::new(),
    };
    let watch = query
        .iter()
        .any(|(k, v)| k == "watch" && matches!(v.as_str(), "true" | "1"));
    let target = parse_target(&state, &path);
    if let Some(t) = &target {
        record.verb = verb_of(&parts.method, t, watch).to_string();
        if let Target::Resource { rt, .. } = t {
            record.resource = rt.plural.clone();
        }
    }
    if target.is_some()
        && let Some(delay) = state.take_delay(&record.resource, &record.verb)
    {
        // A slow apiserver: the request is in flight meanwhile, then served as usual.
        tokio::time::sleep(delay).await;
    }
    let response = if !authorized(&state, &parts.headers, &path) {
        ApiError::unauthorized().into_response()
    } else if let Some(code) = target
        .as_ref()
        .and_then(|_| state.take_fault(&record.resource, &record.verb))
    {
        ApiError::injected(code).into_response()
    } else {
        match target {
            None => ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .into_response(),
            Some(Target::Discovery(segments)) => {
                discovery::serve(&state, &segments, &parts.headers)
            }
            Some(Target::Resource {
                rt,
                namespace,
                all_namespaces,
                name,
                subresource,
            }) => {
                let upgrade = if subresource.as_deref() == Some("exec") {
                    WebSocketUpgrade::from_request_parts(&mut parts, &state)
                        .await
                        .ok()
                } else {
                    None
                };
                let body = match axum::body::to_bytes(Body::new(body), 64 << 20).await {
                    Ok(b) => b.to_vec(),
                    Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
                };
                let request = ApiRequest {
                    rt: *rt,
                    namespace,
                    all_namespaces,
                    name,
                    subresource,
                    query,
                    headers: parts.headers.clone(),
                    body,
                };
                let result = match record.verb.as_str() {
                    "exec" => exec::serve(&state, &request, upgrade),
                    "log" => logs::serve(&state, &request),
                    "watch" => watch::serve(&state, &request),
                    _ => crud::serve(&state, &parts.method, &request),
                };
                result.unwrap_or_else(IntoResponse::into_response)
            }
        }
    };
    record.status = response.status().as_u16();
    tracing::debug!(method = %record.method, path = %record.path, query = %record.query, status = record.status, "kube-apiserver request");
    state.record(record);
    response
}
