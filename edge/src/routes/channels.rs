//! `/api/instances/{userId}/{telegram,whatsapp,pairing}/...`: the manager's channel
//! routes (docs/product/manager-api.md#channels), each one ChannelService call.

use std::time::Duration;

use axum::{Json, extract::State};
use clawfleet_contracts::{
    channels::v1::{
        ApprovePairingRequest, GetTelegramStatusRequest, GetWhatsAppStatusRequest,
        ListPairingRequestsRequest, LogoutTelegramRequest, PairingRequest, SetupTelegramRequest,
        StartWhatsAppLoginRequest, WaitWhatsAppLoginRequest, approve_pairing_request::Target,
    },
    json::struct_to_json,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::with_json_405;
use crate::{
    channels::CHANNEL_CALL_DEADLINE,
    error::ApiError,
    extract::{ApiJson, ApiQuery, InstanceId, OptionalApiJson, optional_integer, parse_flag},
    openapi::schemas::{
        ErrorResponses, ManagerInstancePath, PairingApprovedJson, PairingListJson,
        TelegramLogoutJson, TelegramSetupJson, TelegramStatusJson, WhatsAppQrJson,
        WhatsAppStatusJson, WhatsAppWaitJson, login_timeout_schema, pairing_approve_schema,
    },
    principal::Principal,
    state::EdgeState,
};

/// Default waits of the original manager's WhatsApp routes.
const DEFAULT_QR_TIMEOUT_MS: u32 = 30_000;
const DEFAULT_WAIT_TIMEOUT_MS: u32 = 120_000;
/// Extra time beyond a login step's own timeout.
const LOGIN_SLACK: Duration = Duration::from_secs(15);

pub fn routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(telegram_setup)))
        .routes(with_json_405(routes!(telegram_status)))
        .routes(with_json_405(routes!(telegram_logout)))
        .routes(with_json_405(routes!(whatsapp_qr)))
        .routes(with_json_405(routes!(whatsapp_wait)))
        .routes(with_json_405(routes!(whatsapp_status)))
        .routes(with_json_405(routes!(pairing_list)))
        .routes(with_json_405(routes!(pairing_approve)))
}

fn list_json(list: Option<prost_types::ListValue>) -> Value {
    let values = list.map(|list| list.values).unwrap_or_default();
    Value::Array(
        values
            .into_iter()
            .map(clawfleet_contracts::json::value_to_json)
            .collect(),
    )
}

fn struct_json(structure: Option<prost_types::Struct>) -> Value {
    structure.map(struct_to_json).unwrap_or_else(|| json!({}))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SetupBody {
    /// The token @BotFather issued: `<bot id>:<secret>`.
    #[schema(pattern = r"^[0-9]{1,20}:[A-Za-z0-9_-]{30,128}$")]
    bot_token: String,
    /// The channel account; empty or left out means the default account.
    #[serde(default)]
    #[schema(pattern = r"^([A-Za-z0-9_][A-Za-z0-9_-]{0,63})?$")]
    account_id: Option<String>,
}

/// Sets the Telegram bot token (never echoed); retried once on a stale config.
#[utoipa::path(post, path = "/api/instances/{userId}/telegram/setup", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    request_body = SetupBody,
    responses((status = 200, body = TelegramSetupJson), ErrorResponses))]
pub(super) async fn telegram_setup(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    ApiJson(body): ApiJson<SetupBody>,
) -> Result<Json<Value>, ApiError> {
    let request = SetupTelegramRequest {
        instance_id,
        bot_token: body.bot_token,
        account_id: body.account_id.unwrap_or_default(),
    };
    let response = state
        .channels()
        .setup_telegram(&caller, request, CHANNEL_CALL_DEADLINE)
        .await?;
    Ok(Json(
        json!({"ok": response.ok, "config": struct_json(response.config)}),
    ))
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ProbeQuery {
    /// Ask the channel live (slower).
    #[param(value_type = Option<bool>)]
    probe: Option<String>,
}

/// Telegram channel status; `probe=true` asks Telegram live.
#[utoipa::path(get, path = "/api/instances/{userId}/telegram/status", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath, ProbeQuery),
    responses((status = 200, body = TelegramStatusJson), ErrorResponses))]
