//! `/api/instances/{userId}/{telegram,whatsapp,pairing}/...`: the manager's channel
//! routes (SPEC §3), each one ChannelService call.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
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

use super::with_json_405;
use crate::{
    channels::CHANNEL_CALL_DEADLINE,
    error::ApiError,
    extract::{ApiJson, ApiQuery, InstanceId, OptionalApiJson, parse_flag},
    state::EdgeState,
};

/// Default waits of the original manager's WhatsApp routes.
const DEFAULT_QR_TIMEOUT_MS: u32 = 30_000;
const DEFAULT_WAIT_TIMEOUT_MS: u32 = 120_000;
/// Extra time beyond a login step's own timeout.
const LOGIN_SLACK: Duration = Duration::from_secs(15);

pub fn routes() -> Router<EdgeState> {
    Router::new()
        .route(
            "/api/instances/{user_id}/telegram/setup",
            with_json_405(post(telegram_setup)),
        )
        .route(
            "/api/instances/{user_id}/telegram/status",
            with_json_405(get(telegram_status)),
        )
        .route(
            "/api/instances/{user_id}/telegram/logout",
            with_json_405(post(telegram_logout)),
        )
        .route(
            "/api/instances/{user_id}/whatsapp/qr",
            with_json_405(post(whatsapp_qr)),
        )
        .route(
            "/api/instances/{user_id}/whatsapp/wait",
            with_json_405(post(whatsapp_wait)),
        )
        .route(
            "/api/instances/{user_id}/whatsapp/status",
            with_json_405(get(whatsapp_status)),
        )
        .route(
            "/api/instances/{user_id}/pairing/list",
            with_json_405(get(pairing_list)),
        )
        .route(
            "/api/instances/{user_id}/pairing/approve",
            with_json_405(post(pairing_approve)),
        )
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SetupBody {
    bot_token: String,
    #[serde(default)]
    account_id: Option<String>,
}

async fn telegram_setup(
    State(state): State<EdgeState>,
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
        .setup_telegram(request, CHANNEL_CALL_DEADLINE)
        .await?;
    Ok(Json(
        json!({"ok": response.ok, "config": struct_json(response.config)}),
    ))
}

#[derive(Deserialize, Default)]
struct ProbeQuery {
    probe: Option<String>,
}

async fn telegram_status(
    State(state): State<EdgeState>,
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
        .get_telegram_status(request, CHANNEL_CALL_DEADLINE)
        .await?;
    Ok(Json(
        json!({"userId": instance_id, "telegram": struct_json(response.telegram), "accounts": list_json(response.accounts)}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LogoutBody {
    #[serde(default)]
    account_id: Option<String>,
}

async fn telegram_logout(
    State(state): State<EdgeState>,
    InstanceId(instance_id): InstanceId,
    OptionalApiJson(body): OptionalApiJson<LogoutBody>,
) -> Result<Json<Value>, ApiError> {
    let request = LogoutTelegramRequest {
        instance_id,
        account_id: body.account_id.unwrap_or_default(),
    };
    let response = state
        .channels()
        .logout_telegram(request, CHANNEL_CALL_DEADLINE)
        .await?;
    Ok(Json(
        json!({"channel": "telegram", "cleared": response.cleared, "loggedOut": response.logged_out}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct QrBody {
    #[serde(default)]
    force: bool,
    #[serde(default)]
    timeout_ms: Option<u32>,
}

async fn whatsapp_qr(
    State(state): State<EdgeState>,
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
        .start_whats_app_login(request, deadline)
        .await?;
    let mut answer = json!({"qrDataUrl": response.qr_data_url, "connected": response.connected});
    if !response.message.is_empty() {
        answer["message"] = json!(response.message);
    }
    Ok(Json(answer))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WaitBody {
    #[serde(default)]
    timeout_ms: Option<u32>,
    #[serde(default)]
    current_qr_data_url: Option<String>,
}

async fn whatsapp_wait(
    State(state): State<EdgeState>,
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
        .wait_whats_app_login(request, deadline)
        .await?;
    let mut answer = json!({"connected": response.connected, "message": response.message});
    if !response.qr_data_url.is_empty() {
        answer["qrDataUrl"] = json!(response.qr_data_url);
    }
    Ok(Json(answer))
}

async fn whatsapp_status(
    State(state): State<EdgeState>,
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
        .get_whats_app_status(request, CHANNEL_CALL_DEADLINE)
        .await?;
    Ok(Json(
        json!({"userId": instance_id, "whatsapp": struct_json(response.whatsapp), "accounts": list_json(response.accounts)}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairingQuery {
    channel: Option<String>,
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

async fn pairing_list(
    State(state): State<EdgeState>,
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
        .list_pairing_requests(request, CHANNEL_CALL_DEADLINE)
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApproveBody {
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

async fn pairing_approve(
    State(state): State<EdgeState>,
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
        .approve_pairing(request, CHANNEL_CALL_DEADLINE)
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
