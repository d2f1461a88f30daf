//! The one HTTP route, `/bot<token>/<method>`: checks the token, records the call,
//! dispatches it and wraps the answer in Telegram's JSON envelope.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    long_poll::get_updates,
    methods::call,
    params::parse_params,
    state::{RecordedCall, Shared},
};

/// What a Bot API method answers: a result, or an error code and description.
pub(super) type ApiResult = Result<Value, (u16, String)>;

pub(super) fn bad_request(description: &str) -> (u16, String) {
    (400, format!("Bad Request: {description}"))
}

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((token, api_method)) = split_path(uri.path()) else {
        return reply(Err((404, "Not Found".to_owned())));
    };
    if token != shared.token {
        return reply(Err((401, "Unauthorized".to_owned())));
    }
    if method != Method::GET && method != Method::POST {
        return reply(Err((404, "Not Found".to_owned())));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let params = match parse_params(uri.query(), content_type.as_deref(), &body) {
        Ok(params) => params,
        Err(description) => return reply(Err(bad_request(&description))),
    };
    shared.lock().calls.push(RecordedCall {
        method: api_method.to_owned(),
        body: Value::Object(params.clone()),
        http_method: method.as_str().to_owned(),
        content_type,
    });
    // Telegram matches method names case-insensitively.
    let result = match api_method.to_ascii_lowercase().as_str() {
        "getupdates" => get_updates(&shared, &params).await,
        other => call(&shared, other, &params),
    };
    reply(result)
}

/// `/bot<token>/<method>` → (token, method).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    if token.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((token, method))
}

fn reply(result: ApiResult) -> Response {
    let (status, body) = match result {
        Ok(result) => (200, json!({"ok": true, "result": result})),
        Err((code, description)) => (
            code,
            json!({"ok": false, "error_code": code, "description": description}),
        ),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
