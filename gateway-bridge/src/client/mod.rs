//! A self-healing client for one gateway instance, built on [`Connection`](crate::connection::Connection).
//!
//! The client connects on first use (one shared attempt for concurrent callers), keeps the
//! `deviceToken` a gateway grants, and after a drop reconnects by itself while anyone listens
//! to events or waits for a pairing approval. Callers never wait for a backoff: a call that
//! finds no connection makes one immediate attempt and fails fast if it fails.
//!
//! A supervisor task per client (started on first use, stopped on shutdown or drop) watches the
//! live connection, forwards its events into one long-lived broadcast, closes it when idle and
//! runs the background reconnects.

mod attempt; // connect attempts: one shared attempt, and what a failed one teaches
mod endpoint; // where an instance's gateway is, asked before each connect
mod errors; // why a call failed
mod options; // tuning: bounds, timeouts, backoff
mod spans; // the spans of calls and connect attempts, with closed-vocabulary attributes
mod state; // the link and demand shared by the client, its supervisor and its attempts
mod supervisor; // event forwarding, idle close and background reconnects

use std::{fmt, sync::Arc, time::Duration};

use serde_json::Value;
use tokio::{sync::broadcast, time::Instant};
use tracing::{Instrument, Span};

pub use self::{
    endpoint::{Endpoint, EndpointSource, ResolveError},
    errors::ClientError,
    options::ClientOptions,
};
use self::{
    spans::Trigger,
    state::{Inner, Link},
};
use crate::{device_identity::DeviceIdentity, protocol::GatewayEvent};

/// A self-healing client for one gateway instance.
pub struct GatewayClient {
    inner: Arc<Inner>,
}

impl GatewayClient {
    /// A client for `instance_id`; nothing connects until the first call or subscribe.
    pub fn new(
        instance_id: String,
        source: Arc<dyn EndpointSource>,
        identity: Arc<DeviceIdentity>,
        options: ClientOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(Inner::new(instance_id, source, identity, options)),
        })
    }

    /// The instance this client talks to.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Whether a connection is open right now (no connect is attempted).
    pub fn is_connected(&self) -> bool {
        matches!(&self.inner.lock_state().link, Link::Open { connection, .. } if connection.is_open())
    }

    /// Calls `method` on the instance's gateway, connecting first if needed; the whole call,
    /// connecting included, is bounded by `deadline`.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        deadline: Duration,
    ) -> Result<Value, ClientError> {
        let timed = crate::metrics::GatewayCall::start(method);
        let span = spans::call_span(&self.inner.instance_id, method);
        let result = self
            .call_in_span(method, params, deadline, &span)
            .instrument(span.clone())
            .await;
        spans::record_call_outcome(&span, &result);
        timed.finish(&result);
        result
    }

    async fn call_in_span(
        &self,
        method: &str,
        params: Value,
        deadline: Duration,
        span: &Span,
    ) -> Result<Value, ClientError> {
        let started = Instant::now();
        let deadline_at = started + deadline;
        let _demand = Demand::begin(&self.inner)?;
        let connection = self.inner.connection(deadline_at, Trigger::Request).await?;
        span.record(
            "clawfleet.gateway.connect_wait_ms",
            millis(started.elapsed()),
        );
        let on_gateway = Instant::now();
        let remaining = deadline_at.saturating_duration_since(on_gateway);
        let result = connection.call(method, params, remaining).await;
        span.record("clawfleet.gateway.call_ms", millis(on_gateway.elapsed()));
        Ok(result?)
    }

    /// Events of the instance's gateway from now on, across reconnects. Connects first (bounded
    /// by `connect_timeout`) and fails like a call when that fails; once subscribed, the client
    /// keeps reconnecting in the background for as long as the receiver lives.
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<GatewayEvent>, ClientError> {
        let receiver = self.inner.events.subscribe();
        {
            let _demand = Demand::begin(&self.inner)?;
            let deadline_at = Instant::now() + self.inner.options.connect_timeout;
            self.inner.connection(deadline_at, Trigger::Request).await?;
        }
        Ok(receiver)
    }

    /// The endpoint changed: drops the connection and resolves afresh on next use.
    pub fn invalidate(&self) {
        let retired = {
            let mut state = self.inner.lock_state();
            state.refresh_endpoint = true;
            std::mem::replace(&mut state.link, Link::Idle)
        };
        if let Link::Open { connection, .. } = retired {
            tracing::info!(instance = %self.inner.instance_id, "gateway endpoint invalidated");
            connection.close_now();
        }
        self.inner.wake.notify_one();
    }

    /// Closes the connection and stops background work; later calls fail with `Unavailable`.
    pub async fn shutdown(&self) {
        let retired = self.inner.begin_shutdown();
        if let Some(connection) = retired {
            connection.close().await;
        }
        let supervisor = self.inner.lock_supervisor().take();
        if let Some(supervisor) = supervisor {
            let _ = supervisor.await;
        }
    }

    /// Synchronous shutdown for `Drop` and pool removal: the close frame goes out in the
    /// background.
    pub(crate) fn shutdown_now(&self) {
        if let Some(connection) = self.inner.begin_shutdown() {
            connection.close_now();
        }
    }
}

impl Drop for GatewayClient {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

impl fmt::Debug for GatewayClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("GatewayClient")
            .field("instance_id", &self.inner.instance_id)
            .finish_non_exhaustive()
    }
}

/// Whole milliseconds, for span attributes.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Marks a call or subscribe in progress, so the connection is neither idle-closed under it
/// nor considered unwanted.
struct Demand<'a> {
    inner: &'a Arc<Inner>,
}

impl<'a> Demand<'a> {
    fn begin(inner: &'a Arc<Inner>) -> Result<Self, ClientError> {
        {
            let mut state = inner.lock_state();
            if state.shut_down {
                return Err(ClientError::Unavailable(
                    "gateway client shut down".to_owned(),
                ));
            }
            state.active_calls += 1;
            state.last_demand = Instant::now();
        }
        inner.ensure_supervisor();
        Ok(Self { inner })
    }
}

impl Drop for Demand<'_> {
    fn drop(&mut self) {
        let mut state = self.inner.lock_state();
        state.active_calls -= 1;
        state.last_demand = Instant::now();
    }
}

#[cfg(test)]
mod tests;
