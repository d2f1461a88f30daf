//! One authenticated WebSocket to one gateway, multiplexing many requests.
//!
//! After the handshake the socket is split between two owned tasks: a writer fed by a bounded
//! queue (it batches whatever is queued into one flush) and a reader that routes each `res` to
//! the oneshot of its request id and each `event` to a broadcast channel. When either side ends,
//! every pending call fails at once and [`Connection::closed`] resolves.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use rand_core::{OsRng, RngCore};
use serde_json::Value;
use tokio::{
    net::TcpStream,
    sync::{Semaphore, TryAcquireError, broadcast, mpsc, oneshot, watch},
    task::JoinHandle,
    time::{Instant, sleep_until, timeout, timeout_at},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_tls_with_config,
    tungstenite::{
        self, Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue},
        protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
    },
};
use tokio_util::sync::CancellationToken;

pub use crate::protocol::GatewayEvent;
use crate::{
    device_identity::{DeviceAuthClaims, DeviceIdentity},
    protocol::{
        CHALLENGE_EVENT, CLIENT_ID, CLIENT_MODE, CLIENT_PLATFORM, ConnectAuth, ConnectChallenge,
        ConnectParams, Frame, GatewayError, HelloOk, OPERATOR_ROLE, REQUIRED_SCOPES, RequestFrame,
    },
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = Result<Value, GatewayError>;

/// Events buffered per subscriber before a slow one starts losing the oldest.
const EVENT_BUFFER: usize = 1024;
/// Frames beyond the in-flight bound that may queue for the writer (close, stray extras).
const WRITER_SLACK: usize = 16;
/// Requests this connection keeps on the wire at once; calls beyond it (up to
/// `max_in_flight`) wait here. The gateway admits at most 256 not-yet-started operator
/// requests process-wide and turns the rest away as busy, so one connection stays well below.
const WIRE_WINDOW: usize = 128;
/// How long a graceful close waits for the close frame to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The request id of `connect` (calls use numeric ids, so it cannot collide).
const CONNECT_REQUEST_ID: &str = "connect";

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

/// Why opening a connection failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP, TLS or WebSocket failure, or the socket closed during the handshake.
    #[error("gateway connection failed: {0}")]
    Io(String),
    /// The handshake did not finish within `connect_timeout`.
    #[error("gateway handshake timed out")]
    Timeout,
    /// The gateway spoke something other than the expected protocol.
    #[error("gateway protocol error: {0}")]
    Protocol(String),
    /// The gateway refused the credentials (it then closes with 1008).
    #[error("gateway refused the connection: {0}")]
    Auth(GatewayError),
    /// The device is waiting for approval of this pairing request.
    #[error("device {device_id} is not paired yet (pairing request {request_id})")]
    PairingRequired {
        /// The pending pairing request to approve with `device.pair.approve`.
        request_id: String,
        /// The device id the gateway saw.
        device_id: String,
    },
    /// The handshake succeeded without some required scopes.
    #[error("gateway did not grant scopes: {}", missing.join(", "))]
    ScopesMissing {
        /// The entries of `REQUIRED_SCOPES` that were not granted.
        missing: Vec<String>,
    },
    /// The gateway is not ready to accept operators yet (e.g. startup sidecars still run).
    #[error("gateway unavailable: {message}")]
    Unavailable {
        /// The gateway's message.
        message: String,
        /// When the gateway suggests trying again.
        retry_after: Option<Duration>,
    },
}

/// Why a call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CallError {
    /// The gateway answered with an error.
    #[error("gateway error {0}")]
    Gateway(GatewayError),
    /// The connection was lost or is not open.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
    /// No response within the call's deadline.
    #[error("gateway call deadline exceeded")]
    DeadlineExceeded,
    /// `max_in_flight` requests are already pending on this connection.
    #[error("too many gateway calls in flight")]
    Overloaded,
    /// The request frame exceeds the gateway's `maxPayload`.
    #[error("gateway request exceeds the gateway's maximum payload")]
    PayloadTooLarge,
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The gateway closed the socket (1008 policy, 1012 restart, 4001 auth changed, ...).
    #[error("closed by gateway ({code}: {reason})")]
    Remote {
        /// WebSocket close code.
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// No frame for longer than twice the gateway's tick interval.
    #[error("gateway went silent for longer than two tick intervals")]
    TickTimeout,
    /// The socket failed or ended without a close frame.
    #[error("gateway connection lost: {0}")]
    Io(String),
    /// Closed by this side.
    #[error("closed locally")]
    Local,
}

