//! The JSON error every `/api` route answers with: `{"error": "...", "code": "..."}`,
//! its HTTP status taken from the one table in [`clawfleet_kit::error`].

use std::ops::{Deref, DerefMut};

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use clawfleet_kit::error::{ERROR_CODE_METADATA_KEY, ErrorCode, ServiceError};
use serde::Serialize;

/// An error rendered as the edge's JSON error shape: the kit's [`ServiceError`] (code,
/// safe message, retry hint) with the edge's HTTP rendering on top.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(pub ServiceError);

impl Deref for ApiError {
    type Target = ServiceError;

    fn deref(&self) -> &ServiceError {
        &self.0
    }
}

impl DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ServiceError {
        &mut self.0
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ServiceError::new(code, message))
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self(ServiceError::invalid_argument(message))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self(ServiceError::not_found(message))
    }

    /// An internal failure: the detail is logged, the caller sees a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self(ServiceError::internal(detail))
    }

    /// Classifies a status returned by `service` (e.g. "lifecycle service"). Statuses that
    /// the service itself wrote keep their code and message; statuses made by the gRPC
    /// transport (service down, deadline passed, credential refused) get a clear message.
    pub fn from_upstream_status(status: &tonic::Status, service: &str) -> Self {
        let error = Self::from(ServiceError::from_status(status));
        if status.metadata().contains_key(ERROR_CODE_METADATA_KEY) {
            return error;
        }
        if is_client_deadline(status) {
            return Self::new(
                ErrorCode::DeadlineExceeded,
                format!("{service} did not answer in time"),
            );
        }
        match error.code {
            ErrorCode::Unavailable => {
                tracing::warn!(%service, status = %status, "upstream call failed");
                Self::new(ErrorCode::Unavailable, format!("{service} is unavailable"))
            }
            ErrorCode::DeadlineExceeded => Self::new(
                ErrorCode::DeadlineExceeded,
                format!("{service} did not answer in time"),
            ),
            // The operator was authenticated here; a refusal means the edge's own
            // service token is wrong, which is the platform's fault.
            ErrorCode::Unauthenticated | ErrorCode::PermissionDenied => Self::internal(
                format_args!("{service} refused the edge's credential: {status}"),
            ),
            _ => error,
        }
    }

    /// The generic error for a bodiless error response (a timeout, a layer's refusal).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => (ErrorCode::InvalidArgument, "bad request"),
            StatusCode::UNAUTHORIZED => (ErrorCode::Unauthenticated, "unauthenticated"),
            StatusCode::FORBIDDEN => (ErrorCode::PermissionDenied, "permission denied"),
            StatusCode::NOT_FOUND => (ErrorCode::NotFound, "not found"),
            StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, "method not allowed"),
            StatusCode::CONFLICT => (ErrorCode::Conflict, "conflict"),
            StatusCode::PAYLOAD_TOO_LARGE => {
                (ErrorCode::PayloadTooLarge, "request body is too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                (ErrorCode::UnsupportedMediaType, "unsupported media type")
            }
            StatusCode::TOO_MANY_REQUESTS => (ErrorCode::ResourceExhausted, "too many requests"),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => {
                (ErrorCode::DeadlineExceeded, "request timed out")
            }
            StatusCode::BAD_GATEWAY => (ErrorCode::BadGateway, "bad gateway"),
            StatusCode::SERVICE_UNAVAILABLE => (ErrorCode::Unavailable, "service unavailable"),
            _ if status.is_client_error() => (ErrorCode::InvalidArgument, "bad request"),
            _ => (ErrorCode::Internal, "internal error"),
        };
        Self::new(code, message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        Self(error)
    }
}

/// The serialized form of an [`ApiError`].
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    error: &'a str,
    code: &'static str,
}

