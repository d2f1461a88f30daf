//! The App API's instance routes (SPEC §2): the same operations as the manager API,
//! for the app user the access token names. Services enforce ownership, so another
//! user's instance is 404 on every route; creating is held to the plan in the token.

use std::collections::HashMap;

use axum::{Json, extract::State, response::Response};
use clawfleet_contracts::lifecycle::v1::CreateInstanceRequest;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    channels::{
        self, ApproveBody, LogoutBody, PairingQuery, ProbeQuery, QrBody, SetupBody, WaitBody,
    },
    instances::{self, DeleteQuery, ListQuery},
    rpc::{self, RpcBody},
    with_json_405,
};
use crate::{
    error::ApiError,
    extract::{ApiJson, ApiQuery, InstanceId, OptionalApiJson},
    openapi::schemas::{
        DeletedJson, ErrorResponses, InstanceJson, InstanceListJson, PairingApprovedJson,
        PairingListJson, TelegramLogoutJson, TelegramSetupJson, TelegramStatusJson, WhatsAppQrJson,
        WhatsAppStatusJson, WhatsAppWaitJson,
    },
    principal::{AppUserPlan, Principal},
    state::EdgeState,
};

/// Gateway methods an app user may call through `/instances/{id}/rpc`: reads and the
/// channel operations the app drives. Configuration writes, logs (which may carry
/// secrets), agent runs and everything else stay operator-only.
pub const APP_RPC_METHODS: &[&str] = &[
    "status",
    "health",
    "channels.status",
    "channels.logout",
    "channels.pairing.list",
    "web.login.start",
    "web.login.wait",
    "models.list",
    "agents.list",
    "agent.identity.get",
    "skills.status",
    "tools.catalog",
    "sessions.list",
    "sessions.preview",
    "usage.status",
    "usage.cost",
    "cron.list",
    "cron.status",
    "last-heartbeat",
];

/// Instance routes answered within the handler timeout.
pub fn instance_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(create_instance, list_instances)))
        .routes(with_json_405(routes!(get_instance, delete_instance)))
}

/// Routes that wait on a gateway (their own deadlines).
pub fn gateway_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(telegram_setup)))
        .routes(with_json_405(routes!(telegram_status)))
        .routes(with_json_405(routes!(telegram_logout)))
        .routes(with_json_405(routes!(whatsapp_qr)))
        .routes(with_json_405(routes!(whatsapp_wait)))
        .routes(with_json_405(routes!(whatsapp_status)))
        .routes(with_json_405(routes!(pairing_list)))
        .routes(with_json_405(routes!(pairing_approve)))
        .routes(with_json_405(routes!(call_gateway)))
}

/// What the app may set on a new instance; the id is generated and the plan is the user's.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppCreateBody {
    /// Provider API keys for the gateway, e.g. `ANTHROPIC_API_KEY`.
    #[serde(default)]
    secrets: Option<HashMap<String, String>>,
    /// The default model, e.g. `anthropic/claude-sonnet-4-5`.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._/:@-]*$", max_length = 200)]
    model: Option<String>,
}

/// Creates my instance (within my plan's quota) and starts its gateway.
#[utoipa::path(operation_id = "app_create_instance", post, path = "/instances", tag = "app", security(("accessToken" = [])),
    request_body(content = Option<AppCreateBody>),
    responses((status = 201, description = "created", body = InstanceJson), ErrorResponses))]
async fn create_instance(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    AppUserPlan(plan): AppUserPlan,
    OptionalApiJson(body): OptionalApiJson<AppCreateBody>,
) -> Result<Response, ApiError> {
    let request = CreateInstanceRequest {
        // The lifecycle service generates the id and makes the caller the owner.
        id: String::new(),
        owner: String::new(),
        plan: plan as i32,
        secrets: body.secrets.unwrap_or_default(),
        model: body.model.unwrap_or_default(),
    };
    instances::created(&state, &caller, request).await
}

/// My instances.
#[utoipa::path(operation_id = "app_list_instances", get, path = "/instances", tag = "app", security(("accessToken" = [])),
    params(ListQuery), responses((status = 200, body = InstanceListJson), ErrorResponses))]
async fn list_instances(
    state: State<EdgeState>,
    principal: Principal,
    query: ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    instances::list_instances(state, principal, query).await
}

/// One of my instances with its phase.
#[utoipa::path(operation_id = "app_get_instance", get, path = "/instances/{id}", tag = "app", security(("accessToken" = [])),
    params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)),
    responses((status = 200, body = InstanceJson), ErrorResponses))]
async fn get_instance(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
) -> Result<Response, ApiError> {
    instances::get_instance(state, principal, id).await
}

/// Deletes one of my instances; its data is kept unless `preservePvc=false`.
#[utoipa::path(operation_id = "app_delete_instance", delete, path = "/instances/{id}", tag = "app", security(("accessToken" = [])),
    params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40), DeleteQuery),
    responses((status = 200, body = DeletedJson), ErrorResponses))]
async fn delete_instance(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    query: ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    instances::delete_instance(state, principal, id, query).await
}

