//! The edge's client of the channels service (Telegram, WhatsApp, DM pairing).

use clawfleet_kit::tls::ServiceTls;
use std::time::Duration;

use clawfleet_contracts::channels::v1::{
    ApprovePairingRequest, ApprovePairingResponse, GetTelegramStatusRequest,
    GetTelegramStatusResponse, GetWhatsAppStatusRequest, GetWhatsAppStatusResponse,
    ListPairingRequestsRequest, ListPairingRequestsResponse, LogoutTelegramRequest,
    LogoutTelegramResponse, SetupTelegramRequest, SetupTelegramResponse, StartWhatsAppLoginRequest,
    StartWhatsAppLoginResponse, WaitWhatsAppLoginRequest, WaitWhatsAppLoginResponse,
    channel_service_client::ChannelServiceClient,
};
use clawfleet_kit::client::GrpcChannel;
use clawfleet_kit::identity::Caller;

use crate::{
    error::ApiError,
    upstream::{Stamper, UpstreamClientError, lazy_channel},
};

/// Named in errors about the upstream.
const SERVICE_NAME: &str = "channels service";
/// Deadline of channel calls that do not wait on a person (setup, status, pairing).
pub const CHANNEL_CALL_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct ChannelsClient {
    client: ChannelServiceClient<GrpcChannel>,
    stamper: Stamper,
}

macro_rules! unary {
    ($name:ident, $request:ty, $response:ty) => {
        pub async fn $name(
            &self,
            caller: &Caller,
            message: $request,
            deadline: Duration,
        ) -> Result<$response, ApiError> {
            let mut request = self.stamper.stamped(caller, message)?;
            request.set_timeout(deadline);
            let response = self
                .client
                .clone()
                .$name(request)
                .await
                .map_err(|status| ApiError::from_upstream_status(&status, SERVICE_NAME))?;
            Ok(response.into_inner())
        }
    };
}

impl ChannelsClient {
    /// Builds the client without connecting; must run inside a tokio runtime.
    pub fn connect_lazy(
        address: &str,
        tls: Option<&ServiceTls>,
        service_token: &str,
    ) -> Result<Self, UpstreamClientError> {
        Ok(Self {
            client: ChannelServiceClient::new(lazy_channel(address, tls, |endpoint| endpoint)?),
            stamper: Stamper::new(service_token)?,
        })
    }

    unary!(setup_telegram, SetupTelegramRequest, SetupTelegramResponse);
    unary!(
        get_telegram_status,
        GetTelegramStatusRequest,
        GetTelegramStatusResponse
    );
    unary!(
        logout_telegram,
        LogoutTelegramRequest,
        LogoutTelegramResponse
    );
    unary!(
        start_whats_app_login,
        StartWhatsAppLoginRequest,
        StartWhatsAppLoginResponse
    );
    unary!(
        wait_whats_app_login,
        WaitWhatsAppLoginRequest,
        WaitWhatsAppLoginResponse
    );
    unary!(
        get_whats_app_status,
        GetWhatsAppStatusRequest,
        GetWhatsAppStatusResponse
    );
    unary!(
        list_pairing_requests,
        ListPairingRequestsRequest,
        ListPairingRequestsResponse
    );
    unary!(
        approve_pairing,
        ApprovePairingRequest,
        ApprovePairingResponse
    );
}
