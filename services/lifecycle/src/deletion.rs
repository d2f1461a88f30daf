//! Finishing accepted deletes. A delete is first recorded in the store (the record is
//! marked deleting, so nothing can start or change it again), then the runtime tears
//! the instance down, and only then does the record go. The teardown runs on a task of
//! its own: a caller waits for it only up to a bound and otherwise learns that it goes
//! on in the background; a retried delete joins the teardown in flight; and the
//! reconciler starts the teardown of any marked record nobody is finishing (after a
//! crash, or a teardown that failed). See docs/product/instances.md#deleting.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use clawfleet_kit::error::ServiceError;
use tokio::sync::watch;

use crate::{
    instance_id::InstanceId, model::InstanceRecord, revision, runtime::DataRetention,
    service::Lifecycle,
};

/// How a teardown ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The runtime removed the instance and the record is gone; the deletion's revision.
    Finished { revision: u64 },
    /// The runtime or the store failed; the record stays marked and the reconciler
    /// tries again.
    Failed(ServiceError),
}

/// The teardowns in flight, one per instance.
#[derive(Default)]
pub struct Deletions {
    running: Mutex<HashMap<InstanceId, watch::Receiver<Option<Outcome>>>>,
}

impl Deletions {
    /// Starts the teardown of `record` (marked deleting) unless one is in flight;
    /// either way returns a receiver that holds the outcome once there is one.
    pub fn finish(
        &self,
        lifecycle: &Arc<Lifecycle>,
        record: InstanceRecord,
    ) -> watch::Receiver<Option<Outcome>> {
        let mut running = self.running();
        if let Some(outcome) = running.get(&record.id) {
            return outcome.clone();
        }
        let (sender, receiver) = watch::channel(None);
        running.insert(record.id.clone(), receiver.clone());
        let lifecycle = lifecycle.clone();
        tokio::spawn(async move {
            let outcome = tear_down(&lifecycle, &record).await;
            lifecycle.deletions.running().remove(&record.id);
            let _ = sender.send(Some(outcome));
        });
        receiver
    }

    /// Whether a teardown of `id` is in flight.
    pub fn is_running(&self, id: &InstanceId) -> bool {
        self.running().contains_key(id)
    }

    fn running(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<InstanceId, watch::Receiver<Option<Outcome>>>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn tear_down(lifecycle: &Lifecycle, record: &InstanceRecord) -> Outcome {
    let retention = match record.deleting {
        Some(deletion) if !deletion.preserve_data => DataRetention::Purge,
        _ => DataRetention::Keep,
    };
    if let (DataRetention::Purge, Some(backups)) = (retention, &lifecycle.backups)
        && let Err(error) = backups
            .before_purge(lifecycle, &record.id, Some(record))
            .await
    {
        // docs/product/backups.md#before-a-purge: no purge without its backup.
        tracing::warn!(instance = %record.id, %error, "no backup before purge; will retry");
        return Outcome::Failed(ServiceError::unavailable(format!(
            "cannot back up instance {} before purging it: {error}",
            record.id
        )));
    }
    if let Err(error) = lifecycle.runtime.delete(&record.id, retention).await {
        tracing::warn!(instance = %record.id, %error, "could not tear the instance down yet; will retry");
        return Outcome::Failed(crate::service::runtime_error(error));
    }
    let last = match lifecycle.registry.remove_deleted(&record.id).await {
        Ok(last) => last.unwrap_or_else(|| record.clone()),
        Err(error) => {
            tracing::warn!(instance = %record.id, %error, "could not remove a deleted record yet; will retry");
            return Outcome::Failed(crate::service::store_error(error));
        }
    };
    tracing::info!(
        instance = %record.id,
        preserve_data = matches!(retention, DataRetention::Keep),
        "instance deleted"
    );
    // The owner's last instance purged (or their account deleted): their provider key
    // goes too (docs/product/provider-keys.md#lifecycle-of-a-key).
    if matches!(retention, DataRetention::Purge) {
        lifecycle.release_key_if_unused(&record.owner).await;
    }
    let mut view = lifecycle.view(&last);
    view.revision = revision::next();
    let revision = view.revision;
    lifecycle.hub.deleted(view);
    Outcome::Finished { revision }
}
