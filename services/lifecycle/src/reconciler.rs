//! Converges the runtime to the store: once at start (so instances come back after a
//! platform restart, and a create interrupted by a crash is finished) and then
//! periodically (so drift is repaired even if an event was missed).

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{registry::Registry, runtime::SharedRuntime};

/// Applies every stored instance to the runtime now.
pub async fn reconcile_all(registry: &Registry, runtime: &SharedRuntime) {
    for record in registry.all() {
        if let Err(error) = runtime.apply(&record.spec()).await {
            tracing::warn!(instance = %record.id, %error, "could not apply instance; will retry");
        }
    }
}

/// Reconciles every `period` until `shutdown`.
pub fn spawn_periodic(
    registry: Arc<Registry>,
    runtime: SharedRuntime,
    period: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => reconcile_all(&registry, &runtime).await,
                _ = shutdown.cancelled() => return,
            }
        }
    })
}
