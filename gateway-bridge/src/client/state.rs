//! The client's shared state: the link (idle, connecting or open), the device token a
//! gateway granted, and the demand that decides whether background reconnects are wanted.

use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, Ordering},
};

use clawfleet_kit::secret::SecretString;
use tokio::{
    sync::{Notify, broadcast, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{ClientError, ClientOptions, EndpointSource, supervisor::supervise};
use crate::{
    connection::{CloseReason, Connection},
    device_identity::DeviceIdentity,
    protocol::GatewayEvent,
};

/// Events buffered per subscriber of a client before a slow one starts losing the oldest.
const EVENT_BUFFER: usize = 1024;
/// Close code of a gateway refusing or revoking credentials.
const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// Close code of a gateway whose shared token was rotated ("gateway auth changed").
const CLOSE_AUTH_CHANGED: u16 = 4001;

/// What a connect attempt ended with; `None` while it runs.
pub(super) type AttemptOutcome = Option<Result<Arc<Connection>, ClientError>>;

/// Everything a client and its supervisor and connect attempts share.
pub(super) struct Inner {
    pub(super) instance_id: String,
    pub(super) source: Arc<dyn EndpointSource>,
    pub(super) identity: Arc<DeviceIdentity>,
    pub(super) options: ClientOptions,
    pub(super) events: broadcast::Sender<GatewayEvent>,
    pub(super) state: Mutex<State>,
    /// Wakes the supervisor when the link changes or background work may be wanted.
    pub(super) wake: Notify,
    pub(super) stop: CancellationToken,
    pub(super) supervisor_started: AtomicBool,
    pub(super) supervisor: Mutex<Option<JoinHandle<()>>>,
}

/// The mutable part of [`Inner`], behind one lock.
pub(super) struct State {
    pub(super) link: Link,
    pub(super) next_attempt: u64,
    /// Resolve with `refresh = true` before the next connect.
    pub(super) refresh_endpoint: bool,
    pub(super) device_token: Option<SecretString>,
    pub(super) active_calls: usize,
    pub(super) last_demand: Instant,
    pub(super) pairing_pending: bool,
    pub(super) shut_down: bool,
    /// Why the last connection ended, for the span of the next connect attempt.
    pub(super) last_close: Option<CloseReason>,
}

/// The client's connection, if any.
pub(super) enum Link {
    Idle,
    Connecting {
        attempt: u64,
        outcome: watch::Receiver<AttemptOutcome>,
    },
    Open {
        connection: Arc<Connection>,
        /// Taken by the supervisor to forward into the client's broadcast.
        events: Option<broadcast::Receiver<GatewayEvent>>,
    },
}

impl Inner {
    pub(super) fn new(
        instance_id: String,
        source: Arc<dyn EndpointSource>,
        identity: Arc<DeviceIdentity>,
        options: ClientOptions,
    ) -> Self {
        Self {
            instance_id,
            source,
            identity,
            options,
            events: broadcast::channel(EVENT_BUFFER).0,
            state: Mutex::new(State {
                link: Link::Idle,
                next_attempt: 0,
                // A new client asks where the gateway is rather than trust a cache
                // filled in the background: the first connect is part of the request
                // that needed it, ResolveGateway included.
                refresh_endpoint: true,
                device_token: None,
                active_calls: 0,
                last_demand: Instant::now(),
                pairing_pending: false,
                shut_down: false,
                last_close: None,
            }),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            supervisor_started: AtomicBool::new(false),
            supervisor: Mutex::new(None),
        }
    }

    pub(super) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn lock_supervisor(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.supervisor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn ensure_supervisor(self: &Arc<Self>) {
        if self.supervisor_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let handle = tokio::spawn(supervise(self.clone()));
        *self.lock_supervisor() = Some(handle);
    }

    pub(super) fn begin_shutdown(&self) -> Option<Arc<Connection>> {
        let retired = {
            let mut state = self.lock_state();
            state.shut_down = true;
            std::mem::replace(&mut state.link, Link::Idle)
        };
        self.stop.cancel();
        match retired {
            Link::Open { connection, .. } => Some(connection),
            Link::Idle | Link::Connecting { .. } => None,
        }
    }

    /// Forgets a connection that has ended, learning from why it ended. Locked state.
    pub(super) fn retire(&self, state: &mut State, connection: &Arc<Connection>) {
        let is_current = matches!(
            &state.link,
            Link::Open { connection: current, .. } if Arc::ptr_eq(current, connection)
        );
        if !is_current {
            return;
        }
        state.link = Link::Idle;
        let reason = connection.close_reason();
        if let Some(CloseReason::Remote { code, .. }) = &reason
            && (*code == CLOSE_POLICY_VIOLATION || *code == CLOSE_AUTH_CHANGED)
        {
            state.refresh_endpoint = true;
        }
        tracing::info!(
            instance = %self.instance_id,
            reason = reason.as_ref().map(ToString::to_string).unwrap_or_default(),
            "gateway connection retired"
        );
        state.last_close = reason;
    }

    /// Background reconnects are wanted by event subscribers, and by recent callers while a
    /// pairing approval is pending.
    pub(super) fn wants_background_connection(&self, state: &State) -> bool {
        if state.shut_down {
            return false;
        }
        let recent_demand =
            state.active_calls > 0 || state.last_demand.elapsed() < self.options.idle_timeout;
        self.events.receiver_count() > 0 || (state.pairing_pending && recent_demand)
    }
}
