//! The API-key check in front of everything under `/api`.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};

use clawfleet_kit::identity::Caller;

use crate::state::EdgeState;

/// The exact body the manager answered with; scripts match on it, so it is the one
/// response that does not carry the usual `code` field.
pub const UNAUTHORIZED_BODY: &str = r#"{"error":"Missing or invalid Authorization header"}"#;

/// Lets a request through when it is outside `/api` or carries
/// `Authorization: Bearer <platform API key>`; answers 401 otherwise.
pub async fn require_api_key(
    State(state): State<EdgeState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !is_api_path(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = bearer_token(request.headers()).or_else(|| vnc_query_token(request.uri()));
    match presented {
        Some(token) if state.is_platform_api_key(token.as_bytes()) => {
            request.extensions_mut().insert(Caller::operator());
            next.run(request).await
        }
        _ => unauthorized(),
    }
}

fn is_api_path(path: &str) -> bool {
    path.strip_prefix("/api")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Browsers cannot set headers on a WebSocket, so the VNC route takes the key as
/// `?token=<key>` (as the original manager did); no other route does.
fn vnc_query_token(uri: &axum::http::Uri) -> Option<&str> {
    if !uri.path().ends_with("/vnc") {
        return None;
    }
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|token| !token.is_empty())
}

fn unauthorized() -> Response {
    let mut response = Response::new(Body::from(UNAUTHORIZED_BODY));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, Request as HttpRequest};
    use tower::ServiceExt;

    use super::*;
    use crate::test_support::{API_KEY, body_text, test_router};

    async fn status_and_body(authorization: Option<&str>, path: &str) -> (StatusCode, String) {
        let mut builder = HttpRequest::builder().method(Method::GET).uri(path);
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let response = test_router()
            .await
            .oneshot(builder.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        (status, body_text(response).await)
    }

    #[tokio::test]
    async fn missing_wrong_or_non_bearer_keys_get_the_exact_manager_body() {
        let wrong_bearer = "Bearer not-the-key".to_owned();
        let basic = format!("Basic {API_KEY}");
        let bare = API_KEY.to_owned();
        let empty_bearer = "Bearer ".to_owned();
        for authorization in [
            None,
            Some(&wrong_bearer),
            Some(&basic),
            Some(&bare),
            Some(&empty_bearer),
        ] {
            let (status, body) =
                status_and_body(authorization.map(String::as_str), "/api/instances/alice").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
            assert_eq!(body, UNAUTHORIZED_BODY, "{authorization:?}");
        }
    }

    #[tokio::test]
    async fn unknown_api_paths_are_hidden_behind_the_key() {
        let (status, body) = status_and_body(None, "/api/nothing-here").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, UNAUTHORIZED_BODY);
        let (status, _) = status_and_body(None, "/api").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn health_needs_no_key() {
        let (status, body) = status_and_body(None, "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"ok":true}"#);
    }

    #[test]
    fn only_api_and_what_is_below_it_counts_as_api() {
        assert!(is_api_path("/api"));
        assert!(is_api_path("/api/instances"));
        assert!(!is_api_path("/apis"));
        assert!(!is_api_path("/health"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  k "),
        );
        assert_eq!(bearer_token(&headers), Some("k"));
    }
}
