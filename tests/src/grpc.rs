//! gRPC clients of the platform, authenticated with the platform API key (operator).

use clawfleet_contracts::{
    auth::v1::auth_service_client::AuthServiceClient,
    bridge::v1::gateway_bridge_service_client::GatewayBridgeServiceClient,
    channels::v1::channel_service_client::ChannelServiceClient,
    lifecycle::v1::instance_service_client::InstanceServiceClient,
};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct BearerKey(MetadataValue<Ascii>);

impl Interceptor for BearerKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type LifecycleClient = InstanceServiceClient<InterceptedService<Channel, BearerKey>>;

pub type BridgeClient = GatewayBridgeServiceClient<InterceptedService<Channel, BearerKey>>;

pub type ChannelsClient = ChannelServiceClient<InterceptedService<Channel, BearerKey>>;

pub type AuthClient = AuthServiceClient<InterceptedService<Channel, BearerKey>>;

async fn channel(address: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{address}"))?
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// A gateway bridge client for `address` presenting `key` (the operator key, or a
/// calling service's token, `PlatformOptions::service_token`).
pub async fn bridge_client(address: &str, key: &str) -> anyhow::Result<BridgeClient> {
    let header = format!("Bearer {key}").parse()?;
    Ok(GatewayBridgeServiceClient::with_interceptor(
        channel(address).await?,
        BearerKey(header),
    ))
}

/// A channels client for `address` presenting `key`.
pub async fn channels_client(address: &str, key: &str) -> anyhow::Result<ChannelsClient> {
    let header = format!("Bearer {key}").parse()?;
    Ok(ChannelServiceClient::with_interceptor(
        channel(address).await?,
        BearerKey(header),
    ))
}

/// A lifecycle client for `address` (`host:port`) presenting `key`.
pub async fn lifecycle_client(address: &str, key: &str) -> anyhow::Result<LifecycleClient> {
    let header = format!("Bearer {key}").parse()?;
    Ok(InstanceServiceClient::with_interceptor(
        channel(address).await?,
        BearerKey(header),
    ))
}

/// An auth client for `address` presenting `key` (most auth methods take the edge's token).
pub async fn auth_client(address: &str, key: &str) -> anyhow::Result<AuthClient> {
    let header = format!("Bearer {key}").parse()?;
    Ok(AuthServiceClient::with_interceptor(
        channel(address).await?,
        BearerKey(header),
    ))
}
