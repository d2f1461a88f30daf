//! Router-level tests of the App API's own rules: the access-token check, the `/auth/*`
//! rate limit, the RPC allow-list, and the OpenAPI document covering every route.

use std::time::{Duration, SystemTime};

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use clawfleet_kit::{access_token::AccessTokenKeys, secret::ExposeSecret};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::test_support::{JWT_SECRET, json_of, test_router, test_state};

fn token_for(user: &str, issued: SystemTime) -> String {
    AccessTokenKeys::from_secret(JWT_SECRET.as_bytes())
        .unwrap()
        .issue(user, clawfleet_kit::plan::Plan::Free, issued)
        .unwrap()
        .token
        .expose_secret()
        .to_owned()
}

async fn send(request: Request<Body>) -> (StatusCode, Value) {
    let response = test_router().await.oneshot(request).await.unwrap();
    let status = response.status();
    (status, json_of(response).await)
}

fn with_token(method: Method, path: &str, token: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
}

#[tokio::test]
async fn app_routes_refuse_missing_expired_tampered_and_foreign_tokens() {
    let fresh = token_for("alice", SystemTime::now());
    let expired = token_for("alice", SystemTime::now() - Duration::from_secs(3600));
    let mut tampered = fresh.clone();
    tampered.pop();
    tampered.push(if fresh.ends_with('A') { 'B' } else { 'A' });
    let foreign = AccessTokenKeys::from_secret(b"some-other-secret-that-is-32-bytes-long")
        .unwrap()
        .issue("alice", clawfleet_kit::plan::Plan::Free, SystemTime::now())
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    // alg "none": header {"alg":"none","typ":"JWT"}, the same claims, no signature.
    let claims = fresh.split('.').nth(1).unwrap();
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.");
    let api_key = crate::test_support::API_KEY.to_owned();
    for (what, token) in [
        ("expired", expired),
        ("tampered", tampered),
        ("foreign", foreign),
        ("alg none", unsigned),
        ("api key", api_key),
    ] {
        let (status, body) = send(
            with_token(Method::GET, "/instances", &token)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["code"], "unauthenticated", "{what}");
    }
    let (status, body) = send(Request::get("/users/me").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("missing access token")
    );
    // A valid token passes the check (the lifecycle service is down here: 503, not 401).
    let (status, _) = send(
        with_token(Method::GET, "/instances", &fresh)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn app_tokens_do_not_open_the_manager_api() {
    let token = token_for("alice", SystemTime::now());
    let (status, _) = send(
        with_token(Method::GET, "/api/instances", &token)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_app_rpc_allows_only_the_listed_methods() {
    let token = token_for("alice", SystemTime::now());
    for method in [
        "config.patch",
        "config.get",
        "logs.tail",
        "agent",
        "exec.approve",
    ] {
        let (status, body) = send(
            with_token(Method::POST, "/instances/abc/rpc", &token)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({"method": method}).to_string()))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}: {body}");
        assert_eq!(body["code"], "permission_denied");
    }
}

#[tokio::test]
async fn sign_in_routes_are_rate_limited_with_retry_after() {
    // The test state allows 5 per minute per client; one router keeps its buckets.
    let router = crate::router(test_state(1024 * 1024));
    let mut last = None;
    for _ in 0..6 {
        let response = router
            .clone()
            .oneshot(
                Request::post("/auth/login")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(r#"{"email":"a@b.co","password":"whatever1"}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        last = Some(response);
    }
    let response = last.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(json_of(response).await["code"], "resource_exhausted");
}

/// Every route of docs/product/app-api.md and docs/product/manager-api.md (with `/api/instances/:userId` spelled as OpenAPI does).
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("post", "/auth/signup"),
    ("post", "/auth/login"),
    ("post", "/auth/google"),
    ("post", "/auth/apple"),
    ("post", "/auth/refresh"),
    ("post", "/auth/logout"),
    ("get", "/users/me"),
    ("post", "/instances"),
    ("get", "/instances"),
    ("get", "/instances/{id}"),
    ("delete", "/instances/{id}"),
    ("post", "/instances/{id}/telegram/setup"),
    ("get", "/instances/{id}/telegram/status"),
    ("post", "/instances/{id}/telegram/logout"),
    ("get", "/instances/{id}/pairing/list"),
    ("post", "/instances/{id}/pairing/approve"),
    ("post", "/instances/{id}/whatsapp/qr"),
    ("post", "/instances/{id}/whatsapp/wait"),
    ("get", "/instances/{id}/whatsapp/status"),
    ("post", "/instances/{id}/rpc"),
    ("get", "/health"),
    ("post", "/api/instances"),
    ("get", "/api/instances"),
    ("get", "/api/instances/{userId}"),
    ("delete", "/api/instances/{userId}"),
    ("post", "/api/instances/{userId}/whatsapp/qr"),
    ("post", "/api/instances/{userId}/whatsapp/wait"),
    ("get", "/api/instances/{userId}/whatsapp/status"),
    ("post", "/api/instances/{userId}/telegram/setup"),
    ("get", "/api/instances/{userId}/telegram/status"),
    ("post", "/api/instances/{userId}/telegram/logout"),
    ("get", "/api/instances/{userId}/pairing/list"),
    ("post", "/api/instances/{userId}/pairing/approve"),
    ("post", "/api/instances/{userId}/rpc"),
    ("get", "/api/instances/{userId}/vnc"),
];

#[tokio::test]
async fn the_served_openapi_document_has_every_spec_route() {
    let (status, document) = send(Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path) in SPEC_ROUTES {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(operation["responses"].is_object(), "{method} {path}");
    }
    // App routes say they take the access token; manager routes the API key.
    assert_eq!(
        document["paths"]["/instances"]["get"]["security"][0]["accessToken"],
        json!([])
    );
    assert_eq!(
        document["paths"]["/api/instances"]["get"]["security"][0]["apiKey"],
        json!([])
    );
}

#[tokio::test]
async fn the_document_says_what_the_edge_and_services_enforce() {
    let (_, document) = send(Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    let schemas = &document["components"]["schemas"];
    let body_of = |path: &str| {
        let schema = &document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        let name = schema["$ref"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap();
        schemas[name].clone()
    };
    // The app's RPC names exactly the allow-list.
    let methods = &body_of("/instances/{id}/rpc")["properties"]["method"]["enum"];
    assert_eq!(methods, &json!(crate::routes::app::APP_RPC_METHODS));
    // Pairing approvals take a code or a request id, not both and not neither.
    let approve = body_of("/instances/{id}/pairing/approve");
    let shapes = approve["oneOf"].as_array().unwrap();
    assert_eq!(shapes.len(), 2);
    for (shape, target, other) in [
        (&shapes[0], "code", "requestId"),
        (&shapes[1], "requestId", "code"),
    ] {
        assert_eq!(shape["required"], json!(["channel", target]));
        assert_eq!(shape["properties"][other], json!({"type": "null"}));
        assert_eq!(shape["additionalProperties"], json!(false));
    }
    // Secret names are environment names; values fit the lifecycle's 8 KiB.
    let secrets = &schemas["AppCreateBody"]["properties"]["secrets"];
    assert!(
        secrets["propertyNames"]["pattern"]
            .as_str()
            .unwrap()
            .contains("[A-Z][A-Z0-9_]")
    );
    assert_eq!(secrets["maxProperties"], 32);
    assert_eq!(secrets["additionalProperties"]["maxLength"], 2048);
    // Account ids are the channels service's.
    for name in ["SetupBody", "LogoutBody"] {
        assert_eq!(
            schemas[name]["properties"]["accountId"]["pattern"],
            "^([A-Za-z0-9_][A-Za-z0-9_-]{0,63})?$",
            "{name}"
        );
    }
    let list = &document["paths"]["/instances/{id}/pairing/list"]["get"]["parameters"];
    let account = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "accountId")
        .unwrap();
    assert_eq!(
        account["schema"]["pattern"],
        "^([A-Za-z0-9_][A-Za-z0-9_-]{0,63})?$"
    );
}

#[tokio::test]
async fn docs_are_not_served_unless_enabled() {
    let mut config = crate::test_support::test_config(1024);
    config.docs_enabled = false;
    let state =
        crate::EdgeState::new(&config, clawfleet_kit::shutdown::ShutdownToken::new()).unwrap();
    for path in ["/openapi.json", "/docs"] {
        let response = crate::router(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}
