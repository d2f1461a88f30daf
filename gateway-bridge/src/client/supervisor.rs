//! The supervisor task of a client: forwards the live connection's events into the
//! client's broadcast, closes the connection when idle, and reconnects in the background
//! while someone listens to events or waits for a pairing approval.

use std::sync::Arc;

use clawfleet_kit::backoff::Backoff;
use tokio::{
    sync::{broadcast, watch},
    time::{Instant, sleep, sleep_until},
};

use super::{
    spans::Trigger,
    state::{AttemptOutcome, Inner, Link},
};
use crate::{
    connection::{CloseReason, Connection},
    protocol::GatewayEvent,
};

enum Step {
    Watch(Arc<Connection>, broadcast::Receiver<GatewayEvent>),
    AwaitAttempt(watch::Receiver<AttemptOutcome>),
    Reconnect,
    Rest,
}

pub(super) async fn supervise(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(inner.options.backoff_initial, inner.options.backoff_max);
    // Why the next reconnect is needed: how the last connection ended, or a failed attempt.
    let mut reconnect_reason = "connect_failed";
    while !inner.stop.is_cancelled() {
        let step = {
            let mut state = inner.lock_state();
            let wanted = inner.wants_background_connection(&state);
            match &mut state.link {
                Link::Open { connection, events } => {
                    let events = events.take().unwrap_or_else(|| connection.subscribe());
                    Step::Watch(connection.clone(), events)
                }
                Link::Connecting { outcome, .. } => Step::AwaitAttempt(outcome.clone()),
                Link::Idle if wanted => Step::Reconnect,
                Link::Idle => Step::Rest,
            }
        };
        match step {
            Step::Watch(connection, events) => {
                backoff.reset();
                if let Some(ended) = watch_connection(&inner, connection, events).await {
                    reconnect_reason = ended.label();
                }
            }
            Step::AwaitAttempt(mut outcome) => {
                tokio::select! {
                    _ = outcome.wait_for(Option::is_some) => {}
                    () = inner.stop.cancelled() => {}
                }
            }
            Step::Reconnect => {
                let delay = backoff.next_delay();
                tracing::debug!(instance = %inner.instance_id, ?delay, "gateway reconnect scheduled");
                tokio::select! {
                    () = sleep(delay) => {}
                    () = inner.stop.cancelled() => break,
                }
                let mut outcome = {
                    let mut state = inner.lock_state();
                    if !matches!(state.link, Link::Idle)
                        || !inner.wants_background_connection(&state)
                    {
                        continue;
                    }
                    crate::metrics::reconnect(std::mem::replace(
                        &mut reconnect_reason,
                        "connect_failed",
                    ));
                    inner.start_attempt(&mut state, Trigger::Reconnect)
                };
                tokio::select! {
                    _ = outcome.wait_for(Option::is_some) => {}
                    () = inner.stop.cancelled() => break,
                }
            }
            Step::Rest => {
                backoff.reset();
                tokio::select! {
                    () = inner.wake.notified() => {}
                    () = inner.stop.cancelled() => break,
                }
            }
        }
    }
}

/// Forwards events and watches for the end of `connection` or its idle deadline; the
/// close reason when the connection ended on its own.
async fn watch_connection(
    inner: &Arc<Inner>,
    connection: Arc<Connection>,
    mut events: broadcast::Receiver<GatewayEvent>,
) -> Option<CloseReason> {
    let mut events_open = true;
    loop {
        let idle_deadline = {
            let state = inner.lock_state();
            let current = matches!(
                &state.link,
                Link::Open { connection: current, .. } if Arc::ptr_eq(current, &connection)
            );
            if !current {
                return None;
            }
            if state.active_calls > 0 || inner.events.receiver_count() > 0 {
                Instant::now() + inner.options.idle_timeout
            } else {
                state.last_demand + inner.options.idle_timeout
            }
        };
        tokio::select! {
            reason = connection.closed() => {
                inner.retire(&mut inner.lock_state(), &connection);
                return Some(reason);
            }
            event = events.recv(), if events_open => match event {
                Ok(event) => {
                    let _ = inner.events.send(event);
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(instance = %inner.instance_id, skipped, "gateway events dropped");
                }
                Err(broadcast::error::RecvError::Closed) => events_open = false,
            },
            () = sleep_until(idle_deadline) => {
                let idle = {
                    let mut state = inner.lock_state();
                    let idle = state.active_calls == 0
                        && inner.events.receiver_count() == 0
                        && state.last_demand.elapsed() >= inner.options.idle_timeout;
                    if idle {
                        state.link = Link::Idle;
                    }
                    idle
                };
                if idle {
                    tracing::info!(instance = %inner.instance_id, "closing idle gateway connection");
                    connection.close().await;
                    return None;
                }
            }
            () = inner.wake.notified() => {}
            () = inner.stop.cancelled() => return None,
        }
    }
}
