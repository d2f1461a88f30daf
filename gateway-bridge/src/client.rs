//! A self-healing client for one gateway instance, built on [`Connection`].
//!
//! The client connects on first use (one shared attempt for concurrent callers), keeps the
//! `deviceToken` a gateway grants, and after a drop reconnects by itself while anyone listens
//! to events or waits for a pairing approval. Callers never wait for a backoff: a call that
//! finds no connection makes one immediate attempt and fails fast if it fails.
//!
//! A supervisor task per client (started on first use, stopped on shutdown or drop) watches the
//! live connection, forwards its events into one long-lived broadcast, closes it when idle and
//! runs the background reconnects.

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rand_core::{OsRng, RngCore};
use serde_json::Value;
use tokio::{
    sync::{Notify, broadcast, watch},
    task::JoinHandle,
    time::{Instant, sleep, sleep_until, timeout, timeout_at},
};
use tokio_util::sync::CancellationToken;

use crate::{
    connection::{CallError, CloseReason, ConnectError, ConnectOptions, Connection},
    device_identity::DeviceIdentity,
    protocol::{GatewayError, GatewayEvent},
};

/// Events buffered per subscriber of a client before a slow one starts losing the oldest.
const EVENT_BUFFER: usize = 1024;
/// Close code of a gateway refusing or revoking credentials.
const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// Close code of a gateway whose shared token was rotated ("gateway auth changed").
const CLOSE_AUTH_CHANGED: u16 = 4001;

/// Where an instance's gateway is and how to authenticate with it.
#[tonic::async_trait]
pub trait EndpointSource: Send + Sync + 'static {
    /// Endpoint and token of an instance's gateway; `refresh` asks to bypass any cache.
    async fn resolve(&self, instance_id: &str, refresh: bool) -> Result<Endpoint, ResolveError>;
}

/// An instance's gateway address and credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws://host:port` of the gateway.
    pub url: String,
    /// The shared gateway token.
    pub token: String,
    /// Changes whenever url or token change.
    pub revision: String,
    /// Whether the bridge reaches the gateway over loopback (no device approval needed).
    pub loopback: bool,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Endpoint")
            .field("url", &self.url)
            .field("revision", &self.revision)
            .field("loopback", &self.loopback)
            .finish_non_exhaustive()
    }
}

/// Why an endpoint could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The instance does not exist.
    #[error("instance not found: {0}")]
    NotFound(String),
    /// The instance exists but has no reachable gateway right now.
    #[error("instance gateway unavailable: {0}")]
    Unavailable(String),
    /// The instance is stopped or failed: no call can succeed until someone acts.
    #[error("instance is not running: {0}")]
    NotRunning(String),
    /// The instance id itself is malformed.
    #[error("invalid instance: {0}")]
    Invalid(String),
}

/// Tuning of a [`GatewayClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Bound on requests awaiting a response on the connection.
    pub max_in_flight: usize,
    /// Bound on resolving plus connecting plus the handshake.
    pub connect_timeout: Duration,
    /// Close the connection after this long without calls or subscribers.
    pub idle_timeout: Duration,
    /// First reconnect backoff ceiling.
    pub backoff_initial: Duration,
    /// Largest reconnect backoff ceiling.
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

/// Why a client call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The instance does not exist.
    #[error("instance not found: {0}")]
    NotFound(String),
    /// The gateway cannot be reached right now, or the connection was lost mid-call.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
    /// The instance is stopped or failed (the lifecycle service says why).
    #[error("instance is not running: {0}")]
    NotRunning(String),
    /// The instance id is malformed (the lifecycle service says which rule).
    #[error("invalid instance: {0}")]
    InvalidInstance(String),
    /// The call's deadline passed.
    #[error("gateway call deadline exceeded")]
    DeadlineExceeded,
    /// Too many calls in flight on the instance's connection.
    #[error("too many gateway calls in flight")]
    Overloaded,
    /// The gateway answered with an error.
    #[error("gateway error {0}")]
    Gateway(GatewayError),
    /// The gateway connected but withheld required scopes.
    #[error("gateway did not grant scopes: {}", .0.join(", "))]
    ScopesMissing(Vec<String>),
    /// The bridge's device awaits approval of this pairing request.
    #[error("gateway pairing required (request {request_id})")]
    PairingRequired {
        /// The pending pairing request id.
        request_id: String,
    },
    /// The request exceeds the gateway's maximum payload.
    #[error("gateway request exceeds the gateway's maximum payload")]
    PayloadTooLarge,
    /// The gateway refused the credentials.
    #[error("gateway refused the credentials: {0}")]
    Auth(GatewayError),
}

