//! One authenticated WebSocket to one gateway, multiplexing many requests.
//!
//! After the handshake the socket is split between two owned tasks: a writer fed by a bounded
//! queue (it batches whatever is queued into one flush) and a reader that routes each `res` to
//! the oneshot of its request id and each `event` to a broadcast channel. When either side ends,
//! every pending call fails at once and [`Connection::closed`] resolves.

mod call; // one request/response round trip, bounded and resent while the gateway is busy
mod errors; // why opening, a call or the connection failed
mod frames; // frame I/O: the reader and the writer tasks
mod handshake; // dial, challenge, signed `connect`, `hello-ok`
mod limits; // what one gateway may send: message cap, parsing off the workers, a budget a second
mod options; // how to reach and authenticate with one gateway
mod shared; // pending requests and the one place a connection ends

use std::{
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures_util::StreamExt;
use tokio::{
    net::TcpStream,
    sync::{broadcast, mpsc},
    task::JoinHandle,
    time::timeout,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument;

pub use self::{
    errors::{CallError, CloseReason, ConnectError},
    limits::{
        BYTES_PER_SECOND, MAX_MESSAGE_BYTES, STRAINED_SECONDS_LIMIT, UNSOLICITED_FRAMES_PER_SECOND,
    },
    options::ConnectOptions,
};
use self::{
    frames::{read_frames, write_frames},
    handshake::{dial, handshake},
    shared::Shared,
};
pub use crate::protocol::GatewayEvent;
use crate::protocol::HelloOk;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// One authenticated WebSocket to one gateway. Share it through an `Arc`; dropping the last
/// owner closes the socket and stops its tasks.
pub struct Connection {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
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
        let mut socket = dial(options)
            .instrument(tracing::info_span!(
                "gateway.dial",
                otel.name = "gateway dial"
            ))
            .await?;
        let hello = match handshake(&mut socket, options)
            .instrument(tracing::info_span!(
                "gateway.handshake",
                otel.name = "gateway handshake"
            ))
            .await
        {
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
        let shared = Arc::new(Shared::new(outbound, max_in_flight, hello.max_payload));
        let (sink, stream) = socket.split();
        let silence_limit = hello.tick_interval * 2;
        tokio::spawn(read_frames(shared.clone(), stream, silence_limit));
        let writer = tokio::spawn(write_frames(shared.clone(), sink, outbound_rx));
        Connection {
            shared,
            writer: Mutex::new(Some(writer)),
        }
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

#[cfg(test)]
mod hostile_gateway_tests;
#[cfg(test)]
mod tests;
