//! A rate budget per key (GCRA from `governor`), with bounded memory that never costs
//! anyone their spent budget: idle keys (whose bucket has refilled completely, so a
//! fresh one would be the same) are dropped on a schedule and every few thousand
//! requests; nothing is ever cleared wholesale.

use std::{
    hash::Hash,
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use governor::{
    Quota,
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DashMapStateStore,
};

/// Every this many requests idle keys are dropped, on top of the scheduled sweep, so a
/// burst of new keys between sweeps is bounded too.
pub const SWEEP_EVERY: u64 = 4096;

/// `per_minute` requests per key per minute, with a burst of the same size.
pub struct KeyedBudget<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    buckets: governor::RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    requests: AtomicU64,
}

// Hand-written: governor's `Debug` would print every key (addresses, emails, user ids).
impl<K: Hash + Eq + Clone, C: Clock + Clone> std::fmt::Debug for KeyedBudget<K, C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeyedBudget")
            .field("tracked_keys", &self.tracked_keys())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedBudget<K> {
    pub fn per_minute(per_minute: u32) -> Self {
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedBudget<K, C> {
    pub fn with_clock(per_minute: u32, clock: C) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            buckets: governor::RateLimiter::new(
                Quota::per_minute(per_minute),
                DashMapStateStore::default(),
                clock.clone(),
            ),
            clock,
            requests: AtomicU64::new(0),
        }
    }

    /// Takes one request from `key`'s budget; when it is spent, how long until the next
    /// request is allowed.
    pub fn acquire(&self, key: &K) -> Result<(), Duration> {
        if self.requests.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        self.buckets
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops the keys whose budget is whole again and gives their memory back.
    pub fn sweep(&self) {
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }

    /// How many keys hold state.
    pub fn tracked_keys(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn a_spent_budget_survives_sweeps_and_idle_keys_do_not() {
        let clock = FakeRelativeClock::default();
        let budget = KeyedBudget::with_clock(2, clock.clone());
        assert!(budget.acquire(&"idle".to_owned()).is_ok());
        clock.advance(Duration::from_secs(40));
        let spender = "spender".to_owned();
        assert!(budget.acquire(&spender).is_ok());
        assert!(budget.acquire(&spender).is_ok());
        clock.advance(Duration::from_secs(25));
        // "idle" is whole again (and has been for a while): it goes; "spender" stays spent.
        budget.sweep();
        assert_eq!(budget.tracked_keys(), 1);
        assert!(budget.acquire(&spender).is_err());
        clock.advance(Duration::from_secs(6));
        assert!(budget.acquire(&spender).is_ok());
    }

    #[test]
    fn many_new_keys_are_swept_without_resetting_anyone() {
        let clock = FakeRelativeClock::default();
        let budget = KeyedBudget::with_clock(1, clock.clone());
        assert!(budget.acquire(&u64::MAX).is_ok());
        for key in 0..(2 * SWEEP_EVERY) {
            let _ = budget.acquire(&key);
        }
        assert!(budget.acquire(&u64::MAX).is_err());
        // Kept one emission interval past refill (governor's margin), then dropped.
        clock.advance(Duration::from_secs(121));
        budget.sweep();
        assert_eq!(budget.tracked_keys(), 0, "every bucket refilled");
        assert!(budget.acquire(&u64::MAX).is_ok());
    }
}