/// One authenticated WebSocket to one gateway. Share it through an `Arc`; dropping the last
/// owner closes the socket and stops its tasks.
pub struct Connection {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    outbound: mpsc::Sender<Message>,
    pending: Mutex<Pending>,
    in_flight: Semaphore,
    wire: Semaphore,
    events: broadcast::Sender<GatewayEvent>,
    closed: watch::Sender<Option<CloseReason>>,
    cancel: CancellationToken,
    next_id: AtomicU64,
    max_payload: usize,
}

#[derive(Default)]
struct Pending {
    /// Set once; afterwards no call may register.
    closed: Option<CloseReason>,
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
}

impl Connection {
    /// Connects, answers the challenge, authenticates and checks the granted scopes.
    pub async fn open(options: &ConnectOptions) -> Result<(Connection, HelloOk), ConnectError> {
        timeout(options.connect_timeout, Self::open_within_deadline(options))
            .await
            .map_err(|_| ConnectError::Timeout)?
    }

    async fn open_within_deadline(
        options: &ConnectOptions,
    ) -> Result<(Connection, HelloOk), ConnectError> {
        let mut socket = dial(options).await?;
        let hello = match handshake(&mut socket, options).await {
            Ok(hello) => hello,
            Err(error) => {
                let _ = timeout(CLOSE_GRACE, socket.close(None)).await;
                return Err(error);
            }
        };
        let missing = hello.missing_scopes();
        if !missing.is_empty() {
            let _ = timeout(CLOSE_GRACE, socket.close(None)).await;
            return Err(ConnectError::ScopesMissing { missing });
        }
        Ok((Self::start(socket, &hello, options.max_in_flight), hello))
    }

