//! What the stand-in holds: subscribers with their entitlements, faults to answer with,
//! and every request it received.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

/// One entitlement of a subscriber, as RevenueCat stores it (Unix milliseconds).
#[derive(Debug, Clone)]
pub struct StoredEntitlement {
    pub product_identifier: String,
    pub purchase_ms: i64,
    /// `None`: a lifetime purchase.
    pub expires_ms: Option<i64>,
    pub grace_period_expires_ms: Option<i64>,
}

/// What the next request gets instead of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status with RevenueCat's error body (401, 500, 503, ...).
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    RateLimited { retry_after_seconds: u32 },
    /// No answer for this long (longer than the client waits is a timeout).
    Silence(Duration),
}

#[derive(Debug, Default)]
pub(super) struct State {
    /// app user id → entitlement id → entitlement.
    pub subscribers: HashMap<String, HashMap<String, StoredEntitlement>>,
    pub faults: VecDeque<Fault>,
    /// The app user ids asked for, oldest first (including refused requests).
    pub requests: Vec<String>,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub secret_key: String,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(secret_key: &str) -> Self {
        Self {
            secret_key: secret_key.to_owned(),
            state: Mutex::new(State::default()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
