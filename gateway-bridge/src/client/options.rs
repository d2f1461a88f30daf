//! Tuning of a [`GatewayClient`](super::GatewayClient).

use std::time::Duration;

/// Tuning of a [`GatewayClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Bound on requests awaiting a response on the connection.
    pub max_in_flight: usize,
    /// Bound on resolving plus connecting plus the handshake.
    pub connect_timeout: Duration,
    /// Close the connection after this long without calls or subscribers.
    pub idle_timeout: Duration,
    /// Background reconnect delays start here (then double, jittered; see the kit's `Backoff`).
    pub backoff_initial: Duration,
    /// Background reconnect delays stop doubling here.
    pub backoff_max: Duration,
    /// Extra HTTP headers on the WebSocket upgrade.
    pub extra_headers: Vec<(String, String)>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 256,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            extra_headers: Vec::new(),
        }
    }
}
