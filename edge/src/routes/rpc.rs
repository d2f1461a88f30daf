//! `POST /api/instances/{userId}/rpc`: any gateway method, for operators (docs/product/gateways.md#generic-rpc).
//! The gateway's answer comes back as it is; its error frames keep their code, message
//! and details, with the HTTP status docs/product/gateways.md#gateway-errors gives them.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use clawfleet_contracts::{bridge::v1::GatewayError, json::struct_to_json};
use clawfleet_kit::identity::Caller;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::with_json_405;
use crate::{
    bridge::RpcOutcome,
    error::ApiError,
    extract::{ApiJson, InstanceId, optional_integer},
    openapi::schemas::{ErrorResponses, ManagerInstancePath, rpc_timeout_schema},
    principal::Principal,
    state::EdgeState,
};

/// Deadline of a gateway call when the request names none.
const DEFAULT_RPC_DEADLINE: Duration = Duration::from_secs(30);
/// No gateway call waits longer.
const MAX_RPC_DEADLINE: Duration = Duration::from_secs(300);
/// Nor shorter: a deadline of a few milliseconds would expire before the bridge answers.
const MIN_RPC_DEADLINE: Duration = Duration::from_secs(1);
/// Extra time beyond a method's own `timeoutMs` (e.g. `web.login.wait`).
const METHOD_TIMEOUT_SLACK: Duration = Duration::from_secs(5);

pub fn routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new().routes(with_json_405(routes!(call_gateway)))
}

/// A gateway RPC: the method and its params.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RpcBody {
    /// A gateway method, e.g. `status`, `channels.status`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub(super) method: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    params: Option<Map<String, Value>>,
    /// How long to wait for the gateway, in milliseconds, held to 1 s to 5 min; 0 or left
    /// out: the method's own `timeoutMs` in `params` plus 5 s, else 30 s.
    #[serde(default, rename = "timeoutMs", deserialize_with = "optional_integer")]
    #[schema(schema_with = rpc_timeout_schema)]
    timeout_ms: Option<u64>,
}

/// Any gateway method (operators are trusted); the gateway's answer as it is.
#[utoipa::path(post, path = "/api/instances/{userId}/rpc", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    request_body = RpcBody,
    responses((status = 200, description = "the gateway's result", body = Object), ErrorResponses))]
async fn call_gateway(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    ApiJson(body): ApiJson<RpcBody>,
) -> Result<Response, ApiError> {
    forward(&state, &caller, instance_id, body).await
}

/// Calls the gateway through the bridge and answers with its result or error frame.
pub(super) async fn forward(
    state: &EdgeState,
    caller: &Caller,
    instance_id: String,
    body: RpcBody,
) -> Result<Response, ApiError> {
    if !is_method_name(&body.method) {
        return Err(ApiError::invalid_argument(
            "method must be a gateway method name such as \"status\" or \"config.get\"",
        ));
    }
    let params = body.params.unwrap_or_default();
    let deadline = rpc_deadline(body.timeout_ms, &params);
    match state
        .bridge()
        .call(caller, instance_id, body.method, params, deadline)
        .await?
    {
        RpcOutcome::Result(result) => Ok((StatusCode::OK, Json(result)).into_response()),
        RpcOutcome::GatewayError(error) => Ok(gateway_error_response(error)),
    }
}

