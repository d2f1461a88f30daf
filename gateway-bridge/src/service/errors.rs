//! How client failures reach gRPC callers. Gateway error frames are not failures of the
//! call: they travel in `CallResponse.error`, kept as the gateway sent them.

use clawfleet_contracts::bridge::v1::GatewayError as GatewayErrorMessage;
use clawfleet_kit::error::{ErrorCode, ServiceError};

use crate::{client::ClientError, protocol::GatewayError};
use clawfleet_contracts::json::json_to_struct;

/// A gateway error frame as the contract message.
pub fn gateway_error_message(error: GatewayError) -> GatewayErrorMessage {
    GatewayErrorMessage {
        code: error.code,
        message: error.message,
        details: error.details.map(json_to_struct),
        retryable: error.retryable,
        retry_after_ms: error
            .retry_after_ms
            .map_or(0, |ms| u32::try_from(ms).unwrap_or(u32::MAX)),
    }
}

/// A client failure as the service error callers see (never carrying a token).
pub fn client_error(instance_id: &str, error: ClientError) -> ServiceError {
    match error {
        ClientError::NotFound(_) => ServiceError::not_found(format!("instance {instance_id} not found")),
        ClientError::Unavailable(reason) => {
            ServiceError::new(ErrorCode::BadGateway, format!("gateway of instance {instance_id} is unreachable: {reason}"))
                .with_retry_after(1)
        }
        // A stopped or failed instance is the caller's to start or fix, not a server fault.
        ClientError::NotRunning(reason) => ServiceError::new(ErrorCode::FailedPrecondition, reason),
        ClientError::InvalidInstance(reason) => ServiceError::invalid_argument(reason),
        ClientError::DeadlineExceeded => {
            ServiceError::new(ErrorCode::DeadlineExceeded, format!("gateway of instance {instance_id} did not answer in time"))
        }
        ClientError::Overloaded => ServiceError::new(
            ErrorCode::ResourceExhausted,
            format!("too many calls in flight to the gateway of instance {instance_id}"),
        )
        .with_retry_after(1),
        ClientError::PayloadTooLarge => {
            ServiceError::invalid_argument("request is larger than the gateway accepts")
        }
        ClientError::ScopesMissing(missing) => ServiceError::new(
            ErrorCode::FailedPrecondition,
            format!("gateway of instance {instance_id} granted too few scopes: missing {}", missing.join(", ")),
        ),
        ClientError::PairingRequired { request_id } => ServiceError::new(
            ErrorCode::BadGateway,
            format!("gateway of instance {instance_id} is waiting to approve the platform device (pairing request {request_id})"),
        )
        .with_retry_after(2),
        ClientError::Auth(error) => ServiceError::new(
            ErrorCode::BadGateway,
            format!("gateway of instance {instance_id} refused the platform: {}", error.message),
        ),
        ClientError::Gateway(error) => ServiceError::new(
            ErrorCode::BadGateway,
            format!("gateway of instance {instance_id} failed: {}", error.message),
        ),
    }
}