    fn start(socket: Socket, hello: &HelloOk, max_in_flight: usize) -> Connection {
        let max_in_flight = max_in_flight.max(1);
        let (outbound, outbound_rx) = mpsc::channel(max_in_flight + WRITER_SLACK);
        let shared = Arc::new(Shared {
            outbound,
            pending: Mutex::new(Pending::default()),
            in_flight: Semaphore::new(max_in_flight),
            wire: Semaphore::new(max_in_flight.min(WIRE_WINDOW)),
            events: broadcast::channel(EVENT_BUFFER).0,
            closed: watch::Sender::new(None),
            cancel: CancellationToken::new(),
            next_id: AtomicU64::new(1),
            max_payload: hello.max_payload,
        });
        let (sink, stream) = socket.split();
        let silence_limit = hello.tick_interval * 2;
        tokio::spawn(read_frames(shared.clone(), stream, silence_limit));
        let writer = tokio::spawn(write_frames(shared.clone(), sink, outbound_rx));
        Connection {
            shared,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Sends one request and waits for its response, at most `timeout`.
    ///
    /// Beyond `max_in_flight` pending calls it fails at once with `Overloaded`; beyond the wire
    /// window it waits (within `timeout`) for an earlier request to be answered. A request the gateway turns away before dispatch because its operator queue is full
    /// ([`GatewayError::is_busy`]) was never executed, so it is sent again after a short jittered
    /// pause until it is admitted or the deadline passes.
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
        let mut busy_retries = 0u32;
        loop {
            match self.exchange(method, &params, deadline).await {
                Err(CallError::Gateway(error)) if error.is_busy() => {
                    let pause = busy_pause(busy_retries);
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

    /// A receiver of every event the gateway sends on this connection from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.shared.events.subscribe()
    }

    /// Resolves once the connection has ended, with the reason.
    pub async fn closed(&self) -> CloseReason {
        let mut closed = self.shared.closed.subscribe();
        match closed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or(CloseReason::Local),
            // Unreachable while `self` holds the sender; treat as a local close.
            Err(_) => CloseReason::Local,
        }
    }

    /// The reason the connection ended, or `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.closed.borrow().clone()
    }

    /// Whether the connection can still carry calls.
    pub fn is_open(&self) -> bool {
        !self.shared.cancel.is_cancelled()
    }

    /// Closes gracefully: pending calls fail with `Unavailable`, a close frame is sent.
    pub async fn close(&self) {
        self.shared.finish(CloseReason::Local);
        let writer = self.lock_writer().take();
        if let Some(writer) = writer {
            let _ = timeout(CLOSE_GRACE * 2, writer).await;
        }
    }

    #[cfg(test)]
    fn pending_calls(&self) -> usize {
        self.shared.lock_pending().waiters.len()
    }

    /// Starts closing without waiting for the close frame to go out.
    pub(crate) fn close_now(&self) {
        self.shared.finish(CloseReason::Local);
    }

    fn lock_writer(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.finish(CloseReason::Local);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Connection")
            .field("open", &self.is_open())
            .field("close_reason", &self.close_reason())
            .finish_non_exhaustive()
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

impl Shared {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the connection once: records the reason, fails every pending call, stops the tasks.
    fn finish(&self, reason: CloseReason) {
        let waiters = {
            let mut pending = self.lock_pending();
            if pending.closed.is_some() {
                return;
            }
            pending.closed = Some(reason.clone());
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

    fn close_description(&self) -> String {
        self.lock_pending()
            .closed
            .as_ref()
            .map_or_else(|| "connection closed".to_owned(), ToString::to_string)
    }

    fn route_text(&self, text: &str) {
        match Frame::parse(text) {
            Ok(Frame::Response(response)) => {
                let waiter = response
                    .id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| self.lock_pending().waiters.remove(&id));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(response.result);
                    }
                    None => tracing::debug!(id = %response.id, "response for no pending call"),
                }
            }
            Ok(Frame::Event(event)) => {
                // No subscribers is fine: events are best effort.
                let _ = self.events.send(event);
            }
            Ok(Frame::Other) => {}
            Err(error) => tracing::warn!(%error, "ignoring gateway frame"),
        }
    }
}

async fn read_frames(
    shared: Arc<Shared>,
    mut stream: SplitStream<Socket>,
    silence_limit: Duration,
) {
    let mut last_frame = Instant::now();
    let watchdog = sleep_until(last_frame + silence_limit);
    tokio::pin!(watchdog);
    let reason = loop {
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            frame = stream.next() => {
                last_frame = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => shared.route_text(text.as_str()),
                    Some(Ok(Message::Close(frame))) => break remote_close(frame),
                    // Pings are answered by tungstenite itself; any frame proves liveness.
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break CloseReason::Io(error.to_string()),
                    None => break CloseReason::Io("socket ended without a close frame".to_owned()),
                }
            }
            () = &mut watchdog => {
                let silent_until = last_frame + silence_limit;
                if Instant::now() >= silent_until {
                    break CloseReason::TickTimeout;
                }
                watchdog.as_mut().reset(silent_until);
            }
        }
    };
    shared.finish(reason);
}

async fn write_frames(
    shared: Arc<Shared>,
    mut sink: SplitSink<Socket, Message>,
    mut outbound: mpsc::Receiver<Message>,
) {
    loop {
        let first = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => break,
            message = outbound.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        // Everything already queued goes out with one flush.
        let mut written = sink.feed(first).await;
        while written.is_ok() {
            match outbound.try_recv() {
                Ok(message) => written = sink.feed(message).await,
                Err(_) => break,
            }
        }
        if let Err(error) = written.and(sink.flush().await) {
            shared.finish(CloseReason::Io(error.to_string()));
            return;
        }
    }
    let close = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }));
    let _ = timeout(CLOSE_GRACE, async {
        sink.send(close).await?;
        sink.close().await
    })
    .await;
}

