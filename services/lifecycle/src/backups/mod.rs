//! Backups of instances (docs/product/backups.md): when and how the lifecycle takes and
//! restores them around the runtime. Archives and stores are `clawfleet-backup`'s; here
//! the gateway is quiesced, states are swapped, and restores are verified or rolled back.

mod holds; // one backup or restore per instance at a time, and the reconciler kept off
mod quiesce; // stopping a gateway for a consistent copy, and starting it again
mod swap; // replacing a state dir with a restored one, and putting it back

use std::{path::PathBuf, sync::Arc, time::Duration};

use clawfleet_backup::{
    key::{KeyError, PlatformKey},
    manifest::{BackupReason, Manifest},
    operations::{self, BackupError, NewBackup},
    store::{BackupStore, StoreConfig, StoreError},
};

pub use self::holds::{Hold, Holds};
use crate::{
    instance_id::InstanceId, model::InstanceRecord, runtime::RuntimeError, service::Lifecycle,
};

/// How long a restored gateway may take to become ready before the restore is undone.
pub const RESTORE_READY_DEADLINE: Duration = Duration::from_secs(180);

/// Where backups go and the key that seals them.
#[derive(Debug, Clone)]
pub struct BackupsConfig {
    pub store: StoreConfig,
    /// The platform key file (created 0600 when missing).
    pub key_file: PathBuf,
}

/// Why the backups could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BackupsSetupError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot open the backup store: {0}")]
    Store(#[from] StoreError),
}

/// What a backup or restore operation failed on.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("instance {0} is busy with another backup or restore")]
    Busy(InstanceId),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Quiesce(String),
    /// The restored state was put in place but the gateway did not become ready; the
    /// previous state is back.
    #[error("restored gateway did not become ready ({reason}); the previous state was put back")]
    RolledBack { reason: String },
    #[error("cannot swap state directories: {0}")]
    Swap(std::io::Error),
}

/// The configured backups: a store and the platform key.
pub struct Backups {
    store: BackupStore,
    key: Arc<PlatformKey>,
}

impl Backups {
    pub fn open(config: &BackupsConfig) -> Result<Self, BackupsSetupError> {
        let key = Arc::new(PlatformKey::load_or_create(&config.key_file)?);
        let store = BackupStore::open(&config.store)?;
        tracing::info!(store = store.description(), key = %key.fingerprint(), "backups configured");
        Ok(Self { store, key })
    }

    pub fn store(&self) -> &BackupStore {
        &self.store
    }

    /// Takes a backup of `record`'s state now: quiesced when it runs, started again
    /// whatever happens.
    pub async fn create(
        &self,
        lifecycle: &Arc<Lifecycle>,
        record: &InstanceRecord,
        reason: BackupReason,
    ) -> Result<Manifest, OperationError> {
        let _hold = lifecycle.holds.take(&record.id)?;
        self.create_held(lifecycle, record, reason).await
    }

    /// [`Backups::create`] for a caller that already holds the instance.
    pub(crate) async fn create_held(
        &self,
        lifecycle: &Lifecycle,
        record: &InstanceRecord,
        reason: BackupReason,
    ) -> Result<Manifest, OperationError> {
        let runtime = &lifecycle.runtime;
        let state_dir = runtime.state_dir(&record.id)?;
        quiesce::stop(lifecycle, record).await?;
        let taken = operations::create_backup(
            &self.store,
            self.key.clone(),
            &state_dir,
            NewBackup {
                instance_id: record.id.to_string(),
                gateway_version: runtime.gateway_version(),
                reason,
            },
        )
        .await;
        quiesce::resume(lifecycle, &record.id).await;
        let manifest = taken?;
        tracing::info!(
            instance = %record.id,
            backup = %manifest.backup_id,
            bytes = manifest.archive_bytes,
            ?reason,
            "backup taken"
        );
        Ok(manifest)
    }

