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
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

use super::{CLOSE_GRACE, CloseReason, Socket, shared::Shared};
use crate::protocol::Frame;

impl Shared {
    pub(super) fn route_text(&self, text: &str) {
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

pub(super) async fn read_frames(
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
