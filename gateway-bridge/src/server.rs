//! Assembly of the bridge: device identity, lifecycle channel, endpoint resolver, the
//! connection pool, and the gRPC service (behind the access layer of `serve_grpc`).

use std::{path::PathBuf, sync::Arc};

use clawfleet_contracts::bridge::v1::gateway_bridge_service_server::{
    GatewayBridgeServiceServer, SERVICE_NAME,
};
use clawfleet_kit::{
    client::lazy_channel,
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
    client::ClientOptions,
    device_identity::DeviceIdentity,
    pool::GatewayPool,
    resolver::LifecycleEndpoints,
    service::{Bridge, GatewayBridgeHandler, access::InstanceAccess},
};

/// Largest gRPC message the bridge accepts or sends (the gateway's own limit is 25 MiB).
const MAX_MESSAGE_BYTES: usize = 26 * 1024 * 1024;

/// What the bridge needs to start.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// `host:port` of the lifecycle service.
    pub lifecycle_address: String,
    /// The token the bridge presents to the lifecycle (`CLAWFLEET_SERVICE_TOKEN`).
    pub service_token: String,
    /// The platform's device identity (generated on first start).
    pub identity_file: PathBuf,
    pub client: ClientOptions,
    /// Service TLS for its calls to the lifecycle (`CLAWFLEET_TLS_*`; off when unset).
    pub service_tls: Option<ServiceTls>,
}

impl BridgeConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let data_dir = config::optional(env, keys::CLAWFLEET_DATA_DIR)
            .unwrap_or_else(|| ".clawfleet".to_owned());
        let identity_file = config::optional(env, keys::CLAWFLEET_BRIDGE_IDENTITY_FILE)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(data_dir)
                    .join("bridge")
                    .join("device-identity.json")
            });
        Ok(Self {
            lifecycle_address: config::required(env, keys::CLAWFLEET_LIFECYCLE_ADDR)?,
            service_token: service_token_from_env(env)?,
            identity_file,
            client: ClientOptions::default(),
            service_tls: tls_from_env(env)?,
        })
    }
}

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeStartError {
    #[error("cannot load or create the device identity at {path}: {source}")]
    Identity {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the lifecycle cannot be reached: {0}")]
    LifecycleAddress(String),
    #[error("the service token cannot be sent as grpc metadata")]
    ServiceToken,
}

/// A started bridge.
pub struct BridgeServer {
    bridge: Arc<Bridge>,
    /// Stops the lifecycle watcher once serving has ended.
    background: ShutdownToken,
    watcher: tokio::task::JoinHandle<()>,
    device_id: String,
}

impl BridgeServer {
    pub fn start(config: BridgeConfig) -> Result<Self, BridgeStartError> {
        crate::metrics::register();
        let identity = DeviceIdentity::load_or_create(&config.identity_file).map_err(|source| {
            BridgeStartError::Identity {
                path: config.identity_file.clone(),
                source,
            }
        })?;
        let device_id = identity.device_id().to_owned();
        let channel = lazy_channel(&config.lifecycle_address, config.service_tls.as_ref())
            .map_err(|error| BridgeStartError::LifecycleAddress(error.to_string()))?;
        let credentials = ServiceCredentials::new(&config.service_token)
            .map_err(|_| BridgeStartError::ServiceToken)?;
        let endpoints = Arc::new(LifecycleEndpoints::new(
            channel.clone(),
            credentials.clone(),
        ));
        let pool = Arc::new(GatewayPool::new(
            endpoints.clone(),
            Arc::new(identity),
            config.client,
        ));
        let background = ShutdownToken::new();
        let watcher = endpoints
            .clone()
            .spawn_watcher(pool.clone(), background.clone());
        let access = InstanceAccess::new(channel, credentials);
        tracing::info!(device_id = %device_id, "gateway bridge started");
        Ok(Self {
            bridge: Arc::new(Bridge {
                pool,
                endpoints,
                access,
                streams: ShutdownToken::new(),
            }),
            background,
            watcher,
            device_id,
        })
    }

    /// The platform's device id, which instance-side approval helpers approve.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The bridge's routes (the access layer of [`clawfleet_kit::server::serve_grpc`]
    /// authenticates every call).
    pub fn routes(&self) -> Routes {
        let handler = GatewayBridgeHandler::new(self.bridge.clone());
        let server = GatewayBridgeServiceServer::new(handler)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Routes::new(server)
    }

    /// Serves until `shutdown`, then closes every gateway connection. Open streams end
    /// (UNAVAILABLE, "subscribe again") as soon as the stop begins; unary calls in flight
    /// finish first.
    pub async fn serve(
        self,
        listener: TcpListener,
        credentials: Credentials,
        shutdown: ShutdownToken,
    ) -> Result<(), ServerError> {
        let routes = self.routes();
        let streams = self.bridge.streams.clone();
        let stopping = shutdown.clone();
        let stream_ender = tokio::spawn(async move {
            stopping.cancelled().await;
            streams.cancel();
        });
        let served = serve_grpc(listener, routes, &[SERVICE_NAME], credentials, shutdown).await;
        stream_ender.abort();
        self.bridge.streams.cancel();
        self.background.cancel();
        self.bridge.pool.shutdown().await;
        let _ = self.watcher.await;
        served
    }
}
