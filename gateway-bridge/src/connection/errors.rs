//! Why opening a connection failed, why a call failed, and why a connection ended.

use std::time::Duration;

use crate::protocol::GatewayError;

/// Why opening a connection failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP, TLS or WebSocket failure, or the socket closed during the handshake.
    #[error("gateway connection failed: {0}")]
    Io(String),
    /// The handshake did not finish within `connect_timeout`.
    #[error("gateway handshake timed out")]
    Timeout,
    /// The gateway spoke something other than the expected protocol.
    #[error("gateway protocol error: {0}")]
    Protocol(String),
    /// The gateway refused the credentials (it then closes with 1008).
    #[error("gateway refused the connection: {0}")]
    Auth(GatewayError),
    /// The device is waiting for approval of this pairing request.
    #[error("device {device_id} is not paired yet (pairing request {request_id})")]
    PairingRequired {
        /// The pending pairing request to approve with `device.pair.approve`.
        request_id: String,
        /// The device id the gateway saw.
        device_id: String,
    },
    /// The handshake succeeded without some required scopes.
    #[error("gateway did not grant scopes: {}", missing.join(", "))]
    ScopesMissing {
        /// The entries of `REQUIRED_SCOPES` that were not granted.
        missing: Vec<String>,
    },
    /// The gateway is not ready to accept operators yet (e.g. startup sidecars still run).
    #[error("gateway unavailable: {message}")]
    Unavailable {
        /// The gateway's message.
        message: String,
        /// When the gateway suggests trying again.
        retry_after: Option<Duration>,
    },
}

/// Why a call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CallError {
    /// The gateway answered with an error.
    #[error("gateway error {0}")]
    Gateway(GatewayError),
    /// The connection was lost or is not open.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
    /// No response within the call's deadline.
    #[error("gateway call deadline exceeded")]
    DeadlineExceeded,
    /// `max_in_flight` requests are already pending on this connection.
    #[error("too many gateway calls in flight")]
    Overloaded,
    /// The request frame exceeds the gateway's `maxPayload`.
    #[error("gateway request exceeds the gateway's maximum payload")]
    PayloadTooLarge,
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The gateway closed the socket (1008 policy, 1012 restart, 4001 auth changed, ...).
    #[error("closed by gateway ({code}: {reason})")]
    Remote {
        /// WebSocket close code.
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// No frame for longer than twice the gateway's tick interval.
    #[error("gateway went silent for longer than two tick intervals")]
    TickTimeout,
    /// The socket failed or ended without a close frame.
    #[error("gateway connection lost: {0}")]
    Io(String),
    /// Closed by this side.
    #[error("closed locally")]
    Local,
    /// Closed by this side because the gateway sent more than a connection may (a message
    /// over the size cap, or a flood): see `limits`.
    #[error("gateway exceeded the bridge's limits: {0}")]
    LimitExceeded(String),
}

impl CloseReason {
    /// Why the connection ended as a closed vocabulary, for metric labels and span
    /// attributes (the gateway's own close text never leaves this type that way).
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Remote { .. } => "remote_close",
            CloseReason::TickTimeout => "tick_timeout",
            CloseReason::Io(_) => "io",
            CloseReason::Local => "local_close",
            CloseReason::LimitExceeded(_) => "limit_exceeded",
        }
    }
}
