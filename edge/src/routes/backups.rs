//! Backup routes (docs/product/backups.md#routes): list, create now, restore (into the same
//! instance or a clone) and delete, for operators under `/api/instances/{userId}/backups`
//! and for app users under `/instances/{id}/backups` (their own instances only; the
//! lifecycle enforces ownership).

use axum::{
    Json,
    extract::{FromRequestParts, Path, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use clawfleet_contracts::lifecycle::v1::{Backup, RestoreBackupRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::with_json_405;
use crate::{
    error::ApiError,
    extract::{InstanceId, OptionalApiJson},
    openapi::schemas::{AppInstancePath, ErrorResponses, ManagerInstancePath},
    principal::Principal,
    state::EdgeState,
};

/// Operator routes (API key).
pub fn manager_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(list_backups, create_backup)))
        .routes(with_json_405(routes!(delete_backup)))
        .routes(with_json_405(routes!(restore_backup)))
}

/// App routes (access token).
pub fn app_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(app_list_backups, app_create_backup)))
        .routes(with_json_405(routes!(app_delete_backup)))
        .routes(with_json_405(routes!(app_restore_backup)))
}

/// One backup, from its manifest.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupJson {
    backup_id: String,
    user_id: String,
    gateway_version: String,
    /// `manual`, `scheduled`, `before_purge` or `before_upgrade`.
    reason: String,
    /// RFC 3339, UTC.
    created_at: String,
    archive_bytes: u64,
    state_bytes: u64,
    archive_sha256: String,
}

impl From<Backup> for BackupJson {
    fn from(backup: Backup) -> Self {
        Self {
            backup_id: backup.backup_id,
            user_id: backup.instance_id,
            gateway_version: backup.gateway_version,
            reason: backup.reason,
            created_at: backup.created_at,
            archive_bytes: backup.archive_bytes,
            state_bytes: backup.state_bytes,
            archive_sha256: backup.archive_sha256,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BackupListJson {
    /// Oldest first.
    backups: Vec<BackupJson>,
}

/// Where to restore: empty for the instance itself, or another instance (a clone).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestoreBody {
    #[serde(default)]
    #[schema(pattern = "^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$", max_length = 40)]
    target_user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoredJson {
    /// The instance whose state was replaced.
    user_id: String,
    backup: BackupJson,
}

#[derive(Serialize, ToSchema)]
pub struct BackupDeletedJson {
    deleted: bool,
}

/// `{userId}` (or `{id}`) and `{backupId}` from the path, both checked.
pub struct BackupPath {
    instance_id: String,
    backup_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for BackupPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((instance, backup_id)) =
            Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::invalid_argument("the path is not valid utf-8"))?;
        let instance_id = clawfleet_kit::instance_id::InstanceId::parse(&instance)
            .map_err(|error| ApiError::from(clawfleet_kit::error::ServiceError::from(error)))?
            .into_string();
        if !clawfleet_kit::backup_id::is_backup_id(&backup_id) {
            return Err(ApiError::invalid_argument(format!(
                "{backup_id:?} is not a backup id (like 20261207T231500Z-1a2b3c)"
            )));
        }
        Ok(Self {
            instance_id,
            backup_id,
        })
    }
}

/// The `{backupId}` path parameter (documentation).
#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
#[allow(dead_code)] // read by the OpenAPI derive only
struct BackupIdParam {
    /// A backup id, like `20261207T231500Z-1a2b3c`.
    #[param(pattern = "^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")]
    backup_id: String,
}

async fn list(
    state: &EdgeState,
    caller: &clawfleet_kit::identity::Caller,
    id: String,
) -> Result<Response, ApiError> {
    let backups = state.lifecycle().list_backups(caller, id).await?;
    let body = BackupListJson {
        backups: backups.into_iter().map(BackupJson::from).collect(),
    };
    Ok(Json(body).into_response())
}

async fn create(
    state: &EdgeState,
    caller: &clawfleet_kit::identity::Caller,
    id: String,
) -> Result<Response, ApiError> {
    let backup = state.lifecycle().create_backup(caller, id).await?;
    Ok((StatusCode::CREATED, Json(BackupJson::from(backup))).into_response())
}

async fn restore(
    state: &EdgeState,
    caller: &clawfleet_kit::identity::Caller,
    path: BackupPath,
    body: RestoreBody,
) -> Result<Response, ApiError> {
    let target = match body.target_user_id {
        Some(target) => clawfleet_kit::instance_id::InstanceId::parse(&target)
            .map_err(|error| ApiError::from(clawfleet_kit::error::ServiceError::from(error)))?
            .into_string(),
        None => String::new(),
    };
    let restored = state
        .lifecycle()
        .restore_backup(
            caller,
            RestoreBackupRequest {
                instance_id: path.instance_id,
                backup_id: path.backup_id,
                target_instance_id: target,
            },
        )
        .await?;
    let backup = restored
        .backup
        .ok_or_else(|| ApiError::internal("lifecycle service answered without a backup"))?;
    Ok(Json(RestoredJson {
        user_id: restored.instance_id,
        backup: backup.into(),
    })
    .into_response())
}

async fn delete(
    state: &EdgeState,
    caller: &clawfleet_kit::identity::Caller,
    path: BackupPath,
) -> Result<Response, ApiError> {
    state
        .lifecycle()
        .delete_backup(caller, path.instance_id, path.backup_id)
        .await?;
    Ok(Json(BackupDeletedJson { deleted: true }).into_response())
}

/// The instance's backups, oldest first.
#[utoipa::path(get, path = "/api/instances/{userId}/backups", tag = "manager", security(("apiKey" = [])),
    params(ManagerInstancePath), responses((status = 200, body = BackupListJson), ErrorResponses))]
