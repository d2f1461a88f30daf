//! Assembly of the channels service.

use std::sync::Arc;

use clawfleet_contracts::channels::v1::channel_service_server::{
    ChannelServiceServer, SERVICE_NAME,
};
use clawfleet_kit::{
    client,
    config::{self, ConfigError, EnvSource, keys},
    identity::{Credentials, ServiceCredentials, tls_from_env},
    server::{ServerError, serve_grpc},
    service_token::service_token_from_env,
    shutdown::ShutdownToken,
    tls::ServiceTls,
};
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    service::{ChannelServiceHandler, Channels},
    upstream::Upstream,
};

/// What the channels service needs.
#[derive(Debug, Clone)]
pub struct ChannelsConfig {
    pub lifecycle_address: String,
    pub bridge_address: String,
    /// The token channels presents (`CLAWFLEET_SERVICE_TOKEN`).
    pub service_token: String,
    pub telegram_api_root: Option<String>,
    /// Service TLS for its calls (`CLAWFLEET_TLS_*`; off when unset).
    pub service_tls: Option<ServiceTls>,
}

impl ChannelsConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            lifecycle_address: config::required(env, keys::CLAWFLEET_LIFECYCLE_ADDR)?,
            bridge_address: config::required(env, keys::CLAWFLEET_BRIDGE_ADDR)?,
            service_token: service_token_from_env(env)?,
            telegram_api_root: config::optional(env, keys::CLAWFLEET_TELEGRAM_API_ROOT),
            service_tls: tls_from_env(env)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelsStartError {
    #[error("{0}")]
    Address(String),
    #[error("the service token cannot be sent as grpc metadata")]
    ServiceToken,
}

pub struct ChannelsServer {
    channels: Arc<Channels>,
}

fn lazy_channel(
    address: &str,
    tls: Option<&ServiceTls>,
) -> Result<client::GrpcChannel, ChannelsStartError> {
    client::lazy_channel(address, tls)
        .map_err(|error| ChannelsStartError::Address(error.to_string()))
}

impl ChannelsServer {
    pub fn start(config: ChannelsConfig) -> Result<Self, ChannelsStartError> {
        let credentials = ServiceCredentials::new(&config.service_token)
            .map_err(|_| ChannelsStartError::ServiceToken)?;
        let upstream = Upstream::new(
            lazy_channel(&config.bridge_address, config.service_tls.as_ref())?,
            lazy_channel(&config.lifecycle_address, config.service_tls.as_ref())?,
            credentials,
        );
        Ok(Self {
            channels: Arc::new(Channels {
                upstream,
                telegram_api_root: config.telegram_api_root,
            }),
        })
    }

    /// The ChannelService routes (the access layer of [`serve_grpc`] authenticates
    /// every call).
    pub fn routes(&self) -> Routes {
        let handler = ChannelServiceHandler::new(self.channels.clone());
        Routes::new(ChannelServiceServer::new(handler))
    }

    pub async fn serve(
        self,
        listener: TcpListener,
        credentials: Credentials,
        shutdown: ShutdownToken,
    ) -> Result<(), ServerError> {
        serve_grpc(
            listener,
            self.routes(),
            &[SERVICE_NAME],
            credentials,
            shutdown,
        )
        .await
    }
}