/// Pause before resending a request the gateway was too busy to admit: uniform in
/// `[1 ms, min(100 ms, 5 ms × 2^retries)]`, so a burst spreads out instead of returning at once.
fn busy_pause(retries: u32) -> Duration {
    let ceiling_ms = 5u64.saturating_mul(1 << retries.min(5)).min(100);
    Duration::from_millis(1 + OsRng.next_u64() % ceiling_ms)
}

fn remote_close(frame: Option<CloseFrame>) -> CloseReason {
    match frame {
        Some(frame) => CloseReason::Remote {
            code: frame.code.into(),
            reason: frame.reason.to_string(),
        },
        None => CloseReason::Remote {
            code: u16::from(CloseCode::Status),
            reason: String::new(),
        },
    }
}

async fn dial(options: &ConnectOptions) -> Result<Socket, ConnectError> {
    let mut request = options
        .url
        .as_str()
        .into_client_request()
        .map_err(|error| ConnectError::Protocol(format!("invalid gateway url: {error}")))?;
    for (name, value) in &options.extra_headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConnectError::Protocol(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| ConnectError::Protocol(format!("invalid value for header {name}")))?;
        request.headers_mut().append(name, value);
    }
    let config = WebSocketConfig::default();
    let (socket, _response) = connect_async_tls_with_config(request, Some(config), true, None)
        .await
        .map_err(|error| match error {
            tungstenite::Error::Http(response) => ConnectError::Protocol(format!(
                "websocket upgrade refused with http {}",
                response.status()
            )),
            tungstenite::Error::Url(error) => {
                ConnectError::Protocol(format!("invalid gateway url: {error}"))
            }
            other => ConnectError::Io(other.to_string()),
        })?;
    Ok(socket)
}

/// Waits for the challenge, sends `connect` and reads its response.
async fn handshake(socket: &mut Socket, options: &ConnectOptions) -> Result<HelloOk, ConnectError> {
    let challenge = loop {
        let text = next_text(socket).await?;
        if let Frame::Event(event) = parse_handshake_frame(&text)?
            && event.event == CHALLENGE_EVENT
        {
            break serde_json::from_value::<ConnectChallenge>(event.payload).map_err(|error| {
                ConnectError::Protocol(format!("malformed connect.challenge: {error}"))
            })?;
        }
    };

    let auth = ConnectAuth::new(&options.token, options.device_token.as_deref());
    let device = options.identity.as_ref().map(|identity| {
        identity.sign_connect(&DeviceAuthClaims {
            client_id: CLIENT_ID,
            client_mode: CLIENT_MODE,
            role: OPERATOR_ROLE,
            scopes: REQUIRED_SCOPES,
            signed_at_ms: challenge.ts,
            token: auth.signed_token(),
            nonce: &challenge.nonce,
            platform: CLIENT_PLATFORM,
            device_family: "",
        })
    });
    let params = serde_json::to_value(ConnectParams::new(auth, device))
        .map_err(|error| ConnectError::Protocol(format!("cannot encode connect: {error}")))?;
    let frame =
        serde_json::to_string(&RequestFrame::new(CONNECT_REQUEST_ID, "connect", &params))
            .map_err(|error| ConnectError::Protocol(format!("cannot encode connect: {error}")))?;
    drop(params);
    socket
        .send(Message::text(frame))
        .await
        .map_err(|error| ConnectError::Io(error.to_string()))?;

    loop {
        let text = next_text(socket).await?;
        let Frame::Response(response) = parse_handshake_frame(&text)? else {
            continue;
        };
        if response.id != CONNECT_REQUEST_ID {
            continue;
        }
        return match response.result {
            Ok(payload) => {
                HelloOk::from_payload(&payload).map_err(|error| ConnectError::Protocol(error.0))
            }
            Err(error) => Err(classify_connect_error(error)),
        };
    }
}

fn parse_handshake_frame(text: &str) -> Result<Frame<'_>, ConnectError> {
    Frame::parse(text).map_err(|error| ConnectError::Protocol(error.to_string()))
}

