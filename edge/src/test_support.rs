//! Helpers for the router tests: a configuration whose lifecycle address has nothing
//! listening, authorized request builders and body readers.

use axum::{
    Router,
    http::{Method, Request, header, request::Builder},
    response::Response,
};
use clawfleet_kit::shutdown::ShutdownToken;

use crate::{EdgeConfig, EdgeState, router};

pub const API_KEY: &str = "operator-key";
pub const JWT_SECRET: &str = "edge-test-jwt-secret-of-32-bytes-or-more";
/// The `Authorization` header the test router expects on RevenueCat webhooks.
pub const WEBHOOK_AUTHORIZATION: &str = "Bearer webhook-secret-0123456789";

/// A loopback address that refused connections a moment ago.
fn address_with_nothing_listening() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

pub fn test_config(body_limit_bytes: usize) -> EdgeConfig {
    EdgeConfig {
        platform_api_key: API_KEY.into(),
        service_token: "edge-service-token-0123456789abcdef".into(),
        lifecycle_address: address_with_nothing_listening(),
        bridge_address: address_with_nothing_listening(),
        channels_address: address_with_nothing_listening(),
        auth_address: address_with_nothing_listening(),
        service_tls: None,
        jwt_secret: JWT_SECRET.into(),
        body_limit_bytes,
        auth_rate_per_minute: 5,
        refresh_rate_per_minute: 5,
        trusted_proxies: crate::limits::client_address::TrustedProxies::default(),
        app_rate_per_minute: 1000,
        app_concurrent_requests: 8,
        docs_enabled: true,
        instance_staleness: crate::config::DEFAULT_INSTANCE_STALENESS,
        revenuecat_webhook_authorization: Some(WEBHOOK_AUTHORIZATION.into()),
    }
}

pub fn test_state(body_limit_bytes: usize) -> EdgeState {
    EdgeState::new(&test_config(body_limit_bytes), ShutdownToken::new()).unwrap()
}

pub async fn test_router_with_body_limit(body_limit_bytes: usize) -> Router {
    router(test_state(body_limit_bytes))
}

pub async fn test_router() -> Router {
    test_router_with_body_limit(1024 * 1024).await
}

/// A request builder carrying the operator API key.
pub fn authorized(method: Method, path: &str) -> Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {API_KEY}"))
}

pub async fn body_text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub async fn json_of(response: Response) -> serde_json::Value {
    serde_json::from_str(&body_text(response).await).unwrap()
}