impl ApiError {
    /// The JSON body, for places other than an HTTP response (an SSE error event).
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: &self.message,
            code: self.code.as_str(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.http_status();
        if status.is_server_error() {
            tracing::warn!(code = self.code.as_str(), message = %self.message, "request failed");
        } else {
            tracing::debug!(code = self.code.as_str(), message = %self.message, "request refused");
        }
        // Serializing two strings cannot fail; the fallback only keeps this total.
        let bytes = serde_json::to_vec(&self.body())
            .unwrap_or_else(|_| br#"{"error":"internal error","code":"internal"}"#.to_vec());
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Gives error responses made without a body (timeouts, 405s from layers) the JSON error
/// shape, keeping their status and headers (`Allow`, `Retry-After`). A refused oversized
/// body was not read to its end, so the server closes that connection after answering;
/// `Connection: close` says so, or a keep-alive client sends its next request on a
/// connection about to close and gets no answer.
pub async fn ensure_json_errors(mut response: Response) -> Response {
    let status = response.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let replacement = ApiError::for_status(status).into_response();
    let (replacement_parts, body) = replacement.into_parts();
    // The old length described the old (empty) body.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(replacement_parts.headers);
    Response::from_parts(parts, body)
}

/// tonic reports a call that outlived the channel's own timeout as CANCELLED with
/// [`tonic::TimeoutExpired`]'s text, not as DEADLINE_EXCEEDED: read as unavailable, it
/// would blame a service that is up but slow.
fn is_client_deadline(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Cancelled
        && status.message() == tonic::TimeoutExpired(()).to_string()
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::error::RETRY_AFTER_METADATA_KEY;
    use tonic::metadata::MetadataValue;

    use super::*;
    use crate::test_support::json_of;

    #[tokio::test]
    async fn errors_render_as_json_with_the_mapped_status() {
        let response = ApiError::not_found("no instance alice").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            json_of(response).await,
            serde_json::json!({"error": "no instance alice", "code": "not_found"})
        );
    }

    #[tokio::test]
    async fn retry_hints_become_retry_after_headers() {
        let mut status = tonic::Status::resource_exhausted("slow down");
        status.metadata_mut().insert(
            ERROR_CODE_METADATA_KEY,
            MetadataValue::from_static("resource_exhausted"),
        );
        status
            .metadata_mut()
            .insert(RETRY_AFTER_METADATA_KEY, MetadataValue::from(7u32));
        let response = ApiError::from_upstream_status(&status, "lifecycle service").into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            json_of(response).await,
            serde_json::json!({"error": "slow down", "code": "resource_exhausted"})
        );
    }

    #[test]
    fn service_errors_keep_their_code_and_message_across_the_hop() {
        let status = tonic::Status::from(ServiceError::not_found("no instance bob"));
        let error = ApiError::from_upstream_status(&status, "lifecycle service");
        assert_eq!(error, ApiError::not_found("no instance bob"));
        let status = tonic::Status::from(ServiceError::unavailable("runtime is restarting"));
        let error = ApiError::from_upstream_status(&status, "lifecycle service");
        assert_eq!(error.message, "runtime is restarting");
    }

    #[test]
    fn transport_failures_name_the_service() {
        let status = tonic::Status::unavailable("tcp connect error: Connection refused");
        let error = ApiError::from_upstream_status(&status, "lifecycle service");
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert_eq!(error.message, "lifecycle service is unavailable");
        let status = tonic::Status::deadline_exceeded("Timeout expired");
        let error = ApiError::from_upstream_status(&status, "lifecycle service");
        assert_eq!(error.code, ErrorCode::DeadlineExceeded);
    }

    #[test]
    fn a_refused_internal_credential_is_the_platforms_fault() {
        let status = tonic::Status::unauthenticated("missing or invalid authorization");
        let error = ApiError::from_upstream_status(&status, "lifecycle service");
        assert_eq!(error.code, ErrorCode::Internal);
        assert_eq!(error.message, "internal error");
    }

    #[tokio::test]
    async fn bodiless_error_responses_get_the_json_shape() {
        let response = Response::builder()
            .status(StatusCode::GATEWAY_TIMEOUT)
            .header(header::CONTENT_LENGTH, "0")
            .header("x-kept", "yes")
            .body(Body::empty())
            .unwrap();
        let response = ensure_json_errors(response).await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.headers()["x-kept"], "yes");
        assert!(!response.headers().contains_key(header::CONTENT_LENGTH));
        assert_eq!(
            json_of(response).await,
            serde_json::json!({"error": "request timed out", "code": "deadline_exceeded"})
        );
    }

    #[tokio::test]
    async fn a_refused_oversized_body_closes_the_connection() {
        let refused = ensure_json_errors(
            ApiError::new(ErrorCode::PayloadTooLarge, "too big").into_response(),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(refused.headers()[header::CONNECTION], "close");
        let other = ensure_json_errors(ApiError::not_found("gone").into_response()).await;
        assert!(!other.headers().contains_key(header::CONNECTION));
    }

    #[tokio::test]
    async fn successful_and_already_shaped_responses_pass_untouched() {
        let ok = ensure_json_errors(Response::new(Body::from("fine"))).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let shaped = ensure_json_errors(ApiError::not_found("gone").into_response()).await;
        assert_eq!(
            json_of(shaped).await,
            serde_json::json!({"error": "gone", "code": "not_found"})
        );
    }

    #[test]
    fn a_call_past_the_channels_timeout_is_a_deadline_not_an_outage() {
        let timed_out = tonic::Status::cancelled(tonic::TimeoutExpired(()).to_string());
        let error = ApiError::from_upstream_status(&timed_out, "lifecycle service");
        assert_eq!(error.code, ErrorCode::DeadlineExceeded);
        assert_eq!(error.message, "lifecycle service did not answer in time");
    }
}