    /// Takes a backup before the instance's data is purged (a delete without kept data,
    /// or kept data past its retention; `record` is `None` then, and no gateway runs).
    /// A runtime that cannot take backups is logged and the purge goes on; any other
    /// failure stops the purge, which is retried, so no data goes without its backup.
    pub async fn before_purge(
        &self,
        lifecycle: &Lifecycle,
        id: &InstanceId,
        record: Option<&InstanceRecord>,
    ) -> Result<(), OperationError> {
        let state_dir = match lifecycle.runtime.state_dir(id) {
            Ok(dir) => dir,
            Err(RuntimeError::Misconfigured(reason)) => {
                tracing::warn!(instance = %id, %reason, "purging without a backup");
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        if !tokio::fs::try_exists(&state_dir).await.unwrap_or(false) {
            return Ok(());
        }
        let _hold = lifecycle.holds.take(id)?;
        if let Some(record) = record {
            quiesce::stop(lifecycle, record).await?;
        }
        let manifest = operations::create_backup(
            &self.store,
            self.key.clone(),
            &state_dir,
            NewBackup {
                instance_id: id.to_string(),
                gateway_version: lifecycle.runtime.gateway_version(),
                reason: BackupReason::BeforePurge,
            },
        )
        .await?;
        tracing::info!(instance = %id, backup = %manifest.backup_id, "backup taken before purge");
        Ok(())
    }

    /// Replaces `target`'s state with the backup `manifest` describes: checked and
    /// unpacked beside the state dir while the gateway still runs, then the gateway
    /// stopped, the directories swapped and the gateway started; if it does not become
    /// ready within [`RESTORE_READY_DEADLINE`], the previous state is put back.
    pub async fn restore(
        &self,
        lifecycle: &Arc<Lifecycle>,
        manifest: &Manifest,
        target: &InstanceRecord,
    ) -> Result<(), OperationError> {
        let _hold = lifecycle.holds.take(&target.id)?;
        let runtime = &lifecycle.runtime;
        operations::check_restorable(manifest, &self.key, &runtime.gateway_version())?;
        let state_dir = runtime.state_dir(&target.id)?;
        let staging = swap::staging_dir(&state_dir, &manifest.backup_id);
        swap::prepare_empty(&staging).map_err(OperationError::Swap)?;
        if let Err(error) =
            operations::unpack_backup(&self.store, self.key.clone(), manifest, &staging).await
        {
            swap::discard(&staging);
            return Err(error.into());
        }
        quiesce::stop(lifecycle, target).await?;
        let swapped = match blocking({
            let (state_dir, staging) = (state_dir.clone(), staging.clone());
            move || swap::put_in_place(&state_dir, &staging)
        })
        .await
        {
            Ok(swapped) => swapped,
            Err(error) => {
                swap::discard(&staging);
                quiesce::resume(lifecycle, &target.id).await;
                return Err(OperationError::Swap(error));
            }
        };
        quiesce::resume(lifecycle, &target.id).await;
        let wants_running = quiesce::wants_running(lifecycle, &target.id);
        let verdict = if wants_running {
            quiesce::wait_ready(lifecycle, &target.id, RESTORE_READY_DEADLINE).await
        } else {
            Ok(())
        };
        match verdict {
            Ok(()) => {
                blocking(move || {
                    swap::discard(&swapped.previous);
                    Ok(())
                })
                .await
                .map_err(OperationError::Swap)?;
                tracing::info!(instance = %target.id, backup = %manifest.backup_id, "backup restored");
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(instance = %target.id, backup = %manifest.backup_id, %reason, "restored gateway not ready; putting the previous state back");
                quiesce::stop(lifecycle, target).await?;
                blocking(move || swap::put_back(&state_dir, &swapped))
                    .await
                    .map_err(OperationError::Swap)?;
                quiesce::resume(lifecycle, &target.id).await;
                Err(OperationError::RolledBack { reason })
            }
        }
    }
}

/// Runs file-system work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(std::io::Error::other(error.to_string())))
}
