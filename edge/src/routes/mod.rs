//! The router: `/health`, the manager-compatible `/api`, and the layers every route shares
//! (API key, body limit, timeout, JSON errors).

mod channels;
mod instances;
mod rpc;
mod vnc;
mod watch;

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{Method, StatusCode, Uri, header},
    middleware,
    response::IntoResponse,
    routing::{MethodRouter, get},
};
use clawfleet_kit::error::ErrorCode;
use tower_http::timeout::TimeoutLayer;

use crate::{
    auth,
    error::{ApiError, ensure_json_errors},
    lifecycle::CALL_DEADLINE,
    state::EdgeState,
};

/// Longest a handler may take before the caller gets 504. Longer than the lifecycle
/// deadline so that a slow upstream is reported by the call that waited on it.
const HANDLER_TIMEOUT: Duration = CALL_DEADLINE.saturating_add(Duration::from_secs(5));

/// The edge's HTTP routes over `state`.
pub fn router(state: EdgeState) -> Router {
    let body_limit_bytes = state.body_limit_bytes();
    Router::new()
        .route("/health", with_json_405(get(health)))
        .merge(instances::routes())
        .merge(watch::routes())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            HANDLER_TIMEOUT,
        ))
        // Gateway calls carry their own (longer) deadlines; a VNC session is long-lived.
        .merge(rpc::routes())
        .merge(channels::routes())
        .merge(vnc::routes())
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(middleware::map_response(ensure_json_errors))
        .with_state(state)
}

/// Answers methods a path does not support with the JSON 405; axum adds `Allow`.
fn with_json_405(methods: MethodRouter<EdgeState>) -> MethodRouter<EdgeState> {
    methods.fallback(method_not_allowed)
}

async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true}"#,
    )
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method {method} is not allowed for {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;
    use crate::test_support::{authorized, json_of, test_router};

    #[tokio::test]
    async fn health_answers_ok() {
        let response = test_router()
            .await
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(json_of(response).await, json!({"ok": true}));
    }

    #[tokio::test]
    async fn unknown_paths_are_json_404s() {
        for (path, authorize) in [
            ("/x", false),
            ("/api/nothing", true),
            ("/api/instances/", true),
        ] {
            let request = if authorize {
                authorized(Method::GET, path)
            } else {
                Request::get(path)
            };
            let response = test_router()
                .await
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                json_of(response).await,
                json!({"error": format!("no route for GET {path}"), "code": "not_found"})
            );
        }
    }

    #[tokio::test]
    async fn unsupported_methods_are_json_405s_with_allow() {
        let response = test_router()
            .await
            .oneshot(
                authorized(Method::PUT, "/api/instances/alice")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let allow = response.headers()[header::ALLOW]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(allow.contains("GET") && allow.contains("DELETE"), "{allow}");
        assert_eq!(
            json_of(response).await,
            json!({
                "error": "method PUT is not allowed for /api/instances/alice",
                "code": "method_not_allowed"
            })
        );

        let response = test_router()
            .await
            .oneshot(Request::post("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(response.headers().contains_key(header::ALLOW));
        assert_eq!(json_of(response).await["code"], "method_not_allowed");
    }
}
