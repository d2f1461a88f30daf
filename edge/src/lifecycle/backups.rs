//! The lifecycle's backup RPCs for the edge's backup routes (docs/product/backups.md#routes).

use std::time::Duration;

use clawfleet_contracts::lifecycle::v1::{
    Backup, CreateBackupRequest, DeleteBackupRequest, ListBackupsRequest, RestoreBackupRequest,
    RestoreBackupResponse,
};
use clawfleet_kit::identity::Caller;

use super::{LifecycleClient, upstream};
use crate::error::ApiError;

/// A backup or restore stops the gateway, moves its state and waits for it to be ready
/// again (the lifecycle allows a restored gateway 180 s).
pub const BACKUP_DEADLINE: Duration = Duration::from_secs(300);

impl LifecycleClient {
    fn slow_request<T>(&self, caller: &Caller, message: T) -> Result<tonic::Request<T>, ApiError> {
        let mut request = self.stamped(caller, message)?;
        request.set_timeout(BACKUP_DEADLINE);
        Ok(request)
    }

    pub async fn create_backup(
        &self,
        caller: &Caller,
        instance_id: String,
    ) -> Result<Backup, ApiError> {
        let request = self.slow_request(caller, CreateBackupRequest { instance_id })?;
        let response = self
            .slow
            .clone()
            .create_backup(request)
            .await
            .map_err(upstream)?;
        response
            .into_inner()
            .backup
            .ok_or_else(|| ApiError::internal("lifecycle service answered without a backup"))
    }

    pub async fn list_backups(
        &self,
        caller: &Caller,
        instance_id: String,
    ) -> Result<Vec<Backup>, ApiError> {
        let request = self.unary(caller, ListBackupsRequest { instance_id })?;
        let response = self
            .client
            .clone()
            .list_backups(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner().backups)
    }

    pub async fn restore_backup(
        &self,
        caller: &Caller,
        request: RestoreBackupRequest,
    ) -> Result<RestoreBackupResponse, ApiError> {
        let request = self.slow_request(caller, request)?;
        let response = self
            .slow
            .clone()
            .restore_backup(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner())
    }

    pub async fn delete_backup(
        &self,
        caller: &Caller,
        instance_id: String,
        backup_id: String,
    ) -> Result<(), ApiError> {
        let request = self.unary(
            caller,
            DeleteBackupRequest {
                instance_id,
                backup_id,
            },
        )?;
        self.client
            .clone()
            .delete_backup(request)
            .await
            .map_err(upstream)?;
        Ok(())
    }
}
