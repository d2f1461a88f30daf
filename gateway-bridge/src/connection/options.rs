//! How to reach and authenticate with one gateway.

use std::{sync::Arc, time::Duration};

use clawfleet_kit::secret::SecretString;

use crate::device_identity::DeviceIdentity;

/// How to reach and authenticate with one gateway.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `ws://` or `wss://` URL of the gateway port.
    pub url: String,
    /// The shared gateway token (`OPENCLAW_GATEWAY_TOKEN`); empty to use `device_token` alone.
    pub token: SecretString,
    /// Signs the `connect` when set.
    pub identity: Option<Arc<DeviceIdentity>>,
    /// A `deviceToken` granted by an earlier `hello-ok`, sent as `auth.deviceToken`.
    pub device_token: Option<SecretString>,
    /// The most requests that may await their response at once.
    pub max_in_flight: usize,
    /// Bound on TCP connect, WebSocket upgrade and handshake together.
    pub connect_timeout: Duration,
    /// Extra HTTP headers on the upgrade request.
    pub extra_headers: Vec<(String, String)>,
}
