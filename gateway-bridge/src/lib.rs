//! The gateway bridge: the one OpenClaw gateway protocol client of clawfleet.
//!
//! - [`device_identity`]: the bridge's Ed25519 device and the signed `connect` device object;
//! - [`protocol`]: frames, `connect` params, `hello-ok` and the gateway's error object;
//! - [`connection`]: one authenticated, multiplexed WebSocket to one gateway;
//! - [`client`]: a self-healing client for one instance (reconnects, events, pairing);
//! - [`pool`]: one client per instance;
//! - [`resolver`]: endpoints and tokens from the lifecycle service, kept fresh by watching it;
//! - [`service`]: the GatewayBridgeService gRPC handlers (Call, Subscribe, VncTunnel);
//! - [`server`]: assembly and serving;
//! - [`pairing_approver`]: the instance-side helper that approves the platform's device.

#![forbid(unsafe_code)]

// --- gateway protocol core ---
pub mod client;
pub mod connection;
pub mod device_identity;
pub mod pool;
pub mod protocol;

#[cfg(test)]
mod fake_gateway;

pub use client::{
    ClientError, ClientOptions, Endpoint, EndpointSource, GatewayClient, ResolveError,
};
pub use connection::{CallError, CloseReason, ConnectError, ConnectOptions, Connection};
pub use device_identity::DeviceIdentity;
pub use pool::GatewayPool;
pub use protocol::{GatewayError, GatewayEvent, HelloOk, REQUIRED_SCOPES};
// --- end gateway protocol core ---

// --- service layer ---
pub mod pairing_approver;
pub mod resolver;
pub mod server;
pub mod service;

pub use server::{BridgeConfig, BridgeServer, BridgeStartError};