impl From<CallError> for ClientError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Gateway(error) => ClientError::Gateway(error),
            CallError::Unavailable(message) => ClientError::Unavailable(message),
            CallError::DeadlineExceeded => ClientError::DeadlineExceeded,
            CallError::Overloaded => ClientError::Overloaded,
            CallError::PayloadTooLarge => ClientError::PayloadTooLarge,
        }
    }
}

impl From<ConnectError> for ClientError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Io(_) | ConnectError::Timeout | ConnectError::Protocol(_) => {
                ClientError::Unavailable(error.to_string())
            }
            ConnectError::Auth(error) => ClientError::Auth(error),
            ConnectError::PairingRequired { request_id, .. } => {
                ClientError::PairingRequired { request_id }
            }
            ConnectError::ScopesMissing { missing } => ClientError::ScopesMissing(missing),
            ConnectError::Unavailable { message, .. } => ClientError::Unavailable(message),
        }
    }
}

impl From<ResolveError> for ClientError {
    fn from(error: ResolveError) -> Self {
        match error {
            ResolveError::NotFound(message) => ClientError::NotFound(message),
            ResolveError::Unavailable(message) => ClientError::Unavailable(message),
            ResolveError::NotRunning(message) => ClientError::NotRunning(message),
            ResolveError::Invalid(message) => ClientError::InvalidInstance(message),
        }
    }
}

/// A self-healing client for one gateway instance.
pub struct GatewayClient {
    inner: Arc<Inner>,
}

type AttemptOutcome = Option<Result<Arc<Connection>, ClientError>>;

struct Inner {
    instance_id: String,
    source: Arc<dyn EndpointSource>,
    identity: Arc<DeviceIdentity>,
    options: ClientOptions,
    events: broadcast::Sender<GatewayEvent>,
    state: Mutex<State>,
    /// Wakes the supervisor when the link changes or background work may be wanted.
    wake: Notify,
    stop: CancellationToken,
    supervisor_started: AtomicBool,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    link: Link,
    next_attempt: u64,
    /// Resolve with `refresh = true` before the next connect.
    refresh_endpoint: bool,
    device_token: Option<String>,
    active_calls: usize,
    last_demand: Instant,
    pairing_pending: bool,
    shut_down: bool,
}

enum Link {
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

impl GatewayClient {
    /// A client for `instance_id`; nothing connects until the first call or subscribe.
    pub fn new(
        instance_id: String,
        source: Arc<dyn EndpointSource>,
        identity: Arc<DeviceIdentity>,
        options: ClientOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(Inner {
                instance_id,
                source,
                identity,
                options,
                events: broadcast::channel(EVENT_BUFFER).0,
                state: Mutex::new(State {
                    link: Link::Idle,
                    next_attempt: 0,
                    refresh_endpoint: false,
                    device_token: None,
                    active_calls: 0,
                    last_demand: Instant::now(),
                    pairing_pending: false,
                    shut_down: false,
                }),
                wake: Notify::new(),
                stop: CancellationToken::new(),
                supervisor_started: AtomicBool::new(false),
                supervisor: Mutex::new(None),
            }),
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
        let deadline_at = Instant::now() + deadline;
        let _demand = Demand::begin(&self.inner)?;
        let connection = self.inner.connection(deadline_at).await?;
        let remaining = deadline_at.saturating_duration_since(Instant::now());
        Ok(connection.call(method, params, remaining).await?)
    }

