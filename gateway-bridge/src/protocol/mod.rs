//! The gateway's wire protocol: JSON text frames (`req`, `res`, `event`), the `connect`
//! handshake params and the parts of `hello-ok` the bridge relies on (docs/reference/openclaw-gateway.md#frames, #handshake).

mod frames; // `req`, `res`, `event` and the gateway's error object
mod handshake; // challenge, `connect` params, `hello-ok`

pub use self::{
    frames::{Frame, FrameError, GatewayError, GatewayEvent, RequestFrame, ResponseFrame},
    handshake::{ConnectAuth, ConnectChallenge, ConnectParams, HelloOk},
};

/// The only protocol version the bridge speaks (`minProtocol` = `maxProtocol`).
pub const PROTOCOL_VERSION: u32 = 4;
/// `client.id`: the reserved backend client id.
pub const CLIENT_ID: &str = "gateway-client";
/// `client.mode`.
pub const CLIENT_MODE: &str = "backend";
/// `client.platform`.
pub const CLIENT_PLATFORM: &str = "linux";
/// `client.version`: this crate's version.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The role the bridge connects as.
pub const OPERATOR_ROLE: &str = "operator";
/// The scopes the bridge requests, and requires in `hello-ok.auth.scopes`.
pub const REQUIRED_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.pairing",
    "operator.approvals",
];
/// The event the gateway sends first, carrying the nonce to sign.
pub const CHALLENGE_EVENT: &str = "connect.challenge";
/// The gateway's keepalive event.
pub const TICK_EVENT: &str = "tick";

#[cfg(test)]
mod tests;
