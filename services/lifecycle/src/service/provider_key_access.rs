//! SetOwnerPlan, RotateProviderKey and GetInstanceUsage: the gRPC face of
//! [`crate::provider_keys`] (docs/product/provider-keys.md).

use std::sync::Arc;

use clawfleet_contracts::lifecycle::v1::{
    GetInstanceUsageRequest, GetInstanceUsageResponse, RotateProviderKeyRequest,
    RotateProviderKeyResponse, SetOwnerPlanRequest, SetOwnerPlanResponse,
};
use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    identity::Role,
    secret::ExposeSecret,
};
use tonic::{Request, Response, Status};

use super::{Lifecycle, errors::caller_of, store_error};
use crate::{
    model::Plan,
    provider_keys::{KEY_SECRET, errors::provider_error},
    validation::validate_owner,
};

pub(super) async fn set_owner_plan(
    lifecycle: &Arc<Lifecycle>,
    request: Request<SetOwnerPlanRequest>,
) -> Result<Response<SetOwnerPlanResponse>, Status> {
    let caller = caller_of(&request)?;
    // A user's plan is set by subscriptions and operators, never by the user.
    if caller.role == Role::App {
        return Err(ServiceError::new(
            ErrorCode::PermissionDenied,
            "plans are set by subscriptions and operators",
        )
        .into());
    }
    let body = request.into_inner();
    if body.owner.is_empty() {
        return Err(ServiceError::invalid_argument("owner is required").into());
    }
    validate_owner(&body.owner)?;
    let plan = Plan::from_proto(body.plan).map_err(ServiceError::from)?;
    let instances = lifecycle
        .set_owner_plan(&body.owner, plan, body.subscription_active)
        .await?;
    Ok(Response::new(SetOwnerPlanResponse { instances }))
}

pub(super) async fn rotate_provider_key(
    lifecycle: &Arc<Lifecycle>,
    request: Request<RotateProviderKeyRequest>,
) -> Result<Response<RotateProviderKeyResponse>, Status> {
    let caller = caller_of(&request)?;
    let record = lifecycle
        .live_record(&caller, &request.get_ref().id)
        .await?;
    let instances_updated = lifecycle.rotate_owner_key(&record.owner).await?;
    let current = lifecycle.registry.get(&record.id).unwrap_or(record);
    Ok(Response::new(RotateProviderKeyResponse {
        instance: Some(lifecycle.view(&current)),
        instances_updated,
    }))
}

pub(super) async fn get_instance_usage(
    lifecycle: &Arc<Lifecycle>,
    request: Request<GetInstanceUsageRequest>,
) -> Result<Response<GetInstanceUsageResponse>, Status> {
    let caller = caller_of(&request)?;
    let record = lifecycle
        .visible_record(&caller, &request.get_ref().id)
        .await?;
    let (Some(client), Some(key)) = (
        lifecycle.provider_keys.client(),
        lifecycle
            .registry
            .store()
            .owner_key(&record.owner)
            .await
            .map_err(store_error)?,
    ) else {
        return Ok(Response::new(GetInstanceUsageResponse::default()));
    };
    // The owner's key counts only if this instance uses it (not a key of their own).
    let uses_platform_key = record
        .secrets
        .get(KEY_SECRET)
        .is_some_and(|value| value == key.value.expose_secret());
    if !uses_platform_key {
        return Ok(Response::new(GetInstanceUsageResponse::default()));
    }
    let info = client
        .get(&key.hash)
        .await
        .map_err(|error| provider_error("reading your AI usage", error))?;
    let (limit_usd, unlimited) = match info.limit {
        Some(limit) => (limit, false),
        None => (0.0, true),
    };
    let percent = if unlimited || limit_usd <= 0.0 {
        0.0
    } else {
        info.usage / limit_usd * 100.0
    };
    Ok(Response::new(GetInstanceUsageResponse {
        platform_key: true,
        usage_usd: info.usage,
        limit_usd,
        unlimited,
        disabled: info.disabled,
        percent,
    }))
}
