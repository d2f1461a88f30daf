//! Key rotation and usage of an instance, for operators (`/api/instances/{userId}/...`)
//! and app users (`/instances/{id}/...`); docs/product/provider-keys.md.
//!
//! Usage joins two sources: the key's spend and limit from the lifecycle (which asks
//! OpenRouter), and the gateway's own figures through the bridge. The app user's call
//! asks the gateway for `usage.cost` only (the app allow-list); `usage.status`, which
//! names the provider accounts behind the gateway, is added for operators.

use std::{collections::BTreeMap, time::Duration};

use axum::{Json, extract::State};
use clawfleet_kit::identity::{Caller, Role};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::with_json_405;
use crate::{
    bridge::RpcOutcome,
    error::ApiError,
    extract::InstanceId,
    openapi::schemas::{AppInstancePath, ErrorResponses, ManagerInstancePath},
    principal::Principal,
    state::EdgeState,
};

/// How long each gateway usage call may take; a stopped or slow gateway leaves the
/// key's figures standing with `gateway.error` saying why.
const GATEWAY_USAGE_DEADLINE: Duration = Duration::from_secs(5);

pub fn manager_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(manager_rotate_key)))
        .routes(with_json_405(routes!(manager_usage)))
}

pub fn app_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(app_rotate_key)))
        .routes(with_json_405(routes!(app_usage)))
}

/// The answer of a rotation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotatedJson {
    pub user_id: String,
    /// Always true: the old key is replaced (and deleted at the provider).
    pub rotated: bool,
    /// How many of the owner's instances received the new key (they share one key).
    pub instances_updated: u32,
}

/// The spend and limit of the key the instance uses.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsageJson {
    /// True when the platform provides the key; false for a key of the user's own
    /// (whose figures are not the platform's to read: the rest is then zero or null).
    pub platform_key: bool,
    pub usage_usd: f64,
    /// Null when the key has no limit.
    pub limit_usd: Option<f64>,
    /// True while the subscription is lapsed.
    pub disabled: bool,
    /// usage / limit in percent; null without a limit.
    pub percent: Option<f64>,
}

/// The gateway's own usage figures.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayUsageJson {
    /// The gateway's `usage.cost` answer.
    pub cost: Option<BTreeMap<String, Value>>,
    /// The gateway's `usage.status` answer (operators only).
    pub status: Option<BTreeMap<String, Value>>,
    /// Why a figure is missing (the gateway is stopped, unreachable or refused).
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageJson {
    pub user_id: String,
    pub key: KeyUsageJson,
    pub gateway: GatewayUsageJson,
}

/// Replaces the owner's platform-provided AI key in all their instances.
#[utoipa::path(post, path = "/api/instances/{userId}/keys/rotate", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    responses((status = 200, body = KeyRotatedJson), ErrorResponses))]
async fn manager_rotate_key(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
) -> Result<Json<KeyRotatedJson>, ApiError> {
    rotate_key(state, principal, id).await
}

/// Replaces my platform-provided AI key (in all my instances).
#[utoipa::path(post, path = "/instances/{id}/keys/rotate", operation_id = "app_rotate_key",
    tag = "app", security(("accessToken" = [])), params(AppInstancePath),
    responses((status = 200, body = KeyRotatedJson), ErrorResponses))]
async fn app_rotate_key(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
) -> Result<Json<KeyRotatedJson>, ApiError> {
    rotate_key(state, principal, id).await
}

/// The instance's AI spend and limit, and the gateway's own usage figures.
#[utoipa::path(get, path = "/api/instances/{userId}/usage", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    responses((status = 200, body = UsageJson), ErrorResponses))]
async fn manager_usage(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
) -> Result<Json<UsageJson>, ApiError> {
    usage(state, principal, id).await
}

/// My instance's AI spend and limit, and the gateway's own cost figures.
#[utoipa::path(get, path = "/instances/{id}/usage", operation_id = "app_usage",
    tag = "app", security(("accessToken" = [])), params(AppInstancePath),
    responses((status = 200, body = UsageJson), ErrorResponses))]
async fn app_usage(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
) -> Result<Json<UsageJson>, ApiError> {
    usage(state, principal, id).await
}

async fn rotate_key(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Json<KeyRotatedJson>, ApiError> {
    let rotated = state
        .lifecycle()
        .rotate_provider_key(&caller, id.clone())
        .await?;
    if let Some(instance) = &rotated.instance {
        state.instances().remember(instance);
    }
    Ok(Json(KeyRotatedJson {
        user_id: id,
        rotated: true,
        instances_updated: rotated.instances_updated,
    }))
}

async fn usage(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Json<UsageJson>, ApiError> {
    let key = state
        .lifecycle()
        .instance_usage(&caller, id.clone())
        .await?;
    let mut gateway = GatewayUsageJson {
        cost: None,
        status: None,
        error: None,
    };
    match gateway_figures(&state, &caller, &id, "usage.cost").await {
        Ok(cost) => gateway.cost = Some(cost),
        Err(error) => gateway.error = Some(error),
    }
    if caller.role == Role::Operator && gateway.error.is_none() {
        match gateway_figures(&state, &caller, &id, "usage.status").await {
            Ok(status) => gateway.status = Some(status),
            Err(error) => gateway.error = Some(error),
        }
    }
    let limited = key.platform_key && !key.unlimited;
    Ok(Json(UsageJson {
        user_id: id,
        key: KeyUsageJson {
            platform_key: key.platform_key,
            usage_usd: key.usage_usd,
            limit_usd: limited.then_some(key.limit_usd),
            disabled: key.disabled,
            percent: limited.then_some(key.percent),
        },
        gateway,
    }))
}

/// One gateway usage method's answer as an object, or why there is none.
async fn gateway_figures(
    state: &EdgeState,
    caller: &Caller,
    id: &str,
    method: &str,
) -> Result<BTreeMap<String, Value>, String> {
    let outcome = state
        .bridge()
        .call(
            caller,
            id.to_owned(),
            method.to_owned(),
            serde_json::Map::new(),
            GATEWAY_USAGE_DEADLINE,
        )
        .await
        .map_err(|error| format!("{method}: {}", error.message))?;
    match outcome {
        RpcOutcome::Result(Value::Object(object)) => Ok(object.into_iter().collect()),
        RpcOutcome::Result(other) => Ok([("value".to_owned(), other)].into()),
        RpcOutcome::GatewayError(error) => Err(format!("{method}: {}", error.message)),
    }
}
