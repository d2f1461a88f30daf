//! Housekeeping: refresh-token families whose every token has expired can never be
//! used again, so they are deleted periodically instead of growing the table forever.

use std::{sync::Arc, time::Duration};

use clawfleet_kit::shutdown::ShutdownToken;
use tracing::Instrument;

use crate::{sessions::now_ms, store::AuthStore};

/// How often expired refresh-token families are deleted by default.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Purges now and then every `interval` until `shutdown`. A failed purge is logged
/// and retried at the next tick; it never stops the service.
pub async fn purge_expired_tokens_until(
    store: Arc<AuthStore>,
    interval: Duration,
    shutdown: ShutdownToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Background work: each purge is a trace of its own.
        let span = tracing::info_span!(parent: None, "purge", otel.name = "refresh token purge");
        match store
            .purge_expired_refresh_tokens(now_ms())
            .instrument(span)
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired refresh tokens purged"),
            Err(error) => tracing::warn!(%error, "purging expired refresh tokens failed"),
        }
    }
}
