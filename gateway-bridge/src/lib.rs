//! The gateway bridge: the one OpenClaw gateway protocol client of clawfleet, and the
//! GatewayBridgeService that lets the other services call and watch any instance's gateway.

#![forbid(unsafe_code)]

// Gateway protocol core: from wire frames up to one self-healing client per instance.
pub mod client; // a self-healing client for one instance: connect attempts, supervision, reconnects, events
pub mod connection; // one authenticated, multiplexed WebSocket to one gateway: handshake, frame I/O, pending calls
pub mod device_identity; // the bridge's Ed25519 device and the signed `connect` device object
pub mod metrics; // open connections, reconnects, gateway calls by method, frames and bytes
pub mod pool; // one client per instance
pub mod protocol; // frames, `connect` params, `hello-ok` and the gateway's error object

// Service layer: the gRPC service and what it needs from the rest of the platform.
pub mod pairing_approver; // the instance-side helper that approves the platform's device
pub mod resolver; // endpoints and tokens from the lifecycle service, kept fresh by watching it
pub mod server; // assembly of the bridge and serving it
pub mod service; // the GatewayBridgeService gRPC handlers: Call, Subscribe, VncTunnel

#[cfg(any(test, feature = "fake-gateway"))]
pub mod fake_gateway; // a scripted loopback gateway for the tests (feature `fake-gateway`)

pub use client::{
    ClientError, ClientOptions, Endpoint, EndpointSource, GatewayClient, ResolveError,
};
pub use connection::{CallError, CloseReason, ConnectError, ConnectOptions, Connection};
pub use device_identity::DeviceIdentity;
pub use pool::GatewayPool;
pub use protocol::{GatewayError, GatewayEvent, HelloOk, REQUIRED_SCOPES};
pub use server::{BridgeConfig, BridgeServer, BridgeStartError};