pub(super) async fn telegram_status(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    ApiQuery(query): ApiQuery<ProbeQuery>,
) -> Result<Json<Value>, ApiError> {
    let probe = parse_flag("probe", query.probe.as_deref(), false)?;
    let request = GetTelegramStatusRequest {
        instance_id: instance_id.clone(),
        probe,
    };
    let response = state
        .channels()
        .get_telegram_status(&caller, request, CHANNEL_CALL_DEADLINE)
        .await?;
    Ok(Json(
        json!({"userId": instance_id, "telegram": struct_json(response.telegram), "accounts": list_json(response.accounts)}),
    ))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct LogoutBody {
    /// The channel account; empty or left out means the default account.
    #[serde(default)]
    #[schema(pattern = r"^([A-Za-z0-9_][A-Za-z0-9_-]{0,63})?$")]
    account_id: Option<String>,
}

/// Disconnects Telegram and clears its stored credentials.
#[utoipa::path(post, path = "/api/instances/{userId}/telegram/logout", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    request_body(content = Option<LogoutBody>),
    responses((status = 200, body = TelegramLogoutJson), ErrorResponses))]
pub(super) async fn telegram_logout(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    OptionalApiJson(body): OptionalApiJson<LogoutBody>,
) -> Result<Json<Value>, ApiError> {
    let request = LogoutTelegramRequest {
        instance_id,
        account_id: body.account_id.unwrap_or_default(),
    };
    let response = state
        .channels()
        .logout_telegram(&caller, request, CHANNEL_CALL_DEADLINE)
        .await?;
    Ok(Json(
        json!({"channel": "telegram", "cleared": response.cleared, "loggedOut": response.logged_out}),
    ))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct QrBody {
    #[serde(default)]
    force: bool,
    /// How long to wait for the QR code, in milliseconds (held to 1 s to 5 min).
    #[serde(default, deserialize_with = "optional_integer")]
    #[schema(schema_with = login_timeout_schema)]
    timeout_ms: Option<u32>,
}

/// Starts linking WhatsApp; returns the QR code as a data URL.
#[utoipa::path(post, path = "/api/instances/{userId}/whatsapp/qr", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    request_body(content = Option<QrBody>),
    responses((status = 200, body = WhatsAppQrJson), ErrorResponses))]
pub(super) async fn whatsapp_qr(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    OptionalApiJson(body): OptionalApiJson<QrBody>,
) -> Result<Json<Value>, ApiError> {
    let timeout_ms = body.timeout_ms.unwrap_or(DEFAULT_QR_TIMEOUT_MS);
    let request = StartWhatsAppLoginRequest {
        instance_id,
        force: body.force,
        timeout_ms,
    };
    let deadline = Duration::from_millis(u64::from(timeout_ms)) + LOGIN_SLACK;
    let response = state
        .channels()
        .start_whats_app_login(&caller, request, deadline)
        .await?;
    let mut answer = json!({"qrDataUrl": response.qr_data_url, "connected": response.connected});
    if !response.message.is_empty() {
        answer["message"] = json!(response.message);
    }
    Ok(Json(answer))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct WaitBody {
    /// How long to wait for the link, in milliseconds (held to 1 s to 5 min).
    #[serde(default, deserialize_with = "optional_integer")]
    #[schema(schema_with = login_timeout_schema)]
    timeout_ms: Option<u32>,
    #[serde(default)]
    current_qr_data_url: Option<String>,
}

/// Waits until WhatsApp is linked or the timeout passes.
#[utoipa::path(post, path = "/api/instances/{userId}/whatsapp/wait", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    request_body(content = Option<WaitBody>),
    responses((status = 200, body = WhatsAppWaitJson), ErrorResponses))]
pub(super) async fn whatsapp_wait(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    OptionalApiJson(body): OptionalApiJson<WaitBody>,
) -> Result<Json<Value>, ApiError> {
    let timeout_ms = body.timeout_ms.unwrap_or(DEFAULT_WAIT_TIMEOUT_MS);
    let request = WaitWhatsAppLoginRequest {
        instance_id,
        timeout_ms,
        current_qr_data_url: body.current_qr_data_url.unwrap_or_default(),
    };
    let deadline = Duration::from_millis(u64::from(timeout_ms)) + LOGIN_SLACK;
    let response = state
        .channels()
        .wait_whats_app_login(&caller, request, deadline)
        .await?;
    let mut answer = json!({"connected": response.connected, "message": response.message});
    if !response.qr_data_url.is_empty() {
        answer["qrDataUrl"] = json!(response.qr_data_url);
    }
    Ok(Json(answer))
}