    /// Events of the instance's gateway from now on, across reconnects. Connects first (bounded
    /// by `connect_timeout`) and fails like a call when that fails; once subscribed, the client
    /// keeps reconnecting in the background for as long as the receiver lives.
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<GatewayEvent>, ClientError> {
        let receiver = self.inner.events.subscribe();
        {
            let _demand = Demand::begin(&self.inner)?;
            let deadline_at = Instant::now() + self.inner.options.connect_timeout;
            self.inner.connection(deadline_at).await?;
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

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_supervisor(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.supervisor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ensure_supervisor(self: &Arc<Self>) {
        if self.supervisor_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let handle = tokio::spawn(supervise(self.clone()));
        *self.lock_supervisor() = Some(handle);
    }

    fn begin_shutdown(&self) -> Option<Arc<Connection>> {
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

    /// The open connection, or the outcome of one connect attempt made (or joined) now.
    async fn connection(
        self: &Arc<Self>,
        deadline_at: Instant,
    ) -> Result<Arc<Connection>, ClientError> {
        let mut outcome = {
            let mut state = self.lock_state();
            if let Link::Open { connection, .. } = &state.link
                && connection.is_open()
            {
                return Ok(connection.clone());
            }
            self.start_attempt(&mut state)
        };
        match timeout_at(deadline_at, outcome.wait_for(Option::is_some)).await {
            Err(_) => Err(ClientError::DeadlineExceeded),
            Ok(Err(_)) => Err(ClientError::Unavailable(
                "gateway connect attempt abandoned".to_owned(),
            )),
            Ok(Ok(result)) => result.clone().unwrap_or_else(|| {
                Err(ClientError::Unavailable(
                    "gateway connect attempt abandoned".to_owned(),
                ))
            }),
        }
    }

    /// Joins the attempt under way, or starts one. Must be called with the state locked.
    fn start_attempt(self: &Arc<Self>, state: &mut State) -> watch::Receiver<AttemptOutcome> {
        match &state.link {
            Link::Connecting { outcome, .. } => return outcome.clone(),
            Link::Open { connection, .. } if connection.is_open() => {
                return watch::channel(Some(Ok(connection.clone()))).1;
            }
            Link::Open { connection, .. } => {
                let connection = connection.clone();
                self.retire(state, &connection);
            }
            Link::Idle => {}
        }
        if state.shut_down {
            return watch::channel(Some(Err(ClientError::Unavailable(
                "gateway client shut down".to_owned(),
            ))))
            .1;
        }
        state.next_attempt += 1;
        let attempt = state.next_attempt;
        let (outcome_tx, outcome_rx) = watch::channel(None);
        state.link = Link::Connecting {
            attempt,
            outcome: outcome_rx.clone(),
        };
        let refresh = std::mem::take(&mut state.refresh_endpoint);
        let device_token = state.device_token.clone();
        let inner = self.clone();
        // Owned by its bounds: resolve and connect each end within `connect_timeout`.
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = inner.connect_once(attempt, refresh, device_token) => outcome,
                () = inner.stop.cancelled() => Err(ClientError::Unavailable(
                    "gateway client shut down".to_owned(),
                )),
            };
            if outcome.is_err() {
                let mut state = inner.lock_state();
                if matches!(state.link, Link::Connecting { attempt: current, .. } if current == attempt)
                {
                    state.link = Link::Idle;
                }
            }
            outcome_tx.send_replace(Some(outcome));
            inner.wake.notify_one();
        });
        outcome_rx
    }

    async fn connect_once(
        &self,
        attempt: u64,
        refresh: bool,
        device_token: Option<String>,
    ) -> Result<Arc<Connection>, ClientError> {
        let started = Instant::now();
        let budget = self.options.connect_timeout;
        let endpoint = match timeout(budget, self.source.resolve(&self.instance_id, refresh)).await
        {
            Ok(Ok(endpoint)) => endpoint,
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => {
                return Err(ClientError::Unavailable(
                    "resolving the gateway endpoint timed out".to_owned(),
                ));
            }
        };
        let options = ConnectOptions {
            url: endpoint.url.clone(),
            token: endpoint.token.clone(),
            identity: Some(self.identity.clone()),
            device_token: device_token.clone(),
            max_in_flight: self.options.max_in_flight,
            connect_timeout: budget.saturating_sub(started.elapsed()),
            extra_headers: self.options.extra_headers.clone(),
        };
        match Connection::open(&options).await {
            Ok((connection, hello)) => {
                let connection = Arc::new(connection);
                let events = connection.subscribe();
                let mut state = self.lock_state();
                let current = matches!(
                    state.link,
                    Link::Connecting { attempt: current, .. } if current == attempt
                );
                if !current || state.shut_down {
                    drop(state);
                    connection.close_now();
                    return Err(ClientError::Unavailable(
                        "gateway endpoint changed while connecting".to_owned(),
                    ));
                }
                if hello.device_token.is_some() {
                    state.device_token = hello.device_token;
                }
                state.pairing_pending = false;
                state.link = Link::Open {
                    connection: connection.clone(),
                    events: Some(events),
                };
                tracing::info!(
                    instance = %self.instance_id,
                    url = %endpoint.url,
                    revision = %endpoint.revision,
                    server_version = %hello.server_version,
                    "connected to gateway"
                );
                Ok(connection)
            }
            Err(error) => {
                let mut state = self.lock_state();
                match &error {
                    ConnectError::Auth(_) => {
                        // A rotated shared token or a revoked device token: fetch the token
                        // again and retry with the shared token alone.
                        state.refresh_endpoint = true;
                        if device_token.is_some() && state.device_token == device_token {
                            state.device_token = None;
                        }
                    }
                    ConnectError::PairingRequired { .. } => state.pairing_pending = true,
                    ConnectError::Io(_) | ConnectError::Timeout => state.refresh_endpoint = true,
                    ConnectError::Protocol(_)
                    | ConnectError::ScopesMissing { .. }
                    | ConnectError::Unavailable { .. } => {}
                }
                drop(state);
                tracing::warn!(
                    instance = %self.instance_id,
                    url = %endpoint.url,
                    %error,
                    "gateway connect failed"
                );
                Err(error.into())
            }
        }
    }

    /// Forgets a connection that has ended, learning from why it ended. Locked state.
    fn retire(&self, state: &mut State, connection: &Arc<Connection>) {
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
            reason = reason.map(|reason| reason.to_string()).unwrap_or_default(),
            "gateway connection retired"
        );
    }

