//! A per-client token bucket in front of `/auth/*`, so password guessing and sign-up
//! floods cost the attacker time: over the limit is 429 with `Retry-After`. The client
//! is the address seen through the trusted proxies ([`crate::limits::client_address`]);
//! `/auth/refresh` has a budget of its own, so signing in never starves token refresh
//! (and the other way round).

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::clock::{Clock, DefaultClock};

use crate::{
    limits::{keyed_budget::KeyedBudget, too_many},
    state::EdgeState,
};

/// Requests per minute per client, with a burst of the same size (GCRA, from
/// `governor`, with the bounded memory of [`KeyedBudget`]). IPv6 clients are keyed by
/// their /64, which one subscriber usually holds whole, so rotating addresses inside it
/// buys no extra budget.
#[derive(Debug)]
pub struct RateLimiter<C: Clock + Clone = DefaultClock> {
    budget: KeyedBudget<IpAddr, C>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    pub fn with_clock(per_minute: u32, clock: C) -> Self {
        Self {
            budget: KeyedBudget::with_clock(per_minute, clock),
        }
    }

    /// Takes one request from `client`'s budget; when it is spent, how long until the
    /// next request is allowed.
    pub fn acquire(&self, client: IpAddr) -> Result<(), Duration> {
        self.budget.acquire(&client_key(client))
    }

    /// Drops clients whose budget is whole again (never one that is spent).
    pub fn sweep(&self) {
        self.budget.sweep();
    }
}

/// The budget key of an address: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by its /64.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

/// The middleware: the client is the TCP peer, or what a trusted proxy says it is.
pub async fn limit_auth_requests(
    State(state): State<EdgeState>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(address)| {
            address.ip()
        });
    let client = state
        .trusted_proxies()
        .client_address(peer, request.headers());
    let (limiter, name) = if request.uri().path() == "/auth/refresh" {
        (state.refresh_rate_limiter(), "refresh")
    } else {
        (state.auth_rate_limiter(), "auth")
    };
    match limiter.acquire(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs().max(1);
            too_many(
                name,
                format!("too many sign-in requests; retry in {seconds} s"),
                seconds,
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::limits::keyed_budget::SWEEP_EVERY;

    #[test]
    fn a_burst_is_allowed_then_refused_until_tokens_refill() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(3, clock.clone());
        let client = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..3 {
            assert!(limiter.acquire(client).is_ok());
        }
        let wait = limiter.acquire(client).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        clock.advance(Duration::from_secs(20));
        assert!(limiter.acquire(client).is_ok());
        // Another client has its own bucket.
        assert!(limiter.acquire(IpAddr::from([127, 0, 0, 2])).is_ok());
    }

    #[test]
    fn ipv6_clients_share_the_budget_of_their_64() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(2, clock);
        let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let second: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.acquire(first).is_ok());
        assert!(limiter.acquire(second).is_ok());
        assert!(limiter.acquire(first).is_err());
        assert!(limiter.acquire(elsewhere).is_ok());
    }

    #[test]
    fn sweeping_idle_clients_never_resets_a_spent_budget() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(1, clock.clone());
        let attacker = IpAddr::from([10, 0, 0, 1]);
        assert!(limiter.acquire(attacker).is_ok());
        // Many other clients come and go, forcing sweeps ...
        for index in 0..(2 * SWEEP_EVERY as u32) {
            let _ = limiter.acquire(IpAddr::from(index.to_be_bytes()));
        }
        // ... and the attacker's spent budget is still spent.
        assert!(limiter.acquire(attacker).is_err());
        clock.advance(Duration::from_secs(61));
        assert!(limiter.acquire(attacker).is_ok());
    }
}
