//! What a connection's handle, reader and writer share: the outbound queue, the pending
//! requests by id, the in-flight bounds, and the one place a connection ends.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, atomic::AtomicU64},
};

use serde_json::Value;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{CloseReason, EVENT_BUFFER, WIRE_WINDOW};
use crate::protocol::{GatewayError, GatewayEvent};

/// What a pending call is answered with.
type Reply = Result<Value, GatewayError>;

/// The state of one connection, owned jointly by its handle, reader and writer.
pub(super) struct Shared {
    pub(super) outbound: mpsc::Sender<Message>,
    pub(super) pending: Mutex<Pending>,
    pub(super) in_flight: Semaphore,
    pub(super) wire: Semaphore,
    pub(super) events: broadcast::Sender<GatewayEvent>,
    pub(super) closed: watch::Sender<Option<CloseReason>>,
    pub(super) cancel: CancellationToken,
    pub(super) next_id: AtomicU64,
    pub(super) max_payload: usize,
}

#[derive(Default)]
pub(super) struct Pending {
    /// Set once; afterwards no call may register.
    pub(super) closed: Option<CloseReason>,
    pub(super) waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// Counts the connection as open until it ends.
    pub(super) open: Option<crate::metrics::OpenConnection>,
}

impl Shared {
    /// A connection's state; `outbound` feeds its writer.
    pub(super) fn new(
        outbound: mpsc::Sender<Message>,
        max_in_flight: usize,
        max_payload: usize,
    ) -> Self {
        Self {
            outbound,
            pending: Mutex::new(Pending {
                open: Some(crate::metrics::OpenConnection::new()),
                ..Pending::default()
            }),
            in_flight: Semaphore::new(max_in_flight),
            wire: Semaphore::new(max_in_flight.min(WIRE_WINDOW)),
            events: broadcast::channel(EVENT_BUFFER).0,
            closed: watch::Sender::new(None),
            cancel: CancellationToken::new(),
            next_id: AtomicU64::new(1),
            max_payload,
        }
    }

    pub(super) fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the connection once: records the reason, fails every pending call, stops the tasks.
    pub(super) fn finish(&self, reason: CloseReason) {
        let waiters = {
            let mut pending = self.lock_pending();
            if pending.closed.is_some() {
                return;
            }
            pending.closed = Some(reason.clone());
            pending.open = None;
            std::mem::take(&mut pending.waiters)
        };
        // Dropping the senders wakes every waiter with an error at once; closing the
        // semaphores does the same for calls still queued for a slot.
        drop(waiters);
        self.in_flight.close();
        self.wire.close();
        match &reason {
            CloseReason::Local => tracing::debug!("gateway connection closed locally"),
            other => tracing::info!(reason = %other, "gateway connection ended"),
        }
        self.closed.send_replace(Some(reason));
        self.cancel.cancel();
    }

    pub(super) fn close_description(&self) -> String {
        self.lock_pending()
            .closed
            .as_ref()
            .map_or_else(|| "connection closed".to_owned(), ToString::to_string)
    }
}
