//! What app users are told when the platform fails: the generic internal error, never
//! the detail. Services write internal errors for operators (a runtime that is
//! misconfigured names the permission or setting to fix); an app user can do nothing
//! with that text and should not learn the platform's layout from it. The detail is
//! logged here, server-side, for the operator.

use axum::{
    body::Body,
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::ApiError;

/// The most of an error body read to log it.
const LOGGED_BODY_LIMIT: usize = 16 * 1024;

/// The middleware in front of the App API's routes.
pub async fn hide_internal_details(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (parts, body) = response.into_parts();
    let detail = match axum::body::to_bytes(body, LOGGED_BODY_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => "(unreadable body)".to_owned(),
    };
    tracing::error!(%path, detail = %detail, "internal error hidden from an app user");
    let mut generic = ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    // Keep what layers set beyond the body (tracing ids), not the old length or type.
    for (name, value) in parts.headers.iter() {
        if !generic.headers().contains_key(name) && name != axum::http::header::CONTENT_LENGTH {
            generic.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let (generic_parts, generic_body) = generic.into_parts();
    Response::from_parts(generic_parts, Body::new(generic_body))
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::get};
    use clawfleet_kit::error::{ErrorCode, ServiceError};
    use tower::ServiceExt;

    use super::*;
    use crate::test_support::json_of;

    async fn answer(error: ApiError) -> Response {
        let router = Router::new()
            .route(
                "/x",
                get(move || async move { error.clone().into_response() }),
            )
            .layer(axum::middleware::from_fn(hide_internal_details));
        router
            .oneshot(Request::get("/x").body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn internal_details_become_the_generic_error() {
        let misconfigured = ApiError::from(ServiceError::new(
            ErrorCode::Internal,
            "the lifecycle's service account may not create pods/exec in namespace openclaw",
        ));
        let response = answer(misconfigured).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            json_of(response).await,
            serde_json::json!({"error": "internal error", "code": "internal"})
        );
    }

    #[tokio::test]
    async fn other_errors_pass_unchanged() {
        let response = answer(ApiError::not_found("instance i-abc not found")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(json_of(response).await["error"], "instance i-abc not found");
    }
}
