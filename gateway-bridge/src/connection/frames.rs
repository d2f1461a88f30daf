//! Frame I/O of an open connection: the reader routes each `res` to its pending call and
//! each `event` to the broadcast and watches for silence; the writer batches whatever is
//! queued into one flush and sends the close frame at the end.

use std::{sync::Arc, time::Duration};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until, timeout},
};
use tokio_tungstenite::tungstenite::{
    self, Message, Utf8Bytes,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

use super::{
    CLOSE_GRACE, CloseReason, Socket,
    limits::{InboundBudget, MAX_MESSAGE_BYTES, OFFLOAD_PARSE_BYTES, Verdict},
    shared::Shared,
};
use crate::protocol::{Frame, FrameError};

/// Whether a frame answered one of our calls: only the others spend the unsolicited budget.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Answer,
    Unsolicited,
}

impl Shared {
    /// Hands a parsed frame to whoever waits for it.
    fn deliver(&self, frame: Result<Frame<'_>, FrameError>) -> Delivery {
        match frame {
            Ok(Frame::Response(response)) => {
                let waiter = response
                    .id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| self.lock_pending().waiters.remove(&id));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(response.result);
                        Delivery::Answer
                    }
                    None => {
                        tracing::debug!(id = %response.id, "response for no pending call");
                        Delivery::Unsolicited
                    }
                }
            }
            Ok(Frame::Event(event)) => {
                // No subscribers is fine: events are best effort.
                let _ = self.events.send(event);
                Delivery::Unsolicited
            }
            Ok(Frame::Other) => Delivery::Unsolicited,
            Err(error) => {
                tracing::warn!(%error, "ignoring gateway frame");
                Delivery::Unsolicited
            }
        }
    }

    /// Parses and delivers one text frame; a large one is parsed on the blocking pool so
    /// that no gateway can hold an async worker with a slow parse. Frames stay in order:
    /// the reader waits for the parse before it reads on.
    async fn route_text(&self, text: Utf8Bytes) -> Delivery {
        if text.len() <= OFFLOAD_PARSE_BYTES {
            return self.deliver(Frame::parse(text.as_str()));
        }
        let parsed =
            tokio::task::spawn_blocking(move || Frame::parse(text.as_str()).map(Frame::into_owned))
                .await
                .unwrap_or_else(|error| Err(FrameError(format!("parsing failed: {error}"))));
        self.deliver(parsed)
    }
}

pub(super) async fn read_frames(
    shared: Arc<Shared>,
    mut stream: SplitStream<Socket>,
    silence_limit: Duration,
) {
    let mut last_frame = Instant::now();
    let mut budget = InboundBudget::new(last_frame);
    let watchdog = sleep_until(last_frame + silence_limit);
    tokio::pin!(watchdog);
    let reason = loop {
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            frame = stream.next() => {
                last_frame = Instant::now();
                let (size, delivery) = match frame {
                    Some(Ok(Message::Text(text))) => (text.len(), shared.route_text(text).await),
                    Some(Ok(Message::Close(frame))) => break remote_close(frame),
                    // Pings are answered by tungstenite itself; any frame proves liveness.
                    Some(Ok(other)) => (other.len(), Delivery::Unsolicited),
                    Some(Err(tungstenite::Error::Capacity(error))) => {
                        break CloseReason::LimitExceeded(format!(
                            "{error} (the cap is {MAX_MESSAGE_BYTES} bytes)"
                        ));
                    }
                    Some(Err(error)) => break CloseReason::Io(error.to_string()),
                    None => break CloseReason::Io("socket ended without a close frame".to_owned()),
                };
                crate::metrics::frame_in(size);
                match budget.charge(size, delivery == Delivery::Unsolicited, last_frame) {
                    Verdict::Read => {}
                    Verdict::PauseUntil(until) => {
                        tracing::debug!("gateway over its inbound budget; pausing reads");
                        tokio::select! {
                            () = shared.cancel.cancelled() => return,
                            () = sleep_until(until) => {}
                        }
                        // The pause is ours: it must not count as the gateway's silence.
                        last_frame = Instant::now();
                    }
                    Verdict::Close(reason) => break reason,
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
    if let CloseReason::LimitExceeded(limit) = &reason {
        tracing::warn!(%limit, "closing a gateway connection that exceeded its limits");
    }
    shared.finish(reason);
}

pub(super) async fn write_frames(
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
        crate::metrics::frame_out(first.len());
        let mut written = sink.feed(first).await;
        while written.is_ok() {
            match outbound.try_recv() {
                Ok(message) => {
                    crate::metrics::frame_out(message.len());
                    written = sink.feed(message).await;
                }
                Err(_) => break,
            }
        }
        if let Err(error) = written.and(sink.flush().await) {
            shared.finish(CloseReason::Io(error.to_string()));
            return;
        }
    }
    let close = Message::Close(Some(farewell(shared.closed.borrow().as_ref())));
    let _ = timeout(CLOSE_GRACE, async {
        sink.send(close).await?;
        sink.close().await
    })
    .await;
}

/// The close frame that tells the gateway why this side closed.
pub(super) fn farewell(reason: Option<&CloseReason>) -> CloseFrame {
    match reason {
        Some(CloseReason::LimitExceeded(limit)) => {
            // A close reason has at most 123 bytes.
            let mut text = format!("limit exceeded: {limit}");
            let mut cut = text.len().min(123);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            CloseFrame {
                code: CloseCode::Policy,
                reason: text.into(),
            }
        }
        _ => CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        },
    }
}

pub(super) fn remote_close(frame: Option<CloseFrame>) -> CloseReason {
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
