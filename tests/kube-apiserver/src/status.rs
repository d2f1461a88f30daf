//! Errors as the real apiserver reports them: a `kind: Status` body whose `code` matches the HTTP
//! status, with the same `reason`, `message` and `details` shapes, so kube-rs surfaces them as
//! `kube::Error::Api(Status)` exactly as in production.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::resources::ResourceType;

/// A failed request, rendered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    fn named_details(rt: &ResourceType, name: &str) -> Value {
        let mut details = json!({ "name": name, "kind": rt.plural });
        if !rt.group.is_empty() {
            details["group"] = json!(rt.group);
        }
        details
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        let message = format!("{} \"{name}\" not found", rt.qualified_plural());
        Self::new(404, "NotFound", message).with_details(Self::named_details(rt, name))
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        let message = format!("{} \"{name}\" already exists", rt.qualified_plural());
        Self::new(409, "AlreadyExists", message).with_details(Self::named_details(rt, name))
    }

    /// An optimistic-concurrency failure (stale `resourceVersion` or failed precondition).
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            rt.qualified_plural()
        );
        Self::new(409, "Conflict", message).with_details(Self::named_details(rt, name))
    }

    pub fn stale_resource_version(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// Server-side apply conflicts: one cause per (field, manager), as the real field manager reports.
    pub fn apply_conflicts(rt: &ResourceType, name: &str, conflicts: &[(String, String)]) -> Self {
        let api_version = rt.api_version();
        let message = match conflicts {
            [(field, manager)] => {
                format!(
                    "Apply failed with 1 conflict: conflict with \"{manager}\" using {api_version}: {field}"
                )
            }
            _ => {
                let mut message = format!("Apply failed with {} conflicts:", conflicts.len());
                for (field, manager) in conflicts {
                    message.push_str(&format!(
                        " conflict with \"{manager}\" using {api_version}: {field}\n"
                    ));
                }
                message.trim_end().to_string()
            }
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(field, manager)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\" using {api_version}"),
                    "field": field,
                })
            })
            .collect();
        let mut details = Self::named_details(rt, name);
        details["causes"] = json!(causes);
        Self::new(409, "Conflict", message).with_details(details)
    }

    /// 422 with one cause per invalid field, like validation failures.
    pub fn invalid(rt: &ResourceType, name: &str, causes: &[(String, String)]) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|(field, msg)| format!("{field}: {msg}"))
            .collect();
        let message = format!(
            "{} \"{name}\" is invalid: {}",
            rt.kind,
            if summary.len() == 1 {
                summary[0].clone()
            } else {
                format!("[{}]", summary.join(", "))
            }
        );
        let causes: Vec<Value> = causes
            .iter()
            .map(|(field, msg)| json!({ "reason": "FieldValueInvalid", "message": msg, "field": field }))
            .collect();
        let mut details = json!({ "name": name, "kind": rt.kind, "causes": causes });
        if !rt.group.is_empty() {
            details["group"] = json!(rt.group);
        }
        Self::new(422, "Invalid", message).with_details(details)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type:?}"
            ),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// A watch from a resourceVersion older than the retained history.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// An injected fault (500 InternalError, 503 ServiceUnavailable, 429, 504, 409 Conflict,
    /// 403 Forbidden).
    pub fn injected(code: u16) -> Self {
        match code {
            503 => Self::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request (injected fault)",
            ),
            403 => Self::new(
                403,
                "Forbidden",
                "forbidden: the service account may not do this (injected fault)",
            ),
            409 => Self::new(
                409,
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected fault)",
            ),
            429 => Self::new(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later (injected fault)",
            ),
            504 => Self::new(
                504,
                "Timeout",
                "the server was unable to return a response in the time allotted (injected fault)",
            ),
            _ => Self::new(
                code,
                "InternalError",
                "Internal error occurred: injected fault",
            ),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// The `Status` object itself.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = http::StatusCode::from_u16(self.code)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_status())
    }
}

/// A JSON body with the content type the real server uses.
pub(crate) fn json_response(code: http::StatusCode, body: &Value) -> Response {
    json_response_typed(code, body, "application/json")
}

pub(crate) fn json_response_typed(
    code: http::StatusCode,
    body: &Value,
    content_type: &str,
) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        code,
        [(http::header::CONTENT_TYPE, content_type.to_string())],
        bytes,
    )
        .into_response()
}
