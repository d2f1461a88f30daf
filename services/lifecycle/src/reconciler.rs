//! Converges the runtime to the store: once at start (so instances come back after a
//! platform restart, a create interrupted by a crash is finished, a delete interrupted
//! by a crash is completed, and the workloads of an instance the store no longer knows
//! are removed) and then periodically (so drift is repaired even if an event was
//! missed). A record marked deleting is never applied: its teardown is finished
//! instead, so no reconcile can bring back what a delete took away.

use std::{collections::HashSet, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{metrics, model::InstanceRecord, runtime::DataRetention, service::Lifecycle};

/// Makes the runtime match one record: applies it, or finishes its delete.
pub async fn converge(lifecycle: &Arc<Lifecycle>, record: &InstanceRecord) {
    if !lifecycle.is_leader() {
        return;
    }
    if record.deleting.is_some() {
        // Joins a teardown in flight rather than starting a second one.
        lifecycle.deletions.finish(lifecycle, record.clone());
        return;
    }
    if lifecycle.holds.is_held(&record.id) {
        // A backup or restore has the gateway stopped on purpose and applies the
        // record itself when it ends.
        return;
    }
    if let Err(error) = lifecycle
        .runtime
        .submit(&record.spec(), &record.owner)
        .await
    {
        metrics::reconcile_failure("apply");
        tracing::warn!(instance = %record.id, %error, "could not apply instance; will retry");
    }
}

/// Reloads the store (changes other replicas made whose notifications were missed),
/// converges every record, then removes orphans. Background work: a trace of its own.
#[tracing::instrument(name = "reconcile", skip_all, parent = None, fields(otel.name = "reconcile pass"))]
pub async fn reconcile_all(lifecycle: &Arc<Lifecycle>) {
    metrics::reconcile_pass();
    match lifecycle.registry.resync().await {
        Ok(changes) => {
            for change in changes {
                lifecycle.announce(change);
            }
        }
        Err(error) => {
            metrics::reconcile_failure("reload");
            tracing::warn!(%error, "could not reload the instance store; will retry");
        }
    }
    if !lifecycle.is_leader() {
        return;
    }
    for record in lifecycle.registry.all() {
        // Read it again: an instance deleted since the snapshot must not come back.
        let Some(record) = lifecycle.registry.get(&record.id) else {
            continue;
        };
        converge(lifecycle, &record).await;
    }
    remove_orphans(lifecycle).await;
}

/// Deletes the workloads of instances the runtime runs but the store does not know
/// (a create interrupted by a crash, or a row removed by hand). Their data is kept:
/// creating the same id again reattaches it.
pub async fn remove_orphans(lifecycle: &Lifecycle) {
    let registry = &lifecycle.registry;
    let stored: HashSet<_> = registry.all().into_iter().map(|record| record.id).collect();
    for id in lifecycle.runtime.known_instances() {
        // Read the record again: an instance created meanwhile is not an orphan.
        if stored.contains(&id) || registry.get(&id).is_some() {
            continue;
        }
        if registry.is_unreadable(&id) {
            // Its row is there but unreadable: reported at load; leave its workloads be.
            continue;
        }
        tracing::warn!(instance = %id, "removing the workloads of an instance the store does not know");
        match lifecycle.runtime.delete(&id, DataRetention::Keep).await {
            Ok(()) => metrics::repaired("orphan"),
            Err(error) => {
                metrics::reconcile_failure("orphan");
                tracing::warn!(instance = %id, %error, "could not remove orphan; will retry");
            }
        }
    }
}

/// Reconciles every `period` until `shutdown`.
pub fn spawn_periodic(
    lifecycle: Arc<Lifecycle>,
    period: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => reconcile_all(&lifecycle).await,
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// Follows the election until `shutdown`: tells the runtime whether it may repair on
/// its own, and reconciles everything at once when this replica takes over, so what
/// the previous leader left undone (or followers wrote meanwhile) is applied.
pub fn spawn_on_leadership(
    lifecycle: Arc<Lifecycle>,
    mut leadership: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = leadership.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
            let leading = *leadership.borrow_and_update();
            lifecycle.runtime.set_leading(leading);
            if leading {
                reconcile_all(&lifecycle).await;
            }
        }
    })
}
