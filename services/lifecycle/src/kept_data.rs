//! The kept data of deleted instances (docs/product/instances.md#deleting): a delete
//! that keeps its data (the default) leaves the state dir or PVC behind so that
//! creating the same id again reattaches it. Each such copy is recorded in the store
//! (`kept_data`), counts toward its owner's plan quota, and is purged by the leader once
//! it is older than the retention (`CLAWFLEET_KEPT_DATA_RETENTION_SECONDS`, default 7
//! days): app ids are random and never reattach, so without this an account could pile
//! up 5 GiB volumes by creating and deleting in a loop.

use std::{sync::Arc, time::Duration};

use clawfleet_database::on_backend;
use tokio_util::sync::CancellationToken;

use crate::{
    instance_id::InstanceId,
    model::now_ms,
    runtime::DataRetention,
    service::Lifecycle,
    store::{InstanceStore, StoreError},
};

/// How long kept data outlives its instance when the retention is not configured.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

impl InstanceStore {
    /// Ids of kept data older than `cutoff_ms` (oldest first, at most `limit`).
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT kept_data", otel.kind = "client",
        db.system.name = self.database().system_name(),
        db.operation.name = "SELECT", db.collection.name = "kept_data",
        clawfleet.store.call = "kept_data_before",
    ))]
    pub async fn kept_data_before(
        &self,
        cutoff_ms: i64,
        limit: i64,
    ) -> Result<Vec<InstanceId>, StoreError> {
        let rows: Vec<(String,)> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(
                "SELECT id FROM kept_data WHERE kept_since_ms < $1 \
                 ORDER BY kept_since_ms LIMIT $2",
            )
            .bind(cutoff_ms)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        // An unreadable id is reported and skipped, like an unreadable instance row, so
        // it cannot stop every other purge.
        Ok(rows
            .into_iter()
            .filter_map(|(id,)| match InstanceId::parse(&id) {
                Ok(id) => Some(id),
                Err(error) => {
                    tracing::error!(id = %id.escape_debug(), %error, "skipping an unreadable kept-data row");
                    None
                }
            })
            .collect())
    }

    /// Forgets the kept data of `id` if it is still older than `cutoff_ms` (a copy kept
    /// again since, or reattached, is left alone). Returns whether it went.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "DELETE kept_data", otel.kind = "client",
        db.system.name = self.database().system_name(),
        db.operation.name = "DELETE", db.collection.name = "kept_data",
        clawfleet.store.call = "forget_kept_data",
    ))]
    pub async fn forget_kept_data(
        &self,
        id: &InstanceId,
        cutoff_ms: i64,
    ) -> Result<bool, StoreError> {
        let removed = on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            let result = sqlx::query("DELETE FROM kept_data WHERE id = $1 AND kept_since_ms < $2")
                .bind(id.as_str())
                .bind(cutoff_ms)
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
            result.rows_affected() == 1
        });
        Ok(removed)
    }

    /// How many kept copies `owner` has.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT kept_data", otel.kind = "client",
        db.system.name = self.database().system_name(),
        db.operation.name = "SELECT", db.collection.name = "kept_data",
        clawfleet.store.call = "kept_data_of",
    ))]
    pub async fn kept_data_of(&self, owner: &str) -> Result<usize, StoreError> {
        let (count,): (i64,) = on_backend!(self, |pool, _begin| {
            sqlx::query_as("SELECT COUNT(*) FROM kept_data WHERE owner = $1")
                .bind(owner)
                .fetch_one(pool)
                .await?
        });
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }
}

/// Purges kept data older than `retention` (only while leading: the leader alone
/// changes the runtime). Returns how many copies went.
#[tracing::instrument(name = "purge", skip_all, parent = None, fields(otel.name = "kept data purge"))]
pub async fn purge_expired(lifecycle: &Lifecycle, retention: Duration) -> usize {
    if !lifecycle.is_leader() {
        return 0;
    }
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff_ms = now_ms().saturating_sub(retention_ms);
    let store = lifecycle.registry.store();
    let expired = match store.kept_data_before(cutoff_ms, 100).await {
        Ok(expired) => expired,
        Err(error) => {
            tracing::warn!(%error, "cannot list kept data to purge; will retry");
            return 0;
        }
    };
    let mut purged = 0;
    for id in expired {
        // Created again under the same id: the data is in use, not kept. (Creating removes
        // the kept row too; this covers a create that lands during the sweep.)
        if lifecycle.registry.get(&id).is_some() || lifecycle.registry.is_unreadable(&id) {
            continue;
        }
        if let Some(backups) = &lifecycle.backups
            && let Err(error) = backups.before_purge(lifecycle, &id, None).await
        {
            tracing::warn!(instance = %id, %error, "cannot back up kept data before purging it; will retry");
            continue;
        }
        if let Err(error) = lifecycle.runtime.delete(&id, DataRetention::Purge).await {
            tracing::warn!(instance = %id, %error, "cannot purge kept data yet; will retry");
            continue;
        }
        match store.forget_kept_data(&id, cutoff_ms).await {
            Ok(_) => {
                tracing::info!(instance = %id, "kept data purged after its retention");
                purged += 1;
            }
            Err(error) => {
                tracing::warn!(instance = %id, %error, "purged kept data stays listed; will retry")
            }
        }
    }
    purged
}

/// How often the purge runs: a quarter of the retention, between 1 s and 1 hour.
pub fn purge_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60 * 60))
}

/// Runs [`purge_expired`] on a schedule until `shutdown`.
pub fn spawn_purger(
    lifecycle: Arc<Lifecycle>,
    retention: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(purge_interval(retention));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => { purge_expired(&lifecycle, retention).await; }
                _ = shutdown.cancelled() => return,
            }
        }
    })
}
