//! Converges the runtime to the store: once at start (so instances come back after a
//! platform restart, a create interrupted by a crash is finished, and the workloads of
//! an instance the store no longer knows are removed) and then periodically (so drift
//! is repaired even if an event was missed).

use std::{collections::HashSet, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    registry::Registry,
    runtime::{DataRetention, SharedRuntime},
};

/// Applies every stored instance to the runtime now, then removes orphans.
pub async fn reconcile_all(registry: &Registry, runtime: &SharedRuntime) {
    for record in registry.all() {
        // Read it again: an instance deleted since the snapshot must not come back.
        let Some(record) = registry.get(&record.id) else {
            continue;
        };
        if let Err(error) = runtime.apply(&record.spec()).await {
            tracing::warn!(instance = %record.id, %error, "could not apply instance; will retry");
        }
    }
    remove_orphans(registry, runtime).await;
}

/// Deletes the workloads of instances the runtime runs but the store does not know
/// (a create or delete interrupted by a crash). Their data is kept: creating the same
/// id again reattaches it.
pub async fn remove_orphans(registry: &Registry, runtime: &SharedRuntime) {
    let stored: HashSet<_> = registry.all().into_iter().map(|record| record.id).collect();
    for id in runtime.known_instances() {
        // Read the record again: an instance created meanwhile is not an orphan.
        if stored.contains(&id) || registry.get(&id).is_some() {
            continue;
        }
        tracing::warn!(instance = %id, "removing the workloads of an instance the store does not know");
        if let Err(error) = runtime.delete(&id, DataRetention::Keep).await {
            tracing::warn!(instance = %id, %error, "could not remove orphan; will retry");
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