/// WhatsApp channel status.
#[utoipa::path(get, path = "/api/instances/{userId}/whatsapp/status", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath, ProbeQuery),
    responses((status = 200, body = WhatsAppStatusJson), ErrorResponses))]
pub(super) async fn whatsapp_status(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    ApiQuery(query): ApiQuery<ProbeQuery>,
) -> Result<Json<Value>, ApiError> {
    let probe = parse_flag("probe", query.probe.as_deref(), false)?;
    let request = GetWhatsAppStatusRequest {
        instance_id: instance_id.clone(),
        probe,
    };
    let response = state
        .channels()
        .get_whats_app_status(&caller, request, CHANNEL_CALL_DEADLINE)
        .await?;
    Ok(Json(
        json!({"userId": instance_id, "whatsapp": struct_json(response.whatsapp), "accounts": list_json(response.accounts)}),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct PairingQuery {
    /// The channel, e.g. `telegram`.
    #[param(required = true, value_type = String, pattern = r"^[a-z0-9][a-z0-9-]{0,31}$")]
    channel: Option<String>,
    /// The channel account; empty or left out means the default account.
    #[param(pattern = r"^([A-Za-z0-9_][A-Za-z0-9_-]{0,63})?$")]
    account_id: Option<String>,
}

fn pairing_request_json(request: PairingRequest) -> Value {
    json!({
        "id": request.id,
        "code": request.code,
        "channel": request.channel,
        "accountId": request.account_id,
        "senderId": request.sender_id,
        "metadata": struct_json(request.metadata),
        "createdAt": request.created_at,
        "expiresAt": request.expires_at,
    })
}

/// Pending DM pairing requests with the codes the bot sent.
#[utoipa::path(get, path = "/api/instances/{userId}/pairing/list", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath, PairingQuery),
    responses((status = 200, body = PairingListJson), ErrorResponses))]
pub(super) async fn pairing_list(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    ApiQuery(query): ApiQuery<PairingQuery>,
) -> Result<Json<Value>, ApiError> {
    let channel = query
        .channel
        .ok_or_else(|| ApiError::invalid_argument("channel is required, e.g. ?channel=telegram"))?;
    let request = ListPairingRequestsRequest {
        instance_id,
        channel,
        account_id: query.account_id.unwrap_or_default(),
    };
    let response = state
        .channels()
        .list_pairing_requests(&caller, request, CHANNEL_CALL_DEADLINE)
        .await?;
    let requests: Vec<Value> = response
        .requests
        .into_iter()
        .map(pairing_request_json)
        .collect();
    Ok(Json(
        json!({"channel": response.channel, "requests": requests}),
    ))
}

/// See [`pairing_approve_schema`] for the shapes the document gives.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ApproveBody {
    channel: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    notify: bool,
    #[serde(default)]
    account_id: Option<String>,
}

impl utoipa::PartialSchema for ApproveBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        pairing_approve_schema()
    }
}

impl ToSchema for ApproveBody {}

/// Approves a DM pairing request by code or request id.
#[utoipa::path(post, path = "/api/instances/{userId}/pairing/approve", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    request_body = ApproveBody,
    responses((status = 200, body = PairingApprovedJson), ErrorResponses))]
pub(super) async fn pairing_approve(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    ApiJson(body): ApiJson<ApproveBody>,
) -> Result<Json<Value>, ApiError> {
    let target = match (body.code, body.request_id) {
        (Some(code), None) => Target::Code(code),
        (None, Some(request_id)) => Target::RequestId(request_id),
        _ => {
            return Err(ApiError::invalid_argument(
                "give exactly one of code and requestId",
            ));
        }
    };
    let channel = body.channel.clone();
    let request = ApprovePairingRequest {
        instance_id,
        channel: body.channel,
        account_id: body.account_id.unwrap_or_default(),
        notify: body.notify,
        target: Some(target),
    };
    let response = state
        .channels()
        .approve_pairing(&caller, request, CHANNEL_CALL_DEADLINE)
        .await?;
    let mut answer = json!({"approved": response.approved, "channel": channel});
    for (key, value) in [
        ("requestId", response.request_id),
        ("senderId", response.sender_id),
        ("notification", response.notification),
    ] {
        if !value.is_empty() {
            answer[key] = json!(value);
        }
    }
    Ok(Json(answer))
}
