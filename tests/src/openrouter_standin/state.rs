//! What the stand-in holds: keys in creation order, queued faults, recorded calls.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

/// One provisioned key as OpenRouter keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    /// The key's public identifier (used in `/keys/{hash}`).
    pub hash: String,
    /// The secret value handed out once at creation (`sk-or-v1-...`).
    pub key: String,
    pub name: String,
    /// Credit limit in USD; `None` is unlimited.
    pub limit: Option<f64>,
    pub disabled: bool,
    /// Spend so far in USD (set by tests through the control API).
    pub usage: f64,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl StoredKey {
    /// `limit - usage`, never below zero; `None` when unlimited.
    pub fn limit_remaining(&self) -> Option<f64> {
        self.limit.map(|limit| (limit - self.usage).max(0.0))
    }
}

/// A failure the next management call(s) answer with instead of doing anything.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The management key is refused (401).
    Unauthorized,
    /// 429 with `Retry-After: <seconds>`.
    RateLimited { retry_after_seconds: u64 },
    /// Any status, e.g. 500, 502, 503.
    Status(u16),
    /// The answer comes only after this long (the client's timeout should fire first);
    /// the call then does what it was asked.
    Slow(Duration),
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub keys: Vec<StoredKey>,
    /// Queued faults, each for any call (`None`) or for calls starting with the text.
    pub faults: VecDeque<(Option<String>, Fault)>,
    /// `METHOD path` of every call that reached the stand-in.
    pub calls: Vec<String>,
    pub next_serial: u64,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub management_key: String,
    state: Mutex<State>,
    pub stopped: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn new(management_key: &str) -> Self {
        Self {
            management_key: management_key.to_owned(),
            state: Mutex::new(State::default()),
            stopped: tokio::sync::watch::channel(false).0,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
