//! Why a client call failed, and how connection, call and resolve failures map onto it.

use super::endpoint::ResolveError;
use crate::{
    connection::{CallError, ConnectError},
    protocol::GatewayError,
};

/// Why a client call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The instance does not exist.
    #[error("instance not found: {0}")]
    NotFound(String),
    /// The gateway cannot be reached right now, or the connection was lost mid-call.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
    /// The instance is stopped or failed (the lifecycle service says why).
    #[error("instance is not running: {0}")]
    NotRunning(String),
    /// The instance id is malformed (the lifecycle service says which rule).
    #[error("invalid instance: {0}")]
    InvalidInstance(String),
    /// The call's deadline passed.
    #[error("gateway call deadline exceeded")]
    DeadlineExceeded,
    /// Too many calls in flight on the instance's connection.
    #[error("too many gateway calls in flight")]
    Overloaded,
    /// The gateway answered with an error.
    #[error("gateway error {0}")]
    Gateway(GatewayError),
    /// The gateway connected but withheld required scopes.
    #[error("gateway did not grant scopes: {}", .0.join(", "))]
    ScopesMissing(Vec<String>),
    /// The bridge's device awaits approval of this pairing request.
    #[error("gateway pairing required (request {request_id})")]
    PairingRequired {
        /// The pending pairing request id.
        request_id: String,
    },
    /// The request exceeds the gateway's maximum payload.
    #[error("gateway request exceeds the gateway's maximum payload")]
    PayloadTooLarge,
    /// The gateway refused the credentials.
    #[error("gateway refused the credentials: {0}")]
    Auth(GatewayError),
}

impl From<CallError> for ClientError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Gateway(error) => ClientError::Gateway(error),
            CallError::Unavailable(message) => ClientError::Unavailable(message),
            CallError::DeadlineExceeded => ClientError::DeadlineExceeded,
            CallError::Overloaded => ClientError::Overloaded,
            CallError::PayloadTooLarge => ClientError::PayloadTooLarge,
        }
    }
}

impl From<ConnectError> for ClientError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Io(_) | ConnectError::Timeout | ConnectError::Protocol(_) => {
                ClientError::Unavailable(error.to_string())
            }
            ConnectError::Auth(error) => ClientError::Auth(error),
            ConnectError::PairingRequired { request_id, .. } => {
                ClientError::PairingRequired { request_id }
            }
            ConnectError::ScopesMissing { missing } => ClientError::ScopesMissing(missing),
            ConnectError::Unavailable { message, .. } => ClientError::Unavailable(message),
        }
    }
}

impl From<ResolveError> for ClientError {
    fn from(error: ResolveError) -> Self {
        match error {
            ResolveError::NotFound(message) => ClientError::NotFound(message),
            ResolveError::Unavailable(message) => ClientError::Unavailable(message),
            ResolveError::NotRunning(message) => ClientError::NotRunning(message),
            ResolveError::Invalid(message) => ClientError::InvalidInstance(message),
        }
    }
}