/// Gateway method names as the bridge takes them: 1 to 128 of `A-Za-z0-9._-`.
fn is_method_name(method: &str) -> bool {
    (1..=128).contains(&method.len())
        && method
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// The caller's timeout, else the method's own `timeoutMs` plus slack, else the
/// default; within [`MIN_RPC_DEADLINE`] and [`MAX_RPC_DEADLINE`].
fn rpc_deadline(timeout_ms: Option<u64>, params: &Map<String, Value>) -> Duration {
    let method_timeout = params
        .get("timeoutMs")
        .and_then(Value::as_u64)
        .map(|ms| Duration::from_millis(ms) + METHOD_TIMEOUT_SLACK);
    timeout_ms
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .or(method_timeout)
        .unwrap_or(DEFAULT_RPC_DEADLINE)
        .clamp(MIN_RPC_DEADLINE, MAX_RPC_DEADLINE)
}

/// The HTTP status of a gateway error code (docs/product/gateways.md#gateway-errors).
fn gateway_error_status(code: &str) -> StatusCode {
    match code {
        "INVALID_REQUEST" => StatusCode::BAD_REQUEST,
        "FORBIDDEN" => StatusCode::FORBIDDEN,
        "APPROVAL_NOT_FOUND" => StatusCode::NOT_FOUND,
        "UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
        "AGENT_TIMEOUT" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn gateway_error_response(error: GatewayError) -> Response {
    let status = gateway_error_status(&error.code);
    let mut body = json!({
        "error": error.message,
        "code": error.code.to_ascii_lowercase(),
        "gatewayCode": error.code,
    });
    if let Some(details) = error.details {
        body["details"] = struct_to_json(details);
    }
    if error.retryable {
        body["retryable"] = Value::Bool(true);
    }
    let mut response = (status, Json(body)).into_response();
    if error.retry_after_ms > 0 {
        let seconds = error.retry_after_ms.div_ceil(1000);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_codes_map_to_the_spec_statuses() {
        assert_eq!(
            gateway_error_status("INVALID_REQUEST"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(gateway_error_status("FORBIDDEN"), StatusCode::FORBIDDEN);
        assert_eq!(gateway_error_status("NOT_PAIRED"), StatusCode::BAD_GATEWAY);
        assert_eq!(
            gateway_error_status("UNAVAILABLE"),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn deadlines_follow_the_caller_then_the_method() {
        let mut params = Map::new();
        assert_eq!(rpc_deadline(None, &params), DEFAULT_RPC_DEADLINE);
        params.insert("timeoutMs".into(), json!(120_000));
        assert_eq!(rpc_deadline(None, &params), Duration::from_secs(125));
        assert_eq!(rpc_deadline(Some(1_000), &params), Duration::from_secs(1));
        assert_eq!(rpc_deadline(Some(10_000_000), &params), MAX_RPC_DEADLINE);
        assert_eq!(rpc_deadline(Some(1), &params), MIN_RPC_DEADLINE);
        assert_eq!(rpc_deadline(Some(0), &params), Duration::from_secs(125));
        assert_eq!(rpc_deadline(Some(0), &Map::new()), DEFAULT_RPC_DEADLINE);
    }

    #[test]
    fn method_names_are_what_the_bridge_takes() {
        for good in ["status", "channels.status", "last-heartbeat", "a_b.C9"] {
            assert!(is_method_name(good), "{good}");
        }
        for bad in ["", " ", "a b", "status\n", "caf\u{e9}", &"m".repeat(129)] {
            assert!(!is_method_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn timeouts_may_be_integral_floats_but_not_fractions() {
        let body: RpcBody =
            serde_json::from_str(r#"{"method":"status","timeoutMs":730.0}"#).unwrap();
        assert_eq!(body.timeout_ms, Some(730));
        let body: RpcBody =
            serde_json::from_str(r#"{"method":"status","timeoutMs":null}"#).unwrap();
        assert_eq!(body.timeout_ms, None);
        for bad in ["730.5", "-1", "\"730\""] {
            let text = format!(r#"{{"method":"status","timeoutMs":{bad}}}"#);
            assert!(serde_json::from_str::<RpcBody>(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateway_errors_keep_code_message_and_details() {
        let error = GatewayError {
            code: "INVALID_REQUEST".into(),
            message: "unknown method: nope".into(),
            details: Some(clawfleet_contracts::json::json_to_struct(
                json!({"code": "X"}),
            )),
            retryable: false,
            retry_after_ms: 0,
        };
        let response = gateway_error_response(error);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
