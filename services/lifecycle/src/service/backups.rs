//! CreateBackup, ListBackups, RestoreBackup and DeleteBackup (docs/product/backups.md):
//! who may touch which instance's backups, and failures as the kit's error codes.

use std::sync::Arc;

use clawfleet_backup::{
    manifest::{BackupReason, Manifest},
    operations::{BackupError, is_backup_id},
    store::StoreError,
};
use clawfleet_contracts::lifecycle::v1::{
    Backup, CreateBackupResponse, DeleteBackupResponse, ListBackupsResponse, RestoreBackupResponse,
};
use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    identity::{Caller, Role},
};

use super::{
    Lifecycle,
    errors::{parse_id, runtime_error},
};
use crate::{
    backups::{Backups, OperationError},
    instance_id::InstanceId,
};

impl Lifecycle {
    fn configured_backups(&self) -> Result<Arc<Backups>, ServiceError> {
        self.backups.clone().ok_or_else(|| {
            ServiceError::new(
                ErrorCode::FailedPrecondition,
                "backups are not configured on this platform (CLAWFLEET_BACKUP_STORE)",
            )
        })
    }

    /// The instance whose backups the caller names: an app user only their own live
    /// instances; an operator any id, also one deleted since (its backups outlive it).
    async fn backup_subject(
        &self,
        caller: &Caller,
        id_text: &str,
    ) -> Result<InstanceId, ServiceError> {
        if caller.role == Role::Operator {
            return parse_id(id_text);
        }
        Ok(self.visible_record(caller, id_text).await?.id)
    }

    pub(super) async fn create_backup_now(
        self: &Arc<Self>,
        caller: &Caller,
        id_text: &str,
    ) -> Result<CreateBackupResponse, ServiceError> {
        let backups = self.configured_backups()?;
        let record = self.live_record(caller, id_text).await?;
        let manifest = backups
            .create(self, &record, BackupReason::Manual)
            .await
            .map_err(operation_error)?;
        Ok(CreateBackupResponse {
            backup: Some(backup_view(&manifest)),
        })
    }

    pub(super) async fn list_backups(
        &self,
        caller: &Caller,
        id_text: &str,
    ) -> Result<ListBackupsResponse, ServiceError> {
        let backups = self.configured_backups()?;
        let id = self.backup_subject(caller, id_text).await?;
        let manifests = backups
            .store()
            .list(id.as_str())
            .await
            .map_err(store_failure)?;
        Ok(ListBackupsResponse {
            backups: manifests.iter().map(backup_view).collect(),
        })
    }

    pub(super) async fn restore_backup(
        self: &Arc<Self>,
        caller: &Caller,
        id_text: &str,
        backup_id: &str,
        target_text: &str,
    ) -> Result<RestoreBackupResponse, ServiceError> {
        let backup_id = checked_backup_id(backup_id)?;
        let backups = self.configured_backups()?;
        let source = self.backup_subject(caller, id_text).await?;
        let target_text = if target_text.is_empty() {
            id_text
        } else {
            target_text
        };
        let target = self.live_record(caller, target_text).await?;
        let manifest = backups
            .store()
            .manifest(source.as_str(), backup_id)
            .await
            .map_err(store_failure)?;
        backups
            .restore(self, &manifest, &target)
            .await
            .map_err(operation_error)?;
        Ok(RestoreBackupResponse {
            instance_id: target.id.to_string(),
            backup: Some(backup_view(&manifest)),
        })
    }

    pub(super) async fn delete_backup(
        &self,
        caller: &Caller,
        id_text: &str,
        backup_id: &str,
    ) -> Result<DeleteBackupResponse, ServiceError> {
        let backup_id = checked_backup_id(backup_id)?;
        let backups = self.configured_backups()?;
        let id = self.backup_subject(caller, id_text).await?;
        backups
            .store()
            .delete(id.as_str(), backup_id)
            .await
            .map_err(store_failure)?;
        tracing::info!(instance = %id, backup = %backup_id, "backup deleted");
        Ok(DeleteBackupResponse {})
    }
}

fn checked_backup_id(backup_id: &str) -> Result<&str, ServiceError> {
    if is_backup_id(backup_id) {
        return Ok(backup_id);
    }
    Err(ServiceError::invalid_argument(format!(
        "{backup_id:?} is not a backup id (like 20261207T231500Z-1a2b3c)"
    )))
}

fn backup_view(manifest: &Manifest) -> Backup {
    let reason = serde_json::to_value(manifest.reason)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    Backup {
        backup_id: manifest.backup_id.clone(),
        instance_id: manifest.instance_id.clone(),
        gateway_version: manifest.gateway_version.clone(),
        reason,
        created_at: manifest.created_at.clone(),
        archive_bytes: manifest.archive_bytes,
        state_bytes: manifest.state_bytes,
        archive_sha256: manifest.archive_sha256.clone(),
    }
}

fn store_failure(error: StoreError) -> ServiceError {
    match error {
        StoreError::NotFound { .. } => ServiceError::not_found(error.to_string()),
        StoreError::BadManifest(_) => {
            ServiceError::new(ErrorCode::FailedPrecondition, error.to_string())
        }
        StoreError::Backend(_) => ServiceError::unavailable(error.to_string()).with_retry_after(5),
    }
}

fn operation_error(error: OperationError) -> ServiceError {
    match error {
        OperationError::Busy(_) => ServiceError::new(ErrorCode::Conflict, error.to_string()),
        OperationError::Backup(BackupError::Store(store)) => store_failure(store),
        OperationError::Backup(BackupError::Refused { .. }) | OperationError::RolledBack { .. } => {
            ServiceError::new(ErrorCode::FailedPrecondition, error.to_string())
        }
        OperationError::Backup(BackupError::Archive(_) | BackupError::Worker(_))
        | OperationError::Swap(_) => ServiceError::internal(error),
        OperationError::Runtime(runtime) => runtime_error(runtime),
        OperationError::Quiesce(message) => ServiceError::unavailable(message).with_retry_after(5),
    }
}
