//! The router: `/health`, the App API (access JWT), the manager-compatible `/api` (API
//! key), the OpenAPI document, and the layers every route shares (body limit, timeout,
//! JSON errors). Every route is registered with its OpenAPI annotation (utoipa-axum), so
//! the document is generated from the same table the router is.

mod account_deletion;
mod app;
mod app_auth;
#[cfg(test)]
mod app_tests;
mod backups;
mod channels;
mod instances;
#[cfg(test)]
mod limits_tests;
mod provider_keys;
mod rpc;
mod subscriptions;
mod vnc;
mod watch;

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{Method, StatusCode, Uri, header},
    middleware,
    response::IntoResponse,
    routing::get,
};
use clawfleet_kit::{error::ErrorCode, metrics::exposition};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::{
    router::{OpenApiRouter, UtoipaMethodRouter},
    routes,
};

use crate::{
    access, app_errors, auth,
    error::{ApiError, ensure_json_errors},
    http_tracing,
    lifecycle::CALL_DEADLINE,
    limits, metrics,
    openapi::{self, ApiDoc, schemas::HealthJson},
    rate_limit,
    state::EdgeState,
};

/// Longest a handler may take before the caller gets 504. Longer than the lifecycle
/// deadline so that a slow upstream is reported by the call that waited on it.
const HANDLER_TIMEOUT: Duration = CALL_DEADLINE.saturating_add(Duration::from_secs(5));

/// The edge's HTTP routes over `state`.
pub fn router(state: EdgeState) -> Router {
    metrics::register();
    let body_limit_bytes = state.body_limit_bytes();
    let (routes, document) = documented_routes(&state).split_for_parts();
    routes
        .merge(openapi::routes(openapi::render(&document)))
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(middleware::map_response(ensure_json_errors))
        .layer(middleware::from_fn(metrics::record_request))
        .layer(http_tracing::layer())
        // Added after the layers: scrapes need no API key and are not counted as requests.
        .route(exposition::PATH, get(exposition::handler))
        .with_state(state)
}

/// The OpenAPI document of every route (what `/openapi.json` serves).
pub fn openapi_document(state: &EdgeState) -> utoipa::openapi::OpenApi {
    documented_routes(state).into_openapi()
}

/// Whether app routes count against the per-user rate and concurrency budget.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AppBudget {
    Limited,
    Unlimited,
}

/// `routes` for signed-in app users: an access token is required (outermost), the
/// per-user budget applies when `budget` says so, and internal error details never reach
/// the app.
fn for_app_users(
    routes: OpenApiRouter<EdgeState>,
    state: &EdgeState,
    budget: AppBudget,
) -> OpenApiRouter<EdgeState> {
    let routes = routes.route_layer(middleware::from_fn(app_errors::hide_internal_details));
    let routes = match budget {
        AppBudget::Limited => routes.route_layer(middleware::from_fn_with_state(
            state.clone(),
            limits::app_user::limit_app_user,
        )),
        AppBudget::Unlimited => routes,
    };
    routes.route_layer(middleware::from_fn_with_state(
        state.clone(),
        access::require_access_token,
    ))
}

/// Every route with its documentation and its authentication layer.
fn documented_routes(state: &EdgeState) -> OpenApiRouter<EdgeState> {
    let quick = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(with_json_405(routes!(health)))
        .merge(instances::routes())
        .merge(provider_keys::manager_routes())
        .merge(subscriptions::operator_routes())
        .merge(subscriptions::webhook_routes())
        .merge(watch::routes())
        .merge(for_app_users(
            app::instance_routes().merge(provider_keys::app_routes()),
            state,
            AppBudget::Limited,
        ))
        .merge(for_app_users(
            app_auth::user_routes().merge(subscriptions::user_routes()),
            state,
            AppBudget::Unlimited,
        ))
        .merge(
            app_auth::sign_in_routes()
                .route_layer(middleware::from_fn(app_errors::hide_internal_details))
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    rate_limit::limit_auth_requests,
                )),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            HANDLER_TIMEOUT,
        ));
    // Gateway calls carry their own (longer) deadlines; a VNC session is long-lived.
    quick
        // Backups pause a gateway: their own (longer) deadline, docs/product/backups.md#routes.
        .merge(backups::manager_routes())
        .merge(for_app_users(
            backups::app_routes(),
            state,
            AppBudget::Limited,
        ))
        .merge(rpc::routes())
        .merge(channels::routes())
        .merge(vnc::routes())
        // Deleting an account waits for every instance's teardown (its own deadline).
        .merge(for_app_users(
            account_deletion::routes(),
            state,
            AppBudget::Unlimited,
        ))
        .merge(for_app_users(
            app::gateway_routes(),
            state,
            AppBudget::Limited,
        ))
}

/// Answers methods a path does not support with the JSON 405; axum adds `Allow`.
fn with_json_405(
    (schemas, paths, methods): UtoipaMethodRouter<EdgeState>,
) -> UtoipaMethodRouter<EdgeState> {
    (schemas, paths, methods.fallback(method_not_allowed))
}

/// Liveness of the edge itself.
#[utoipa::path(get, path = "/health", tag = "manager",
    responses((status = 200, body = HealthJson)))]
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
