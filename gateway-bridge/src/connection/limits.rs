//! What one gateway may send the bridge. A gateway is its tenant's to control (a plugin in
//! the tenant's data can make it send anything), so each connection is bounded on its own
//! and one tenant's gateway cannot stall or exhaust the bridge that serves everyone: a cap
//! on every message, large messages parsed on the blocking pool instead of an async worker,
//! and a budget a second of unsolicited frames (events, answers to nothing) and of bytes.
//! Over budget the reader stops reading until the next second (the gateway's socket fills
//! up: its flood is shed there); over budget three seconds in a row, the connection closes.

use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::CloseReason;

/// The largest message (and frame) a gateway may send. Larger than "a few MiB" on purpose:
/// a chat history with inline images is a legitimate answer of several MiB.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Messages larger than this are parsed on the blocking pool.
pub(super) const OFFLOAD_PARSE_BYTES: usize = 64 * 1024;
/// Unsolicited frames a connection may deliver a second.
pub const UNSOLICITED_FRAMES_PER_SECOND: u64 = 1_000;
/// Bytes a connection may deliver a second (two of the largest messages).
pub const BYTES_PER_SECOND: u64 = 2 * MAX_MESSAGE_BYTES as u64;
/// Seconds in a row over budget after which the connection is closed.
pub const STRAINED_SECONDS_LIMIT: u32 = 3;

const WINDOW: Duration = Duration::from_secs(1);

/// The WebSocket settings of every connection to a gateway.
pub(super) fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// What the reader does after a frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Read on.
    Read,
    /// Over this second's budget: read nothing more before then.
    PauseUntil(Instant),
    /// Over budget for too long: close with this reason.
    Close(CloseReason),
}

/// One connection's inbound budget, counted in one-second windows.
#[derive(Debug)]
pub(super) struct InboundBudget {
    window_ends: Instant,
    unsolicited: u64,
    bytes: u64,
    /// Whether the current window went over budget.
    strained: bool,
    /// Windows in a row, before the current one, that went over budget.
    strained_before: u32,
}

impl InboundBudget {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            window_ends: now + WINDOW,
            unsolicited: 0,
            bytes: 0,
            strained: false,
            strained_before: 0,
        }
    }

    /// Counts one frame of `bytes` that arrived at `now`.
    pub(super) fn charge(&mut self, bytes: usize, unsolicited: bool, now: Instant) -> Verdict {
        if now >= self.window_ends {
            let skipped_a_window = now >= self.window_ends + WINDOW;
            self.strained_before = if self.strained && !skipped_a_window {
                self.strained_before + 1
            } else {
                0
            };
            self.window_ends = now + WINDOW;
            self.unsolicited = 0;
            self.bytes = 0;
            self.strained = false;
        }
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
        self.unsolicited += u64::from(unsolicited);
        let over =
            self.unsolicited > UNSOLICITED_FRAMES_PER_SECOND || self.bytes > BYTES_PER_SECOND;
        if !over {
            return Verdict::Read;
        }
        self.strained = true;
        if self.strained_before + 1 >= STRAINED_SECONDS_LIMIT {
            return Verdict::Close(CloseReason::LimitExceeded(format!(
                "more than {UNSOLICITED_FRAMES_PER_SECOND} unsolicited frames or \
                 {BYTES_PER_SECOND} bytes a second for {STRAINED_SECONDS_LIMIT} seconds"
            )));
        }
        Verdict::PauseUntil(self.window_ends)
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
