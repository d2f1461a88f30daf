//! Router-level tests of the abuse limits: per-user budgets on instance routes, the
//! per-account sign-in budget, `/auth/refresh` on its own budget, and `X-Forwarded-For`
//! believed only from trusted proxies.

use std::time::SystemTime;

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
    response::Response,
};
use clawfleet_kit::{access_token::AccessTokenKeys, secret::ExposeSecret, shutdown::ShutdownToken};
use tower::ServiceExt;

use crate::{
    EdgeConfig, EdgeState,
    limits::client_address::TrustedProxies,
    test_support::{JWT_SECRET, json_of, test_config},
};

fn router_with(adjust: impl FnOnce(&mut EdgeConfig)) -> Router {
    let mut config = test_config(1024 * 1024);
    adjust(&mut config);
    crate::router(EdgeState::new(&config, ShutdownToken::new()).unwrap())
}

fn token_for(user: &str) -> String {
    AccessTokenKeys::from_secret(JWT_SECRET.as_bytes())
        .unwrap()
        .issue(user, clawfleet_kit::plan::Plan::Free, SystemTime::now())
        .unwrap()
        .token
        .expose_secret()
        .to_owned()
}

async fn list_instances(router: &Router, user: &str) -> Response {
    router
        .clone()
        .oneshot(
            Request::get("/instances")
                .header(header::AUTHORIZATION, format!("Bearer {}", token_for(user)))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn post_json(
    router: &Router,
    path: &str,
    body: &str,
    forwarded_for: Option<&str>,
) -> Response {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
}

async fn assert_429(response: Response, message_start: &str) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = json_of(response).await;
    assert_eq!(body["code"], "resource_exhausted");
    let message = body["error"].as_str().unwrap();
    assert!(message.starts_with(message_start), "{message}");
}

#[tokio::test]
async fn instance_routes_are_rate_limited_per_user() {
    let router = router_with(|config| config.app_rate_per_minute = 3);
    for _ in 0..3 {
        let response = list_instances(&router, "alice").await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_429(
        list_instances(&router, "alice").await,
        "too many requests for this account",
    )
    .await;
    // Another user's budget is untouched.
    let response = list_instances(&router, "bob").await;
    assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

const LOGIN: &str = r#"{"email":"Victim@Example.com","password":"whatever1"}"#;

#[tokio::test]
async fn one_account_has_a_login_budget_whatever_the_address() {
    // The peer (none in these tests: 0.0.0.0) is a trusted proxy, so each forwarded
    // address has its own budget of 5, and only the account's budget of 10 binds.
    let router = router_with(|config| {
        config.trusted_proxies = TrustedProxies::parse("0.0.0.0/32").unwrap();
    });
    for attempt in 0..10 {
        let client = format!("198.51.100.{attempt}");
        let response = post_json(&router, "/auth/login", LOGIN, Some(&client)).await;
        assert_ne!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{attempt}"
        );
    }
    let other_case = r#"{"email":"victim@example.com ","password":"whatever1"}"#;
    assert_429(
        post_json(&router, "/auth/login", other_case, Some("203.0.113.1")).await,
        "too many sign-in attempts for this account",
    )
    .await;
    let other_account = r#"{"email":"someone@example.com","password":"whatever1"}"#;
    let response = post_json(&router, "/auth/login", other_account, Some("203.0.113.2")).await;
    assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn forwarded_addresses_from_untrusted_peers_buy_no_budget() {
    let router = router_with(|_| {});
    for attempt in 0..5 {
        let client = format!("198.51.100.{attempt}");
        let body = format!(r#"{{"email":"user{attempt}@example.com","password":"whatever1"}}"#);
        let response = post_json(&router, "/auth/login", &body, Some(&client)).await;
        assert_ne!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{attempt}"
        );
    }
    let body = r#"{"email":"user9@example.com","password":"whatever1"}"#;
    assert_429(
        post_json(&router, "/auth/login", body, Some("198.51.100.99")).await,
        "too many sign-in requests",
    )
    .await;
}

#[tokio::test]
async fn refresh_has_its_own_budget() {
    let router = router_with(|_| {});
    for attempt in 0..6 {
        let body = format!(r#"{{"email":"user{attempt}@example.com","password":"whatever1"}}"#);
        let _ = post_json(&router, "/auth/login", &body, None).await;
    }
    let body = r#"{"email":"late@example.com","password":"whatever1"}"#;
    assert_429(
        post_json(&router, "/auth/login", body, None).await,
        "too many sign-in requests",
    )
    .await;
    // Sign-in is spent for this address; refresh is not.
    let refresh = r#"{"refreshToken":"U_a4j-Sa2aG1T1TGg1k_czsrEiQYqxZ-3ni4_oGWjKg"}"#;
    for _ in 0..5 {
        let response = post_json(&router, "/auth/refresh", refresh, None).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_429(
        post_json(&router, "/auth/refresh", refresh, None).await,
        "too many sign-in requests",
    )
    .await;
}
