//! The OpenAPI 3 document of the App and manager APIs, generated from the handlers'
//! annotations as the router is built (utoipa-axum), so a route cannot exist without
//! its documentation. Served at `/openapi.json` and `/docs` when `EDGE_DOCS=true`.

pub mod schemas;

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme},
};

use crate::{error::ApiError, state::EdgeState};

/// Security scheme of the App API: the access JWT from `/auth/*`.
pub const ACCESS_TOKEN: &str = "accessToken";
/// Security scheme of the manager API: the platform API key.
pub const API_KEY: &str = "apiKey";
/// Security scheme of RevenueCat's webhook: the exact `Authorization` header configured.
pub const REVENUECAT_WEBHOOK: &str = "revenuecatWebhook";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clawfleet",
        description = "One isolated OpenClaw gateway per user. The App API (`/auth`, `/users`, `/instances`) takes an access JWT; the manager-compatible API (`/api`) takes the platform API key.",
    ),
    modifiers(&SecuritySchemes),
    components(schemas(schemas::ErrorJson)),
    tags(
        (name = "auth", description = "Sign-up, sign-in and tokens"),
        (name = "app", description = "The mobile app's instances (access JWT)"),
        (name = "manager", description = "Manager-compatible operator API (API key)"),
        (name = "webhooks", description = "RevenueCat's webhook (its configured Authorization header)"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme(ACCESS_TOKEN, SecurityScheme::Http(jwt));
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            REVENUECAT_WEBHOOK,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Authorization"))),
        );
    }
}

/// The rendered document, shared by the routes that serve it.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

/// `/openapi.json` and `/docs`; both 404 unless docs are enabled.
pub fn routes(document: Document) -> Router<EdgeState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(viewer))
        .layer(axum::Extension(document))
}

async fn openapi_json(
    State(state): State<EdgeState>,
    axum::Extension(document): axum::Extension<Document>,
) -> Response {
    if !state.docs_enabled() {
        return ApiError::not_found("no route for GET /openapi.json").into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.as_str().to_owned(),
    )
        .into_response()
}

/// A self-contained viewer (no CDN): lists every operation of the document.
async fn viewer(State(state): State<EdgeState>) -> Response {
    if !state.docs_enabled() {
        return ApiError::not_found("no route for GET /docs").into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        VIEWER_HTML,
    )
        .into_response()
}

const VIEWER_HTML: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>clawfleet API</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}
code{background:#eee;padding:0 .3em}.op{margin:.6em 0;padding:.4em;border-left:4px solid #79c}
pre{background:#f6f6f6;padding:.5em;overflow:auto}</style></head>
<body><h1>clawfleet API</h1><p>The document: <a href="/openapi.json">/openapi.json</a></p>
<div id="ops"></div>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const root = document.getElementById('ops');
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const div = document.createElement('div');
      div.className = 'op';
      const codes = Object.keys(op.responses || {}).join(' ');
      div.innerHTML = '<b>' + method.toUpperCase() + '</b> <code></code> <i></i><br><small></small>';
      div.querySelector('code').textContent = path;
      div.querySelector('i').textContent = op.summary || '';
      div.querySelector('small').textContent = (op.tags || []).join(', ') + ' · ' + codes;
      root.appendChild(div);
    }
  }
});
</script></body></html>"#;

/// Serialises the document once for serving.
pub fn render(document: &utoipa::openapi::OpenApi) -> Document {
    Document(Arc::new(
        document
            .to_json()
            .unwrap_or_else(|error| format!(r#"{{"error":"{error}"}}"#)),
    ))
}
