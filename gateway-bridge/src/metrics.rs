//! The bridge's metrics: open gateway connections, reconnects by the reason the last
//! connection ended, gateway calls in flight and their duration by gateway method, and
//! frames and bytes each way. No label names an instance; gateway methods outside
//! the app's and the platform's own are counted as `other`, since the method is the
//! caller's text.

use std::{sync::LazyLock, time::Instant};

use clawfleet_kit::metrics::{self, buckets, registry::MakeHistogram};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
};

use clawfleet_kit::app_rpc::APP_RPC_METHODS;

use crate::client::ClientError;
#[cfg(test)]
use crate::connection::CloseReason;

/// Gateway methods the platform calls besides those the app may call
/// ([`APP_RPC_METHODS`]); together they are the method labels.
const PLATFORM_METHODS: &[&str] = &[
    "channels.pairing.approve",
    "usage.status",
    "config.get",
    "config.patch",
    "device.pair.list",
    "device.pair.approve",
];

/// The label of a gateway method: itself when known, else `other`.
pub fn method_label(method: &str) -> &'static str {
    APP_RPC_METHODS
        .iter()
        .chain(PLATFORM_METHODS)
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

/// Every reconnect reason label.
const RECONNECT_REASONS: [&str; 6] = [
    "remote_close",
    "tick_timeout",
    "io",
    "local_close",
    "limit_exceeded",
    "connect_failed",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

struct BridgeMetrics {
    open_connections: Gauge,
    reconnects: Family<ReasonLabels, Counter>,
    in_flight: Gauge,
    calls: Family<CallLabels, Histogram, MakeHistogram>,
    /// The four frame counters, fetched once: they move with every frame.
    frames_in: Counter,
    frames_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
}

static METRICS: LazyLock<BridgeMetrics> = LazyLock::new(|| {
    let open_connections = Gauge::default();
    metrics::register(
        "clawfleet_bridge_gateway_connections",
        "Gateway WebSocket connections open now.",
        open_connections.clone(),
    );
    let in_flight = Gauge::default();
    metrics::register(
        "clawfleet_bridge_gateway_in_flight_calls",
        "Gateway calls waiting for their answer now (connecting included).",
        in_flight.clone(),
    );
    let reconnects: Family<ReasonLabels, Counter> = metrics::counter(
        "clawfleet_bridge_gateway_reconnects",
        "Reconnect attempts to a gateway, by why the previous connection ended (connect_failed: the previous attempt failed).",
    );
    // Zeros from the start, so the reconnect-storm alert sees the first ones.
    for reason in RECONNECT_REASONS {
        reconnects.get_or_create(&ReasonLabels { reason }).inc_by(0);
    }
    let frames: Family<DirectionLabels, Counter> = metrics::counter(
        "clawfleet_bridge_gateway_frames",
        "WebSocket frames exchanged with gateways, by direction (in, out).",
    );
    let bytes: Family<DirectionLabels, Counter> = metrics::counter(
        "clawfleet_bridge_gateway_frame_bytes",
        "Payload bytes of the WebSocket frames exchanged with gateways, by direction.",
    );
    BridgeMetrics {
        open_connections,
        reconnects,
        in_flight,
        calls: metrics::histogram(
            "clawfleet_bridge_gateway_call_duration_seconds",
            "Gateway calls by gateway method and outcome (ok, gateway_error, failed, cancelled): time from the call to its answer, connecting included.",
            || Histogram::new(buckets::REQUEST_SECONDS.iter().copied()),
        ),
        frames_in: frames.get_or_create_owned(&DirectionLabels { direction: "in" }),
        frames_out: frames.get_or_create_owned(&DirectionLabels { direction: "out" }),
        bytes_in: bytes.get_or_create_owned(&DirectionLabels { direction: "in" }),
        bytes_out: bytes.get_or_create_owned(&DirectionLabels { direction: "out" }),
    }
});

/// Registers the bridge's families so a scrape lists them before any traffic.
pub fn register() {
    LazyLock::force(&METRICS);
}

/// Counts a reconnect attempt.
pub fn reconnect(reason: &'static str) {
    METRICS
        .reconnects
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// Counts one frame of `bytes` bytes read from a gateway.
pub fn frame_in(bytes: usize) {
    METRICS.frames_in.inc();
    METRICS.bytes_in.inc_by(bytes as u64);
}

/// Counts one frame of `bytes` bytes written to a gateway.
pub fn frame_out(bytes: usize) {
    METRICS.frames_out.inc();
    METRICS.bytes_out.inc_by(bytes as u64);
}

/// Counted as an open gateway connection for as long as it lives.
#[derive(Debug)]
pub struct OpenConnection(());

impl OpenConnection {
    pub fn new() -> Self {
        METRICS.open_connections.inc();
        Self(())
    }
}

impl Default for OpenConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        METRICS.open_connections.dec();
    }
}

/// One gateway call being timed; dropped unfinished, it counts as `cancelled`.
pub struct GatewayCall {
    method: &'static str,
    started: Instant,
    outcome: &'static str,
}

impl GatewayCall {
    pub fn start(method: &str) -> Self {
        METRICS.in_flight.inc();
        Self {
            method: method_label(method),
            started: Instant::now(),
            outcome: "cancelled",
        }
    }

    /// Records the call's outcome (when this is dropped).
    pub fn finish<T>(mut self, result: &Result<T, ClientError>) {
        self.outcome = match result {
            Ok(_) => "ok",
            Err(ClientError::Gateway(_)) => "gateway_error",
            Err(_) => "failed",
        };
    }
}

impl Drop for GatewayCall {
    fn drop(&mut self) {
        METRICS.in_flight.dec();
        METRICS
            .calls
            .get_or_create(&CallLabels {
                method: self.method,
                outcome: self.outcome,
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_gateway_methods_become_labels() {
        assert_eq!(method_label("status"), "status");
        assert_eq!(method_label("config.patch"), "config.patch");
        assert_eq!(method_label("a-caller-chosen-name"), "other");
    }

    #[test]
    fn every_close_reason_has_a_fixed_label() {
        let reasons = [
            CloseReason::Remote {
                code: 1012,
                reason: "restart".into(),
            },
            CloseReason::TickTimeout,
            CloseReason::Io("reset".into()),
            CloseReason::Local,
            CloseReason::LimitExceeded("size".into()),
        ];
        let labels: Vec<_> = reasons.iter().map(CloseReason::label).collect();
        assert_eq!(
            labels,
            [
                "remote_close",
                "tick_timeout",
                "io",
                "local_close",
                "limit_exceeded"
            ]
        );
    }
}
