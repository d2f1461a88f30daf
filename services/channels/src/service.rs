//! The ChannelService gRPC handlers.

use std::sync::Arc;

use clawfleet_contracts::{
    channels::v1::{
        ApprovePairingRequest, ApprovePairingResponse, GetTelegramStatusRequest,
        GetTelegramStatusResponse, GetWhatsAppStatusRequest, GetWhatsAppStatusResponse,
        ListPairingRequestsRequest, ListPairingRequestsResponse, LogoutTelegramRequest,
        LogoutTelegramResponse, SetupTelegramRequest, SetupTelegramResponse,
        StartWhatsAppLoginRequest, StartWhatsAppLoginResponse, WaitWhatsAppLoginRequest,
        WaitWhatsAppLoginResponse, approve_pairing_request::Target,
        channel_service_server::ChannelService,
    },
    json::{json_to_struct, json_to_value},
};
use clawfleet_kit::{error::ServiceError, identity::Caller, instance_id::InstanceId};
use prost_types::{ListValue, value::Kind};
use tonic::{Request, Response, Status};

use crate::{pairing, telegram, upstream::Upstream, whatsapp};

/// Shared state behind the handlers.
pub struct Channels {
    pub upstream: Upstream,
    /// Bot API base URL given to gateways (a loopback stand-in in tests; unset = Telegram's).
    pub telegram_api_root: Option<String>,
}

#[derive(Clone)]
pub struct ChannelServiceHandler {
    channels: Arc<Channels>,
}

impl ChannelServiceHandler {
    pub fn new(channels: Arc<Channels>) -> Self {
        Self { channels }
    }
}

/// Ids follow the platform's one rule, so channels refuses exactly what the lifecycle
/// refuses, with the same message.
fn instance_id(id: &str) -> Result<&str, ServiceError> {
    InstanceId::parse(id)?;
    Ok(id)
}

fn list_value(json: serde_json::Value) -> Option<ListValue> {
    match json_to_value(json).kind {
        Some(Kind::ListValue(list)) => Some(list),
        _ => Some(ListValue::default()),
    }
}

#[tonic::async_trait]
impl ChannelService for ChannelServiceHandler {
    async fn setup_telegram(
        &self,
        request: Request<SetupTelegramRequest>,
    ) -> Result<Response<SetupTelegramResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        let id = instance_id(&body.instance_id)?;
        let config = telegram::setup(
            &self.channels.upstream,
            &caller,
            id,
            &body.bot_token,
            &body.account_id,
            self.channels.telegram_api_root.as_deref(),
        )
        .await?;
        Ok(Response::new(SetupTelegramResponse {
            ok: true,
            config: Some(json_to_struct(config)),
        }))
    }

    async fn get_telegram_status(
        &self,
        request: Request<GetTelegramStatusRequest>,
    ) -> Result<Response<GetTelegramStatusResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        let (summary, accounts) = telegram::status(
            &self.channels.upstream,
            &caller,
            instance_id(&body.instance_id)?,
            body.probe,
        )
        .await?;
        Ok(Response::new(GetTelegramStatusResponse {
            telegram: Some(json_to_struct(summary)),
            accounts: list_value(accounts),
        }))
    }

    async fn logout_telegram(
        &self,
        request: Request<LogoutTelegramRequest>,
    ) -> Result<Response<LogoutTelegramResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        let (cleared, logged_out) = telegram::logout(
            &self.channels.upstream,
            &caller,
            instance_id(&body.instance_id)?,
            &body.account_id,
        )
        .await?;
        Ok(Response::new(LogoutTelegramResponse {
            cleared,
            logged_out,
        }))
    }

    async fn start_whats_app_login(
        &self,
        request: Request<StartWhatsAppLoginRequest>,
    ) -> Result<Response<StartWhatsAppLoginResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        let step = whatsapp::start_login(
            &self.channels.upstream,
            &caller,
            instance_id(&body.instance_id)?,
            body.force,
            body.timeout_ms,
        )
        .await?;
        Ok(Response::new(StartWhatsAppLoginResponse {
            qr_data_url: step.qr_data_url,
            message: step.message,
            connected: step.connected,
        }))
    }

    async fn wait_whats_app_login(
        &self,
        request: Request<WaitWhatsAppLoginRequest>,
    ) -> Result<Response<WaitWhatsAppLoginResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        let step = whatsapp::wait_login(
            &self.channels.upstream,
            &caller,
            instance_id(&body.instance_id)?,
            body.timeout_ms,
            &body.current_qr_data_url,
        )
        .await?;
        Ok(Response::new(WaitWhatsAppLoginResponse {
            connected: step.connected,
            message: step.message,
            qr_data_url: step.qr_data_url,
        }))
    }

    async fn get_whats_app_status(
        &self,
        request: Request<GetWhatsAppStatusRequest>,
    ) -> Result<Response<GetWhatsAppStatusResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        let (summary, accounts) = whatsapp::status(
            &self.channels.upstream,
            &caller,
            instance_id(&body.instance_id)?,
            body.probe,
        )
        .await?;
        Ok(Response::new(GetWhatsAppStatusResponse {
            whatsapp: Some(json_to_struct(summary)),
            accounts: list_value(accounts),
        }))
    }

    async fn list_pairing_requests(
        &self,
        request: Request<ListPairingRequestsRequest>,
    ) -> Result<Response<ListPairingRequestsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        let id = instance_id(&body.instance_id)?;
        let requests = pairing::list(
            &self.channels.upstream,
            &caller,
            id,
            &body.channel,
            &body.account_id,
        )
        .await?;
        Ok(Response::new(ListPairingRequestsResponse {
            channel: body.channel,
            requests,
        }))
    }

    async fn approve_pairing(
        &self,
        request: Request<ApprovePairingRequest>,
    ) -> Result<Response<ApprovePairingResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        let id = instance_id(&body.instance_id)?;
        let upstream = &self.channels.upstream;
        let approval = match body.target {
            Some(Target::Code(code)) => {
                pairing::approve_by_code(
                    upstream,
                    &caller,
                    id,
                    &body.channel,
                    &body.account_id,
                    &code,
                    body.notify,
                )
                .await?
            }
            Some(Target::RequestId(request_id)) => {
                pairing::approve_by_request_id(
                    upstream,
                    &caller,
                    id,
                    &body.channel,
                    &body.account_id,
                    &request_id,
                    body.notify,
                )
                .await?
            }
            None => {
                return Err(
                    ServiceError::invalid_argument("approve needs a code or a request id").into(),
                );
            }
        };
        Ok(Response::new(ApprovePairingResponse {
            approved: true,
            request_id: approval.request_id,
            sender_id: approval.sender_id,
            notification: approval.notification,
        }))
    }
}