/// Sets the Telegram bot token (never echoed).
#[utoipa::path(operation_id = "app_telegram_setup", post, path = "/instances/{id}/telegram/setup", tag = "app",
    security(("accessToken" = [])), params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)),
    request_body = SetupBody,
    responses((status = 200, body = TelegramSetupJson), ErrorResponses))]
async fn telegram_setup(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    body: ApiJson<SetupBody>,
) -> Result<Json<Value>, ApiError> {
    channels::telegram_setup(state, principal, id, body).await
}

/// Telegram channel status; `probe=true` asks Telegram live.
#[utoipa::path(operation_id = "app_telegram_status", get, path = "/instances/{id}/telegram/status", tag = "app",
    security(("accessToken" = [])),
    params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40), ProbeQuery),
    responses((status = 200, body = TelegramStatusJson), ErrorResponses))]
async fn telegram_status(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    query: ApiQuery<ProbeQuery>,
) -> Result<Json<Value>, ApiError> {
    channels::telegram_status(state, principal, id, query).await
}

/// Disconnects Telegram and clears its stored credentials.
#[utoipa::path(operation_id = "app_telegram_logout", post, path = "/instances/{id}/telegram/logout", tag = "app",
    security(("accessToken" = [])), params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)),
    request_body(content = Option<LogoutBody>),
    responses((status = 200, body = TelegramLogoutJson), ErrorResponses))]
async fn telegram_logout(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    body: OptionalApiJson<LogoutBody>,
) -> Result<Json<Value>, ApiError> {
    channels::telegram_logout(state, principal, id, body).await
}

/// Starts linking WhatsApp; returns the QR code as a data URL.
#[utoipa::path(operation_id = "app_whatsapp_qr", post, path = "/instances/{id}/whatsapp/qr", tag = "app",
    security(("accessToken" = [])), params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)),
    request_body(content = Option<QrBody>),
    responses((status = 200, body = WhatsAppQrJson), ErrorResponses))]
async fn whatsapp_qr(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    body: OptionalApiJson<QrBody>,
) -> Result<Json<Value>, ApiError> {
    channels::whatsapp_qr(state, principal, id, body).await
}

/// Waits until WhatsApp is linked or the timeout passes.
#[utoipa::path(operation_id = "app_whatsapp_wait", post, path = "/instances/{id}/whatsapp/wait", tag = "app",
    security(("accessToken" = [])), params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)),
    request_body(content = Option<WaitBody>),
    responses((status = 200, body = WhatsAppWaitJson), ErrorResponses))]
async fn whatsapp_wait(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    body: OptionalApiJson<WaitBody>,
) -> Result<Json<Value>, ApiError> {
    channels::whatsapp_wait(state, principal, id, body).await
}

/// WhatsApp channel status.
#[utoipa::path(operation_id = "app_whatsapp_status", get, path = "/instances/{id}/whatsapp/status", tag = "app",
    security(("accessToken" = [])),
    params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40), ProbeQuery),
    responses((status = 200, body = WhatsAppStatusJson), ErrorResponses))]
async fn whatsapp_status(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    query: ApiQuery<ProbeQuery>,
) -> Result<Json<Value>, ApiError> {
    channels::whatsapp_status(state, principal, id, query).await
}

/// Pending DM pairing requests with the codes the bot sent.
#[utoipa::path(operation_id = "app_pairing_list", get, path = "/instances/{id}/pairing/list", tag = "app",
    security(("accessToken" = [])),
    params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40), PairingQuery),
    responses((status = 200, body = PairingListJson), ErrorResponses))]
async fn pairing_list(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    query: ApiQuery<PairingQuery>,
) -> Result<Json<Value>, ApiError> {
    channels::pairing_list(state, principal, id, query).await
}

/// Approves a DM pairing request by the code the bot sent.
#[utoipa::path(operation_id = "app_pairing_approve", post, path = "/instances/{id}/pairing/approve", tag = "app",
    security(("accessToken" = [])), params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)),
    request_body = ApproveBody,
    responses((status = 200, body = PairingApprovedJson), ErrorResponses))]
async fn pairing_approve(
    state: State<EdgeState>,
    principal: Principal,
    id: InstanceId,
    body: ApiJson<ApproveBody>,
) -> Result<Json<Value>, ApiError> {
    channels::pairing_approve(state, principal, id, body).await
}

/// A gateway RPC limited to read and channel methods (see the allow-list).
#[utoipa::path(operation_id = "app_call_gateway", post, path = "/instances/{id}/rpc", tag = "app", security(("accessToken" = [])),
    params(("id" = String, Path, description = "instance id", pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length = 40)), request_body = RpcBody,
    responses((status = 200, description = "the gateway's result", body = Object), ErrorResponses))]
async fn call_gateway(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
    ApiJson(body): ApiJson<RpcBody>,
) -> Result<Response, ApiError> {
    if !APP_RPC_METHODS.contains(&body.method.as_str()) {
        return Err(ApiError::new(
            clawfleet_kit::error::ErrorCode::PermissionDenied,
            format!(
                "method {:?} is not available to apps; allowed: {}",
                body.method,
                APP_RPC_METHODS.join(", ")
            ),
        ));
    }
    rpc::forward(&state, &caller, id, body).await
}
