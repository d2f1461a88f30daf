//! Per-user limits on the App API's instance and gateway routes: a rate budget and a
//! bound on requests in flight, so one account cannot flood the lifecycle or its
//! gateway (each gateway call may hold a bridge slot or run a CLI in the instance).
//! Over either limit is 429 with `Retry-After`. Operators (`/api`) are not limited here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use clawfleet_kit::identity::Caller;

use super::{keyed_budget::KeyedBudget, too_many};
use crate::state::EdgeState;

/// The requests one user may have in flight when `EDGE_APP_CONCURRENT_REQUESTS` is unset.
pub const DEFAULT_CONCURRENT_REQUESTS: usize = 8;
/// Instance and gateway requests per user per minute when `EDGE_APP_RATE_PER_MINUTE` is unset.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 120;

/// Both limits, keyed by user id.
#[derive(Debug)]
pub struct AppUserLimits {
    rate: KeyedBudget<String>,
    in_flight: InFlight,
}

impl AppUserLimits {
    pub fn new(rate_per_minute: u32, concurrent: usize) -> Self {
        Self {
            rate: KeyedBudget::per_minute(rate_per_minute),
            in_flight: InFlight::new(concurrent),
        }
    }

    /// Admits one request of `user`, or says why not (and when to retry).
    fn admit(&self, user: &str) -> Result<InFlightGuard, (String, u64)> {
        let guard = self.in_flight.enter(user).ok_or_else(|| {
            (
                format!(
                    "too many requests in progress for this account (at most {}); retry when one finishes",
                    self.in_flight.limit
                ),
                1,
            )
        })?;
        // Taken after the in-flight check, so a refused request costs no budget.
        self.rate.acquire(&user.to_owned()).map_err(|wait| {
            let seconds = wait.as_secs().max(1);
            (
                format!("too many requests for this account; retry in {seconds} s"),
                seconds,
            )
        })?;
        Ok(guard)
    }

    /// Drops idle rate state (see [`KeyedBudget::sweep`]).
    pub fn sweep(&self) {
        self.rate.sweep();
    }
}

/// Requests in flight per user; a user with none holds no entry.
#[derive(Debug)]
struct InFlight {
    limit: usize,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl InFlight {
    fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            counts: Arc::default(),
        }
    }

    fn enter(&self, user: &str) -> Option<InFlightGuard> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(user.to_owned()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(InFlightGuard {
            counts: self.counts.clone(),
            user: user.to_owned(),
        })
    }
}

fn lock(
    counts: &Mutex<HashMap<String, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One admitted request; leaving (even by cancellation) frees its slot.
struct InFlightGuard {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

/// The middleware, behind the access-token check (which names the user).
pub async fn limit_app_user(
    State(state): State<EdgeState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(user) = request
        .extensions()
        .get::<Caller>()
        .map(|caller| caller.subject.clone())
    else {
        return next.run(request).await;
    };
    match state.app_user_limits().admit(&user) {
        Ok(_guard) => next.run(request).await,
        Err((message, retry_after)) => too_many("app_user", message, retry_after).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_requests_are_capped_per_user_and_freed_on_drop() {
        let limits = AppUserLimits::new(1000, 2);
        let first = limits.admit("alice").unwrap();
        let _second = limits.admit("alice").unwrap();
        let (message, retry_after) = limits.admit("alice").err().unwrap();
        assert!(message.contains("at most 2"), "{message}");
        assert_eq!(retry_after, 1);
        // Another user has slots of their own.
        assert!(limits.admit("bob").is_ok());
        drop(first);
        assert!(limits.admit("alice").is_ok());
    }

    #[test]
    fn users_without_requests_in_flight_hold_no_memory() {
        let limits = AppUserLimits::new(1000, 2);
        for user in 0..100 {
            drop(limits.admit(&user.to_string()).unwrap());
        }
        assert!(lock(&limits.in_flight.counts).is_empty());
    }

    #[test]
    fn the_rate_is_per_user() {
        let limits = AppUserLimits::new(2, 10);
        assert!(limits.admit("alice").is_ok());
        assert!(limits.admit("alice").is_ok());
        let (message, retry_after) = limits.admit("alice").err().unwrap();
        assert!(
            message.starts_with("too many requests for this account"),
            "{message}"
        );
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        assert!(limits.admit("bob").is_ok());
    }
}