    /// Background reconnects are wanted by event subscribers, and by recent callers while a
    /// pairing approval is pending.
    fn wants_background_connection(&self, state: &State) -> bool {
        if state.shut_down {
            return false;
        }
        let recent_demand =
            state.active_calls > 0 || state.last_demand.elapsed() < self.options.idle_timeout;
        self.events.receiver_count() > 0 || (state.pairing_pending && recent_demand)
    }
}

enum Step {
    Watch(Arc<Connection>, broadcast::Receiver<GatewayEvent>),
    AwaitAttempt(watch::Receiver<AttemptOutcome>),
    Reconnect,
    Rest,
}

async fn supervise(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(inner.options.backoff_initial, inner.options.backoff_max);
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
                watch_connection(&inner, connection, events).await;
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
                    inner.start_attempt(&mut state)
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

/// Forwards events and watches for the end of `connection` or its idle deadline.
async fn watch_connection(
    inner: &Arc<Inner>,
    connection: Arc<Connection>,
    mut events: broadcast::Receiver<GatewayEvent>,
) {
    let mut events_open = true;
    loop {
        let idle_deadline = {
            let state = inner.lock_state();
            let current = matches!(
                &state.link,
                Link::Open { connection: current, .. } if Arc::ptr_eq(current, &connection)
            );
            if !current {
                return;
            }
            if state.active_calls > 0 || inner.events.receiver_count() > 0 {
                Instant::now() + inner.options.idle_timeout
            } else {
                state.last_demand + inner.options.idle_timeout
            }
        };
        tokio::select! {
            _ = connection.closed() => {
                inner.retire(&mut inner.lock_state(), &connection);
                return;
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
                    return;
                }
            }
            () = inner.wake.notified() => {}
            () = inner.stop.cancelled() => return,
        }
    }
}

/// Exponential backoff with full jitter: each delay is uniform in `[0, ceiling)`, and the
/// ceiling doubles from `initial` up to `max`.
struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            ceiling: initial,
        }
    }

    fn reset(&mut self) {
        self.ceiling = self.initial;
    }

    fn next_delay(&mut self) -> Duration {
        let ceiling_nanos = u64::try_from(self.ceiling.as_nanos()).unwrap_or(u64::MAX);
        let delay = Duration::from_nanos(OsRng.next_u64() % ceiling_nanos.max(1));
        self.ceiling = (self.ceiling * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_below_a_doubling_ceiling() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let ceilings = [100, 200, 350, 350];
        for ceiling in ceilings {
            let delay = backoff.next_delay();
            assert!(
                delay < Duration::from_millis(ceiling),
                "{delay:?} >= {ceiling}ms"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() < Duration::from_millis(100));
    }

    #[test]
    fn endpoint_debug_hides_the_token() {
        let endpoint = Endpoint {
            url: "ws://10.0.0.1:18789".to_owned(),
            token: "endpoint-secret-token".to_owned(),
            revision: "7".to_owned(),
            loopback: false,
        };
        let printed = format!("{endpoint:?}");
        assert!(!printed.contains("endpoint-secret-token"), "{printed}");
        assert!(printed.contains("10.0.0.1"));
    }

    struct Missing;

    #[tonic::async_trait]
    impl EndpointSource for Missing {
        async fn resolve(&self, instance_id: &str, _: bool) -> Result<Endpoint, ResolveError> {
            Err(ResolveError::NotFound(instance_id.to_owned()))
        }
    }

    struct Unreachable;

    #[tonic::async_trait]
    impl EndpointSource for Unreachable {
        async fn resolve(&self, _: &str, _: bool) -> Result<Endpoint, ResolveError> {
            // A port nothing listens on: connect fails fast with connection refused.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            drop(listener);
            Ok(Endpoint {
                url: format!("ws://127.0.0.1:{port}"),
                token: "t".to_owned(),
                revision: "1".to_owned(),
                loopback: true,
            })
        }
    }

    fn client(source: Arc<dyn EndpointSource>) -> Arc<GatewayClient> {
        GatewayClient::new(
            "alice".to_owned(),
            source,
            Arc::new(DeviceIdentity::generate()),
            ClientOptions {
                backoff_max: Duration::from_secs(60),
                ..ClientOptions::default()
            },
        )
    }

    #[tokio::test]
    async fn an_unknown_instance_is_not_found() {
        let client = client(Arc::new(Missing));
        let error = client
            .call("health", Value::Null, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::NotFound(ref id) if id == "alice"),
            "{error:?}"
        );
        client.shutdown().await;
    }

    #[tokio::test]
    async fn a_call_to_an_unreachable_gateway_fails_fast_even_with_subscribers_backing_off() {
        let client = client(Arc::new(Unreachable));
        assert!(matches!(
            client.subscribe().await.unwrap_err(),
            ClientError::Unavailable(_)
        ));
        for _ in 0..3 {
            let started = Instant::now();
            let error = client
                .call("health", Value::Null, Duration::from_secs(5))
                .await
                .unwrap_err();
            assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        client.shutdown().await;
        let error = client
            .call("health", Value::Null, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::Unavailable(ref message) if message.contains("shut down"))
        );
    }

    use serde_json::json;

    use crate::fake_gateway::{FakeGateway, Script};

    /// Answers with a settable endpoint and records the `refresh` flag of every resolve.
    struct RecordingSource {
        endpoint: Mutex<Endpoint>,
        refreshes: Mutex<Vec<bool>>,
        delay: Duration,
    }

    impl RecordingSource {
        fn new(fake: &FakeGateway) -> Arc<Self> {
            Arc::new(Self {
                endpoint: Mutex::new(Endpoint {
                    url: fake.url.clone(),
                    token: "fake-token".to_owned(),
                    revision: "1".to_owned(),
                    loopback: true,
                }),
                refreshes: Mutex::new(Vec::new()),
                delay: Duration::from_millis(50),
            })
        }

        fn refreshes(&self) -> Vec<bool> {
            self.refreshes.lock().unwrap().clone()
        }
    }

    #[tonic::async_trait]
    impl EndpointSource for RecordingSource {
        async fn resolve(&self, _: &str, refresh: bool) -> Result<Endpoint, ResolveError> {
            self.refreshes.lock().unwrap().push(refresh);
            sleep(self.delay).await;
            Ok(self.endpoint.lock().unwrap().clone())
        }
    }

    fn fast_options() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            ..ClientOptions::default()
        }
    }

    fn client_of(source: Arc<RecordingSource>, options: ClientOptions) -> Arc<GatewayClient> {
        GatewayClient::new(
            "alice".to_owned(),
            source,
            Arc::new(DeviceIdentity::generate()),
            options,
        )
    }

    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let started = Instant::now();
        while !condition() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "timed out waiting for {what}"
            );
            sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn concurrent_first_calls_share_one_connect_attempt() {
        let fake = FakeGateway::start(Script::default()).await;
        let source = RecordingSource::new(&fake);
        let client = client_of(source.clone(), fast_options());
        let calls = (0..20).map(|n| client.call("echo", json!({"n": n}), Duration::from_secs(5)));
        for (n, result) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(result.unwrap()["params"]["n"], n);
        }
        assert_eq!(source.refreshes(), [false]);
        assert_eq!(fake.connects().len(), 1);
        client.shutdown().await;
    }

    #[tokio::test]
    async fn the_granted_device_token_is_sent_on_the_next_connect() {
        let fake = FakeGateway::start(Script {
            device_token: Some("granted-device-token".to_owned()),
            ..Script::default()
        })
        .await;
        let client = client_of(RecordingSource::new(&fake), fast_options());
        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        fake.close_all(1012, "service restart");
        eventually("the close to be seen", || !client.is_connected()).await;
        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        let connects = fake.connects();
        assert_eq!(connects.len(), 2);
        assert_eq!(connects[0]["auth"], json!({"token": "fake-token"}));
        assert_eq!(
            connects[1]["auth"],
            json!({"token": "fake-token", "deviceToken": "granted-device-token"})
        );
        client.shutdown().await;
    }

    #[tokio::test]
    async fn a_rotated_token_close_resolves_afresh_and_reconnects_with_the_new_token() {
        let fake = FakeGateway::start(Script::default()).await;
        let source = RecordingSource::new(&fake);
        let client = client_of(source.clone(), fast_options());
        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();

        fake.set_script(Script {
            token: "rotated-token".to_owned(),
            ..Script::default()
        });
        source.endpoint.lock().unwrap().token = "rotated-token".to_owned();
        fake.close_all(4001, "gateway auth changed");
        eventually("the close to be seen", || !client.is_connected()).await;

        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(source.refreshes(), [false, true]);
        assert_eq!(fake.connects()[1]["auth"]["token"], "rotated-token");
        client.shutdown().await;
    }

    #[tokio::test]
    async fn a_refused_token_is_an_auth_error_and_the_next_attempt_refreshes() {
        let fake = FakeGateway::start(Script::default()).await;
        let source = RecordingSource::new(&fake);
        source.endpoint.lock().unwrap().token = "stale-token".to_owned();
        let client = client_of(source.clone(), fast_options());
        let error = client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Auth(_)), "{error:?}");
        source.endpoint.lock().unwrap().token = "fake-token".to_owned();
        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(source.refreshes(), [false, true]);
        client.shutdown().await;
    }

    #[tokio::test]
    async fn invalidate_drops_the_connection_and_resolves_afresh() {
        let fake = FakeGateway::start(Script::default()).await;
        let source = RecordingSource::new(&fake);
        let client = client_of(source.clone(), fast_options());
        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(client.is_connected());
        client.invalidate();
        assert!(!client.is_connected());
        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(source.refreshes(), [false, true]);
        assert_eq!(fake.connects().len(), 2);
        client.shutdown().await;
    }

    #[tokio::test]
    async fn a_call_in_flight_fails_at_once_when_the_connection_drops() {
        let fake = FakeGateway::start(Script {
            answer: false,
            ..Script::default()
        })
        .await;
        let client = client_of(RecordingSource::new(&fake), fast_options());
        let pending = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .call("echo", json!({}), Duration::from_secs(30))
                    .await
            }
        });
        eventually("the connection", || client.is_connected()).await;
        sleep(Duration::from_millis(50)).await;
        let dropped_at = Instant::now();
        fake.abort_all();
        let error = timeout(Duration::from_secs(2), pending)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
        assert!(dropped_at.elapsed() < Duration::from_millis(500));
        client.shutdown().await;
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_reopened_on_next_use() {
        let fake = FakeGateway::start(Script::default()).await;
        let client = client_of(
            RecordingSource::new(&fake),
            ClientOptions {
                idle_timeout: Duration::from_millis(200),
                ..fast_options()
            },
        );
        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(client.is_connected());
        eventually("the idle close", || !client.is_connected()).await;
        client
            .call("echo", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(fake.connects().len(), 2);
        client.shutdown().await;
    }

    #[tokio::test]
    async fn subscribers_keep_receiving_events_across_reconnects() {
        let fake = FakeGateway::start(Script::default()).await;
        let client = client_of(
            RecordingSource::new(&fake),
            ClientOptions {
                idle_timeout: Duration::from_millis(100),
                ..fast_options()
            },
        );
        let mut events = client.subscribe().await.unwrap();
        fake.emit("config.changed", json!({"generation": 1}));
        assert_eq!(
            events.recv().await.unwrap().payload,
            json!({"generation": 1})
        );

        fake.abort_all();
        eventually("the drop", || !client.is_connected()).await;
        // Nobody calls: the subscriber alone makes the client reconnect, and a subscribed
        // client is never idle-closed.
        eventually("the background reconnect", || client.is_connected()).await;
        sleep(Duration::from_millis(300)).await;
        assert!(client.is_connected());
        fake.emit("config.changed", json!({"generation": 2}));
        assert_eq!(
            events.recv().await.unwrap().payload,
            json!({"generation": 2})
        );
        assert_eq!(fake.connects().len(), 2);

        drop(events);
        eventually("the idle close", || !client.is_connected()).await;
        client.shutdown().await;
    }
}