/// The next text frame of the handshake; a close here is the gateway refusing us.
async fn next_text(socket: &mut Socket) -> Result<String, ConnectError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                let reason = remote_close(frame);
                return Err(match reason {
                    CloseReason::Remote { code: 1008, reason } => {
                        ConnectError::Auth(GatewayError {
                            code: "POLICY_VIOLATION".to_owned(),
                            message: reason,
                            details: None,
                            retryable: false,
                            retry_after_ms: None,
                        })
                    }
                    other => ConnectError::Io(format!("closed during handshake: {other}")),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(ConnectError::Io(error.to_string())),
            None => {
                return Err(ConnectError::Io(
                    "socket ended during the handshake".to_owned(),
                ));
            }
        }
    }
}

fn classify_connect_error(error: GatewayError) -> ConnectError {
    if error.code == "NOT_PAIRED" && error.detail_code() == Some("PAIRING_REQUIRED") {
        return ConnectError::PairingRequired {
            request_id: error.detail_str("requestId").unwrap_or_default().to_owned(),
            device_id: error.detail_str("deviceId").unwrap_or_default().to_owned(),
        };
    }
    if error.code == "UNAVAILABLE" {
        return ConnectError::Unavailable {
            retry_after: error.retry_after_ms.map(Duration::from_millis),
            message: error.message,
        };
    }
    ConnectError::Auth(error)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn gateway_error(value: Value) -> GatewayError {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pairing_required_carries_the_request_id() {
        let error = gateway_error(json!({
            "code": "NOT_PAIRED",
            "message": "pairing required: device is not approved yet",
            "details": {"code": "PAIRING_REQUIRED", "reason": "not-paired",
                        "requestId": "a3a2352f", "deviceId": "fbb9"}
        }));
        match classify_connect_error(error) {
            ConnectError::PairingRequired {
                request_id,
                device_id,
            } => {
                assert_eq!(request_id, "a3a2352f");
                assert_eq!(device_id, "fbb9");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn startup_sidecars_are_unavailable_with_retry_after() {
        let error = gateway_error(json!({
            "code": "UNAVAILABLE", "message": "starting",
            "details": {"reason": "startup-sidecars"}, "retryable": true, "retryAfterMs": 500
        }));
        match classify_connect_error(error) {
            ConnectError::Unavailable {
                message,
                retry_after,
            } => {
                assert_eq!(message, "starting");
                assert_eq!(retry_after, Some(Duration::from_millis(500)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn token_mismatch_is_an_auth_error() {
        let error = gateway_error(json!({
            "code": "INVALID_REQUEST",
            "message": "unauthorized: gateway token mismatch (provide gateway auth token)",
            "details": {"code": "AUTH_TOKEN_MISMATCH"}
        }));
        assert!(matches!(
            classify_connect_error(error),
            ConnectError::Auth(error) if error.detail_code() == Some("AUTH_TOKEN_MISMATCH")
        ));
    }

    #[test]
    fn connect_options_debug_hides_both_tokens() {
        let options = ConnectOptions {
            url: "ws://127.0.0.1:1".to_owned(),
            token: "shared-secret-token".to_owned(),
            identity: Some(Arc::new(DeviceIdentity::generate())),
            device_token: Some("device-secret-token".to_owned()),
            max_in_flight: 4,
            connect_timeout: Duration::from_secs(1),
            extra_headers: vec![],
        };
        let printed = format!("{options:?}");
        assert!(!printed.contains("shared-secret-token"), "{printed}");
        assert!(!printed.contains("device-secret-token"), "{printed}");
        assert!(printed.contains("127.0.0.1"));
    }

    use crate::fake_gateway::{FakeGateway, Script};

    fn options_for(fake: &FakeGateway) -> ConnectOptions {
        ConnectOptions {
            url: fake.url.clone(),
            token: "fake-token".to_owned(),
            identity: Some(Arc::new(DeviceIdentity::generate())),
            device_token: None,
            max_in_flight: 8,
            connect_timeout: Duration::from_secs(5),
            extra_headers: vec![],
        }
    }

    async fn open(fake: &FakeGateway) -> Connection {
        Connection::open(&options_for(fake)).await.unwrap().0
    }

    #[tokio::test]
    async fn connect_sends_the_signed_device_for_the_challenge() {
        let fake = FakeGateway::start(Script::default()).await;
        let options = options_for(&fake);
        let (_connection, hello) = Connection::open(&options).await.unwrap();
        assert_eq!(hello.server_version, "fake");
        let connect = &fake.connects()[0];
        assert_eq!(connect["auth"], json!({"token": "fake-token"}));
        assert_eq!(connect["client"]["id"], "gateway-client");
        let identity = options.identity.as_ref().unwrap();
        assert_eq!(connect["device"]["id"], identity.device_id());
        assert_eq!(connect["device"]["publicKey"], identity.public_key());
        assert_eq!(connect["device"]["nonce"], "fake-nonce");
        assert_eq!(connect["device"]["signedAt"], 1_700_000_000_000u64);
    }

    #[tokio::test]
    async fn responses_out_of_order_reach_their_own_callers() {
        let fake = FakeGateway::start(Script::default()).await;
        let connection = open(&fake).await;
        let slow = connection.call(
            "echo",
            json!({"n": 1, "delayMs": 300}),
            Duration::from_secs(5),
        );
        let fast = async {
            let result = connection
                .call("echo", json!({"n": 2}), Duration::from_secs(5))
                .await;
            (result, Instant::now())
        };
        let (slow, (fast, fast_done)) = tokio::join!(slow, fast);
        let slow_done = Instant::now();
        assert_eq!(slow.unwrap()["params"]["n"], 1);
        assert_eq!(fast.unwrap()["params"]["n"], 2);
        assert!(fast_done + Duration::from_millis(200) < slow_done);
    }

    #[tokio::test]
    async fn an_expired_deadline_removes_the_pending_call() {
        let fake = FakeGateway::start(Script {
            answer: false,
            ..Script::default()
        })
        .await;
        let connection = open(&fake).await;
        let started = Instant::now();
        let error = connection
            .call("echo", json!({}), Duration::from_millis(150))
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::DeadlineExceeded), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(connection.pending_calls(), 0);
    }

    #[tokio::test]
    async fn calls_beyond_the_in_flight_bound_are_overloaded_at_once() {
        let fake = FakeGateway::start(Script {
            answer: false,
            ..Script::default()
        })
        .await;
        let connection = Arc::new(
            Connection::open(&ConnectOptions {
                max_in_flight: 2,
                ..options_for(&fake)
            })
            .await
            .unwrap()
            .0,
        );
        let hanging: Vec<_> = (0..2)
            .map(|_| {
                let connection = connection.clone();
                tokio::spawn(async move {
                    connection
                        .call("echo", json!({}), Duration::from_secs(30))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let error = connection
            .call("echo", json!({}), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::Overloaded), "{error:?}");
        connection.close().await;
        for call in hanging {
            let error = call.await.unwrap().unwrap_err();
            assert!(matches!(error, CallError::Unavailable(_)), "{error:?}");
        }
    }

    #[tokio::test]
    async fn a_burst_beyond_the_wire_window_waits_instead_of_flooding_the_gateway() {
        let fake = FakeGateway::start(Script::default()).await;
        let connection = Connection::open(&ConnectOptions {
            max_in_flight: 400,
            ..options_for(&fake)
        })
        .await
        .unwrap()
        .0;
        let calls = (0..400).map(|n| {
            connection.call(
                "echo",
                json!({"n": n, "delayMs": 20}),
                Duration::from_secs(10),
            )
        });
        let results = futures_util::future::join_all(calls).await;
        for (n, result) in results.into_iter().enumerate() {
            assert_eq!(result.unwrap()["params"]["n"], n);
        }
        let most = fake.most_outstanding();
        assert!(
            (WIRE_WINDOW / 2..=WIRE_WINDOW).contains(&most),
            "{most} on the wire at once"
        );
    }

    #[tokio::test]
    async fn a_request_above_max_payload_is_refused_before_sending() {
        let fake = FakeGateway::start(Script {
            max_payload: 200,
            ..Script::default()
        })
        .await;
        let connection = open(&fake).await;
        let error = connection
            .call(
                "echo",
                json!({"blob": "x".repeat(300)}),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::PayloadTooLarge), "{error:?}");
        connection
            .call("echo", json!({"small": true}), Duration::from_secs(5))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_busy_gateway_is_asked_again_until_it_admits_the_request() {
        let fake = FakeGateway::start(Script {
            busy_rejections: 3,
            ..Script::default()
        })
        .await;
        let connection = open(&fake).await;
        let admitted = connection
            .call("busy", json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(admitted, json!({"admitted": true}));
    }

    #[tokio::test]
    async fn silence_beyond_two_ticks_closes_with_tick_timeout_and_fails_pending_calls() {
        let fake = FakeGateway::start(Script {
            tick_interval_ms: 100,
            answer: false,
            ..Script::default()
        })
        .await;
        let connection = open(&fake).await;
        let started = Instant::now();
        let error = connection
            .call("echo", json!({}), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::Unavailable(_)), "{error:?}");
        assert_eq!(connection.closed().await, CloseReason::TickTimeout);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
        assert!(!connection.is_open());
    }

    #[tokio::test]
    async fn events_and_pings_count_as_liveness() {
        let fake = FakeGateway::start(Script {
            tick_interval_ms: 150,
            ..Script::default()
        })
        .await;
        let connection = open(&fake).await;
        let mut events = connection.subscribe();
        for round in 0..6 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if round % 2 == 0 {
                fake.emit("tick", json!({"round": round}));
            } else {
                fake.ping_all();
            }
        }
        assert!(connection.is_open(), "{:?}", connection.close_reason());
        assert!(fake.pong_seen(), "the ping was not answered");
        let first = events.recv().await.unwrap();
        assert_eq!(first.event, "tick");
        assert_eq!(first.payload, json!({"round": 0}));
    }

    #[tokio::test]
    async fn a_remote_close_ends_every_waiter_with_its_code() {
        let fake = FakeGateway::start(Script {
            answer: false,
            ..Script::default()
        })
        .await;
        let connection = Arc::new(open(&fake).await);
        let pending = tokio::spawn({
            let connection = connection.clone();
            async move {
                connection
                    .call("echo", json!({}), Duration::from_secs(30))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        fake.close_all(4001, "gateway auth changed");
        let expected = CloseReason::Remote {
            code: 4001,
            reason: "gateway auth changed".to_owned(),
        };
        let waiters = futures_util::future::join3(
            connection.closed(),
            connection.closed(),
            timeout(Duration::from_secs(2), pending),
        )
        .await;
        assert_eq!(waiters.0, expected);
        assert_eq!(waiters.1, expected);
        let error = waiters.2.unwrap().unwrap().unwrap_err();
        assert!(
            matches!(&error, CallError::Unavailable(message) if message.contains("4001")),
            "{error:?}"
        );
        let error = connection
            .call("echo", json!({}), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(error, CallError::Unavailable(_)), "{error:?}");
    }

    #[tokio::test]
    async fn a_wrong_token_and_short_scopes_are_refused() {
        let fake = FakeGateway::start(Script::default()).await;
        let error = Connection::open(&ConnectOptions {
            token: "wrong".to_owned(),
            ..options_for(&fake)
        })
        .await
        .unwrap_err();
        assert!(
            matches!(error, ConnectError::Auth(ref error) if error.code == "INVALID_REQUEST"),
            "{error:?}"
        );

        fake.set_script(Script {
            scopes: vec!["operator.read".to_owned(), "operator.admin".to_owned()],
            ..Script::default()
        });
        let error = Connection::open(&options_for(&fake)).await.unwrap_err();
        match error {
            ConnectError::ScopesMissing { missing } => assert_eq!(
                missing,
                ["operator.write", "operator.pairing", "operator.approvals"]
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_the_handshake_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let _server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            // Upgrade, then never send the challenge.
            let _socket = tokio_tungstenite::accept_async(stream).await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let error = Connection::open(&ConnectOptions {
            url,
            token: "t".to_owned(),
            identity: None,
            device_token: None,
            max_in_flight: 1,
            connect_timeout: Duration::from_millis(300),
            extra_headers: vec![],
        })
        .await
        .unwrap_err();
        assert!(matches!(error, ConnectError::Timeout), "{error:?}");
    }
}
