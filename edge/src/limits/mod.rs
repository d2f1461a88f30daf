//! Abuse limits of the App API (docs/product/app-api.md#limits): who a request comes
//! from ([`client_address`]), per-key budgets with bounded memory ([`keyed_budget`]),
//! per-user rate and concurrency on instance and gateway routes ([`app_user`]) and the
//! per-account sign-in budget ([`account`]). The per-address `/auth/*` budgets are in
//! [`crate::rate_limit`].

pub mod account;
pub mod app_user;
pub mod client_address;
pub mod keyed_budget;

use std::time::Duration;

use clawfleet_kit::{error::ErrorCode, shutdown::ShutdownToken};

use crate::{error::ApiError, state::EdgeState};

/// How often idle keys are dropped from every budget.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// A 429 with `Retry-After: retry_after_seconds`, counted against `limiter` in the
/// edge's metrics (`clawfleet_edge_rate_limited_requests_total`).
pub fn too_many(limiter: &'static str, message: String, retry_after_seconds: u64) -> ApiError {
    crate::metrics::rate_limited(limiter);
    let mut error = ApiError::new(ErrorCode::ResourceExhausted, message);
    error.retry_after_seconds = Some(u32::try_from(retry_after_seconds.max(1)).unwrap_or(u32::MAX));
    error
}

/// Sweeps every budget of `state` on a schedule until `shutdown` or until the state is
/// dropped (the task holds no strong reference to it).
pub fn spawn_sweeper(state: &EdgeState, shutdown: ShutdownToken) {
    let state = state.downgrade();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => match state.upgrade() {
                    Some(state) => state.sweep_limits(),
                    None => return,
                },
            }
        }
    });
}
