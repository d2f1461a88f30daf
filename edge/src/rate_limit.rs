//! A per-client token bucket in front of `/auth/*`, so password guessing and sign-up
//! floods cost the attacker time: over the limit is 429 with `Retry-After`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use clawfleet_kit::error::ErrorCode;

use crate::{error::ApiError, state::EdgeState};

/// Buckets kept at most; beyond it idle ones are dropped first (bounded memory under a
/// flood of source addresses).
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Requests per minute per client address, with a burst of the same size.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`; when none is left, how long until one is.
    pub fn acquire(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let refill_per_second = capacity / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            // Full buckets carry no state worth keeping.
            buckets
                .retain(|_, bucket| refilled(*bucket, now, refill_per_second, capacity) < capacity);
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        bucket.tokens = refilled(*bucket, now, refill_per_second, capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(Duration::from_secs_f64(missing / refill_per_second))
        }
    }
}

fn refilled(bucket: Bucket, now: Instant, refill_per_second: f64, capacity: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * refill_per_second).min(capacity)
}

/// The middleware: the client is the TCP peer (the edge does not trust forwarded
/// headers it cannot verify).
pub async fn limit_auth_requests(
    State(state): State<EdgeState>,
    request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(address)| {
            address.ip()
        });
    match state.auth_rate_limiter().acquire(client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs().max(1);
            let mut error = ApiError::new(
                ErrorCode::ResourceExhausted,
                format!("too many sign-in requests; retry in {seconds} s"),
            );
            error.retry_after_seconds = Some(u32::try_from(seconds).unwrap_or(u32::MAX));
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_until_tokens_refill() {
        let limiter = RateLimiter::new(3);
        let client = IpAddr::from([127, 0, 0, 1]);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.acquire(client, start).is_ok());
        }
        let wait = limiter.acquire(client, start).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            limiter
                .acquire(client, start + Duration::from_secs(20))
                .is_ok()
        );
        // Another client has its own bucket.
        assert!(limiter.acquire(IpAddr::from([127, 0, 0, 2]), start).is_ok());
    }
}
