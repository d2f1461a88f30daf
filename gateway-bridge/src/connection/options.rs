//! How to reach and authenticate with one gateway.

use std::{fmt, sync::Arc, time::Duration};

use crate::device_identity::DeviceIdentity;

/// How to reach and authenticate with one gateway.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `ws://` or `wss://` URL of the gateway port.
    pub url: String,
    /// The shared gateway token (`OPENCLAW_GATEWAY_TOKEN`); empty to use `device_token` alone.
    pub token: String,
    /// Signs the `connect` when set.
    pub identity: Option<Arc<DeviceIdentity>>,
    /// A `deviceToken` granted by an earlier `hello-ok`, sent as `auth.deviceToken`.
    pub device_token: Option<String>,
    /// The most requests that may await their response at once.
    pub max_in_flight: usize,
    /// Bound on TCP connect, WebSocket upgrade and handshake together.
    pub connect_timeout: Duration,
    /// Extra HTTP headers on the upgrade request.
    pub extra_headers: Vec<(String, String)>,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ConnectOptions")
            .field("url", &self.url)
            .field("identity", &self.identity)
            .field("has_device_token", &self.device_token.is_some())
            .field("max_in_flight", &self.max_in_flight)
            .field("connect_timeout", &self.connect_timeout)
            .field("extra_headers", &self.extra_headers)
            .finish_non_exhaustive()
    }
}
