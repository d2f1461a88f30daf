//! A call on an open connection: bounded in flight and on the wire, registered by id until
//! its response arrives, and resent while the gateway is too busy to admit it.

use std::{sync::atomic::Ordering, time::Duration};

use clawfleet_kit::backoff::Backoff;
use serde_json::Value;
use tokio::{
    sync::{TryAcquireError, oneshot},
    time::{Instant, timeout_at},
};
use tokio_tungstenite::tungstenite::Message;

use super::{CallError, Connection, shared::Shared};
use crate::protocol::RequestFrame;

/// Pauses before resending a request the gateway was too busy to admit start here and
/// double (jittered, so a turned-away burst spreads out instead of returning at once)...
const BUSY_PAUSE_FLOOR: Duration = Duration::from_millis(5);
/// ...up to here.
const BUSY_PAUSE_CAP: Duration = Duration::from_millis(100);

impl Connection {
    /// Sends one request and waits for its response, at most `timeout`.
    ///
    /// Beyond `max_in_flight` pending calls it fails at once with `Overloaded`; beyond the wire
    /// window it waits (within `timeout`) for an earlier request to be answered. A request the
    /// gateway turns away before dispatch because its operator queue is full
    /// ([`GatewayError::is_busy`](crate::protocol::GatewayError::is_busy)) was never executed,
    /// so it is sent again after a short jittered pause until it is admitted or the deadline
    /// passes.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let deadline = Instant::now() + timeout;
        let _permit = self
            .shared
            .in_flight
            .try_acquire()
            .map_err(|error| match error {
                TryAcquireError::NoPermits => CallError::Overloaded,
                TryAcquireError::Closed => CallError::Unavailable(self.shared.close_description()),
            })?;
        let queued = Instant::now();
        let _on_the_wire = match self.shared.wire.try_acquire() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => timeout_at(deadline, self.shared.wire.acquire())
                .await
                .map_err(|_| CallError::DeadlineExceeded)?
                .map_err(|_| CallError::Unavailable(self.shared.close_description()))?,
            Err(TryAcquireError::Closed) => {
                return Err(CallError::Unavailable(self.shared.close_description()));
            }
        };
        // On the client's call span (a no-op outside one).
        tracing::Span::current().record(
            "clawfleet.gateway.queue_wait_ms",
            u64::try_from(queued.elapsed().as_millis()).unwrap_or(u64::MAX),
        );
        let mut busy_retries = 0u32;
        // Made on the first busy answer only: most calls are admitted at once.
        let mut busy_pauses = None;
        loop {
            match self.exchange(method, &params, deadline).await {
                Err(CallError::Gateway(error)) if error.is_busy() => {
                    let pause = busy_pauses
                        .get_or_insert_with(|| Backoff::new(BUSY_PAUSE_FLOOR, BUSY_PAUSE_CAP))
                        .next_delay();
                    if Instant::now() + pause >= deadline {
                        return Err(CallError::Gateway(error));
                    }
                    busy_retries += 1;
                    tracing::debug!(method, busy_retries, "gateway busy, resending");
                    tokio::time::sleep(pause).await;
                }
                result => return result,
            }
        }
    }

    /// One request/response round trip under an already held in-flight permit.
    async fn exchange(
        &self,
        method: &str,
        params: &Value,
        deadline: Instant,
    ) -> Result<Value, CallError> {
        let shared = &*self.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let id_text = id.to_string();
        let text = serde_json::to_string(&RequestFrame::new(&id_text, method, params))
            .map_err(|error| CallError::Unavailable(format!("cannot encode request: {error}")))?;
        if text.len() > shared.max_payload {
            return Err(CallError::PayloadTooLarge);
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut pending = shared.lock_pending();
            if let Some(reason) = &pending.closed {
                return Err(CallError::Unavailable(reason.to_string()));
            }
            pending.waiters.insert(id, reply_tx);
        }
        let mut registration = Registration {
            shared,
            id,
            armed: true,
        };
        let round_trip = async {
            shared
                .outbound
                .send(Message::text(text))
                .await
                .map_err(|_| CallError::Unavailable(shared.close_description()))?;
            reply_rx
                .await
                .map_err(|_| CallError::Unavailable(shared.close_description()))
        };
        let reply = timeout_at(deadline, round_trip)
            .await
            .map_err(|_| CallError::DeadlineExceeded)??;
        // The reader removed the entry before answering.
        registration.armed = false;
        reply.map_err(CallError::Gateway)
    }
}

/// Removes a call's waiter if the call ends (deadline, cancellation) before its response.
struct Registration<'a> {
    shared: &'a Shared,
    id: u64,
    armed: bool,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.lock_pending().waiters.remove(&self.id);
        }
    }
}
