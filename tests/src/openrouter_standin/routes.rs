//! The HTTP routes under `/api/v1` and the JSON shapes OpenRouter answers with.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use clawfleet_kit::secret::random_token;
use serde_json::{Value, json};

use super::state::{Fault, Shared, StoredKey};

/// Keys per page of `GET /keys`, as OpenRouter pages them.
const PAGE_SIZE: usize = 100;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route(
            "/api/v1/keys/{hash}",
            get(get_key).patch(update_key).delete(delete_key),
        )
        .route("/api/v1/key", get(current_key))
        .with_state(shared)
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message}})),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Records the call, plays a queued fault, then checks the management key. `None` means
/// the call goes on; otherwise the answer to give.
async fn admit(shared: &Shared, headers: &HeaderMap, call: String) -> Option<Response> {
    let fault = {
        let mut state = shared.lock();
        let matching = state.faults.iter().position(|(prefix, _)| {
            prefix
                .as_deref()
                .is_none_or(|prefix| call.starts_with(prefix))
        });
        state.calls.push(call);
        matching.and_then(|index| state.faults.remove(index).map(|(_, fault)| fault))
    };
    match fault {
        None => {}
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Unauthorized) => {
            return Some(error(StatusCode::UNAUTHORIZED, "No auth credentials found"));
        }
        Some(Fault::RateLimited {
            retry_after_seconds,
        }) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            return Some(response);
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Some(error(status, "Internal Server Error"));
        }
    }
    if bearer(headers) != Some(shared.management_key.as_str()) {
        return Some(error(StatusCode::UNAUTHORIZED, "No auth credentials found"));
    }
    None
}

fn key_data(key: &StoredKey) -> Value {
    json!({
        "hash": key.hash,
        "name": key.name,
        "label": label(&key.key),
        "disabled": key.disabled,
        "limit": key.limit,
        "limit_remaining": key.limit_remaining(),
        "limit_reset": null,
        "include_byok_in_limit": false,
        "usage": key.usage,
        "usage_daily": key.usage,
        "usage_weekly": key.usage,
        "usage_monthly": key.usage,
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "created_at": key.created_at,
        "updated_at": key.updated_at,
    })
}

/// What OpenRouter shows of a key instead of its value: `sk-or-v1-abc...xyz`.
fn label(key: &str) -> String {
    let tail = &key[key.len().saturating_sub(3)..];
    format!("{}...{tail}", &key[..key.len().min(12)])
}

/// The `limit` of a body: absent, null (unlimited) or a non-negative amount; `Err`
/// when it is something else.
fn limit_of(body: &Value) -> Result<Option<Option<f64>>, ()> {
    match body.get("limit") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(value) => match value.as_f64() {
            Some(limit) if limit >= 0.0 => Ok(Some(Some(limit))),
            _ => Err(()),
        },
    }
}

fn bad_limit() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "limit must be a non-negative number",
    )
}

async fn create_key(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(response) = admit(&shared, &headers, "POST /api/v1/keys".into()).await {
        return response;
    }
    let Some(name) = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
    else {
        return error(StatusCode::BAD_REQUEST, "name is required");
    };
    let limit = match limit_of(&body) {
        Ok(limit) => limit.flatten(),
        Err(()) => return bad_limit(),
    };
    let mut state = shared.lock();
    state.next_serial += 1;
    let key = StoredKey {
        hash: hex_token(),
        key: format!("sk-or-v1-{}", hex_token()),
        name: name.to_owned(),
        limit,
        disabled: false,
        usage: 0.0,
        created_at: now_iso8601(),
        updated_at: None,
    };
    state.keys.push(key.clone());
    (
        StatusCode::CREATED,
        Json(json!({"data": key_data(&key), "key": key.key})),
    )
        .into_response()
}

async fn list_keys(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = admit(&shared, &headers, "GET /api/v1/keys".into()).await {
        return response;
    }
    let Ok(offset) = query
        .get("offset")
        .map_or(Ok(0), |offset| offset.parse::<usize>())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "offset must be a non-negative integer",
        );
    };
    let include_disabled = query
        .get("include_disabled")
        .is_some_and(|value| value == "true");
    let state = shared.lock();
    let page: Vec<Value> = state
        .keys
        .iter()
        .filter(|key| include_disabled || !key.disabled)
        .skip(offset)
        .take(PAGE_SIZE)
        .map(key_data)
        .collect();
    Json(json!({"data": page})).into_response()
}

async fn get_key(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    if let Some(response) = admit(&shared, &headers, format!("GET /api/v1/keys/{hash}")).await {
        return response;
    }
    let state = shared.lock();
    match state.keys.iter().find(|key| key.hash == hash) {
        Some(key) => Json(json!({"data": key_data(key)})).into_response(),
        None => error(StatusCode::NOT_FOUND, "API key not found"),
    }
}

async fn update_key(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(response) = admit(&shared, &headers, format!("PATCH /api/v1/keys/{hash}")).await {
        return response;
    }
    let Ok(limit) = limit_of(&body) else {
        return bad_limit();
    };
    let disabled = match body.get("disabled") {
        None => None,
        Some(Value::Bool(disabled)) => Some(*disabled),
        Some(_) => return error(StatusCode::BAD_REQUEST, "disabled must be a boolean"),
    };
    let mut state = shared.lock();
    let Some(key) = state.keys.iter_mut().find(|key| key.hash == hash) else {
        return error(StatusCode::NOT_FOUND, "API key not found");
    };
    if let Some(limit) = limit {
        key.limit = limit;
    }
    if let Some(disabled) = disabled {
        key.disabled = disabled;
    }
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        key.name = name.to_owned();
    }
    key.updated_at = Some(now_iso8601());
    Json(json!({"data": key_data(key)})).into_response()
}

async fn delete_key(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    if let Some(response) = admit(&shared, &headers, format!("DELETE /api/v1/keys/{hash}")).await {
        return response;
    }
    let mut state = shared.lock();
    let before = state.keys.len();
    state.keys.retain(|key| key.hash != hash);
    if state.keys.len() == before {
        return error(StatusCode::NOT_FOUND, "API key not found");
    }
    Json(json!({"deleted": true})).into_response()
}

/// `GET /key`: the calling key's own figures (no management key: the key itself).
async fn current_key(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let mut state = shared.lock();
    state.calls.push("GET /api/v1/key".into());
    let presented = bearer(&headers).unwrap_or_default();
    match state
        .keys
        .iter()
        .find(|key| key.key == presented && !key.disabled)
    {
        Some(key) => Json(json!({"data": {
            "label": label(&key.key),
            "limit": key.limit,
            "limit_remaining": key.limit_remaining(),
            "limit_reset": null,
            "include_byok_in_limit": false,
            "usage": key.usage,
            "usage_daily": key.usage,
            "usage_weekly": key.usage,
            "usage_monthly": key.usage,
            "byok_usage": 0.0,
            "is_free_tier": false,
            "is_management_key": false,
            "is_provisioning_key": false,
        }}))
        .into_response(),
        None => error(StatusCode::UNAUTHORIZED, "User not found."),
    }
}

/// 64 hex digits (OpenRouter's hashes and key bodies have this shape).
fn hex_token() -> String {
    random_token(32)
        .bytes()
        .map(|byte| format!("{:02x}", byte))
        .collect::<String>()[..64]
        .to_owned()
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (civil date from days since the epoch).
fn now_iso8601() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}
