//! The one table from clawfleet error codes to gRPC codes and HTTP statuses.
//!
//! Services return [`ServiceError`]; it crosses gRPC as a [`tonic::Status`] whose
//! metadata carries the code name, so the edge can render the exact JSON error
//! (`{"error": "...", "code": "..."}`) with the HTTP status from this same table.

use tonic::{Code, Status, metadata::MetadataValue};

/// Metadata key that carries the [`ErrorCode`] name across a gRPC hop.
pub const ERROR_CODE_METADATA_KEY: &str = "x-clawfleet-error-code";
/// Metadata key that carries a retry hint in seconds (for 429 / Retry-After).
pub const RETRY_AFTER_METADATA_KEY: &str = "x-clawfleet-retry-after";

/// Every error class the platform reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    /// The request conflicts with the current state (stale hash, wrong phase).
    Conflict,
    FailedPrecondition,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    ResourceExhausted,
    /// A gateway could not be reached.
    BadGateway,
    Unavailable,
    DeadlineExceeded,
    Internal,
}

impl ErrorCode {
    /// All codes, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidArgument,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Conflict,
        ErrorCode::FailedPrecondition,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::MethodNotAllowed,
        ErrorCode::ResourceExhausted,
        ErrorCode::BadGateway,
        ErrorCode::Unavailable,
        ErrorCode::DeadlineExceeded,
        ErrorCode::Internal,
    ];

    /// The snake_case name used in JSON error bodies and gRPC metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parses the name written by [`ErrorCode::as_str`].
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == name)
    }

    /// The gRPC status code.
    pub fn grpc_code(self) -> Code {
        match self {
            ErrorCode::InvalidArgument
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType => Code::InvalidArgument,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::Conflict => Code::Aborted,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::MethodNotAllowed => Code::Unimplemented,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::BadGateway | ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
            ErrorCode::Internal => Code::Internal,
        }
    }

    /// The HTTP status.
    pub fn http_status(self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::AlreadyExists | ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code for a gRPC status that carries no clawfleet code (e.g. from tonic itself).
    pub fn from_grpc_code(code: Code) -> ErrorCode {
        match code {
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            Code::PermissionDenied => ErrorCode::PermissionDenied,
            Code::NotFound => ErrorCode::NotFound,
            Code::AlreadyExists => ErrorCode::AlreadyExists,
            Code::Aborted => ErrorCode::Conflict,
            Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            Code::Unimplemented => ErrorCode::MethodNotAllowed,
            Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            Code::Unavailable | Code::Cancelled => ErrorCode::Unavailable,
            Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => ErrorCode::Internal,
        }
    }
}

/// An error a service reports to its caller: a code and a lowercase message that is
/// safe to show (no secrets, no internals for [`ErrorCode::Internal`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds after which a retry may succeed (for `ResourceExhausted`/`Unavailable`).
    pub retry_after_seconds: Option<u32>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// An internal failure: the detail is logged here, the caller sees a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// Recovers the error from a status produced by `Status::from(ServiceError)`, or
    /// classifies a foreign status by its gRPC code.
    pub fn from_status(status: &Status) -> Self {
        let code = status
            .metadata()
            .get(ERROR_CODE_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .and_then(ErrorCode::from_name)
            .unwrap_or_else(|| ErrorCode::from_grpc_code(status.code()));
        let retry_after_seconds = status
            .metadata()
            .get(RETRY_AFTER_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse().ok());
        let message = if code == ErrorCode::Internal {
            "internal error".to_owned()
        } else {
            status.message().to_owned()
        };
        Self {
            code,
            message,
            retry_after_seconds,
        }
    }
}

impl From<Status> for ServiceError {
    fn from(status: Status) -> Self {
        Self::from_status(&status)
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let mut status = Status::new(error.code.grpc_code(), error.message);
        status.metadata_mut().insert(
            ERROR_CODE_METADATA_KEY,
            MetadataValue::from_static(error.code.as_str()),
        );
        if let Some(seconds) = error.retry_after_seconds {
            status
                .metadata_mut()
                .insert(RETRY_AFTER_METADATA_KEY, MetadataValue::from(seconds));
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_a_grpc_hop() {
        for code in ErrorCode::ALL {
            let status = Status::from(ServiceError::new(code, "boom"));
            assert_eq!(status.code(), code.grpc_code());
            assert_eq!(ServiceError::from_status(&status).code, code);
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
    }

    #[test]
    fn the_spec_mapping_holds() {
        use http::StatusCode;
        assert_eq!(
            ErrorCode::InvalidArgument.http_status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ErrorCode::Unauthenticated.http_status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ErrorCode::PermissionDenied.http_status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(ErrorCode::NotFound.http_status(), StatusCode::NOT_FOUND);
        assert_eq!(ErrorCode::AlreadyExists.http_status(), StatusCode::CONFLICT);
        assert_eq!(
            ErrorCode::ResourceExhausted.http_status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            ErrorCode::Unavailable.http_status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ErrorCode::DeadlineExceeded.http_status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ErrorCode::Internal.http_status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn foreign_statuses_are_classified_by_code_and_internals_are_hidden() {
        let status = Status::internal("database file /secret/path is locked");
        let error = ServiceError::from_status(&status);
        assert_eq!(error.code, ErrorCode::Internal);
        assert_eq!(error.message, "internal error");
        let error = ServiceError::from_status(&Status::not_found("no instance alice"));
        assert_eq!(error.code, ErrorCode::NotFound);
        assert_eq!(error.message, "no instance alice");
    }

    #[test]
    fn retry_hints_cross_the_hop() {
        let status = Status::from(
            ServiceError::new(ErrorCode::ResourceExhausted, "slow down").with_retry_after(7),
        );
        assert_eq!(
            ServiceError::from_status(&status).retry_after_seconds,
            Some(7)
        );
    }
}