async fn list_backups(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Response, ApiError> {
    list(&state, &caller, id).await
}

/// Takes a backup now (the gateway pauses while its state is archived).
#[utoipa::path(post, path = "/api/instances/{userId}/backups", tag = "manager", security(("apiKey" = [])),
    params(ManagerInstancePath), responses((status = 201, body = BackupJson), ErrorResponses))]
async fn create_backup(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Response, ApiError> {
    create(&state, &caller, id).await
}

/// Restores a backup into the instance, or into `targetUserId` (a clone).
#[utoipa::path(post, path = "/api/instances/{userId}/backups/{backupId}/restore", tag = "manager", security(("apiKey" = [])),
    params(ManagerInstancePath, BackupIdParam), request_body(content = Option<RestoreBody>),
    responses((status = 200, body = RestoredJson), ErrorResponses))]
async fn restore_backup(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    path: BackupPath,
    OptionalApiJson(body): OptionalApiJson<RestoreBody>,
) -> Result<Response, ApiError> {
    restore(&state, &caller, path, body).await
}

/// Deletes one backup.
#[utoipa::path(delete, path = "/api/instances/{userId}/backups/{backupId}", tag = "manager", security(("apiKey" = [])),
    params(ManagerInstancePath, BackupIdParam), responses((status = 200, body = BackupDeletedJson), ErrorResponses))]
async fn delete_backup(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    path: BackupPath,
) -> Result<Response, ApiError> {
    delete(&state, &caller, path).await
}

/// My instance's backups, oldest first.
#[utoipa::path(operation_id = "app_list_backups", get, path = "/instances/{id}/backups", tag = "app", security(("accessToken" = [])),
    params(AppInstancePath), responses((status = 200, body = BackupListJson), ErrorResponses))]
async fn app_list_backups(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Response, ApiError> {
    list(&state, &caller, id).await
}

/// Backs up my instance now (it pauses while its state is archived).
#[utoipa::path(operation_id = "app_create_backup", post, path = "/instances/{id}/backups", tag = "app", security(("accessToken" = [])),
    params(AppInstancePath), responses((status = 201, body = BackupJson), ErrorResponses))]
async fn app_create_backup(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Response, ApiError> {
    create(&state, &caller, id).await
}

/// Restores a backup into my instance, or into another of mine (`targetUserId`).
#[utoipa::path(operation_id = "app_restore_backup", post, path = "/instances/{id}/backups/{backupId}/restore", tag = "app", security(("accessToken" = [])),
    params(AppInstancePath, BackupIdParam), request_body(content = Option<RestoreBody>),
    responses((status = 200, body = RestoredJson), ErrorResponses))]
async fn app_restore_backup(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    path: BackupPath,
    OptionalApiJson(body): OptionalApiJson<RestoreBody>,
) -> Result<Response, ApiError> {
    restore(&state, &caller, path, body).await
}

/// Deletes one of my instance's backups.
#[utoipa::path(operation_id = "app_delete_backup", delete, path = "/instances/{id}/backups/{backupId}", tag = "app", security(("accessToken" = [])),
    params(AppInstancePath, BackupIdParam), responses((status = 200, body = BackupDeletedJson), ErrorResponses))]
async fn app_delete_backup(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    path: BackupPath,
) -> Result<Response, ApiError> {
    delete(&state, &caller, path).await
}
