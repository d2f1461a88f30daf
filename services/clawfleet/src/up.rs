//! `clawfleet up`: the whole platform in one process, each service on its own loopback
//! port, talking real gRPC to the others.

use clawfleet_kit::{
    config::{self, EnvMap, EnvSource, LayeredEnv, keys},
    identity::Credentials,
    secret::random_token,
    server,
    shutdown::token_cancelled_on_signal,
    telemetry,
};
use clawfleet_lifecycle::LifecycleServer;

use crate::{settings, toolchain};

pub async fn run(process_env: &dyn EnvSource) -> anyhow::Result<()> {
    let data_dir = settings::data_dir(process_env);
    let api_key = settings::api_key_for_up(process_env, &data_dir)?;
    let openclaw = toolchain::resolve_openclaw(process_env)?;
    let lifecycle_address = settings::lifecycle_address(process_env)?;
    let edge_address = settings::edge_address(process_env)?;
    let _telemetry = telemetry::init("clawfleet", process_env);

    // Bind first so that port 0 (any free port) works and the edge learns the real one.
    let lifecycle_listener = server::bind(lifecycle_address).await?;
    let lifecycle_address = lifecycle_listener.local_addr()?;
    let bridge_listener = server::bind(settings::bridge_address(process_env)?).await?;
    let bridge_address = bridge_listener.local_addr()?;
    let channels_listener = server::bind(settings::channels_address(process_env)?).await?;
    let channels_address = channels_listener.local_addr()?;
    let edge_listener = server::bind(edge_address).await?;
    let edge_address = edge_listener.local_addr()?;

    let mut overrides = EnvMap::default();
    overrides.set(keys::OPENCLAW_MANAGER_API_KEY, &api_key);
    // A fresh internal credential per run unless one is given (tests and tools that call
    // internal RPCs set it): only this process's services know it.
    let internal_token = config::optional(process_env, keys::CLAWFLEET_INTERNAL_TOKEN)
        .unwrap_or_else(|| random_token(32));
    overrides.set(keys::CLAWFLEET_INTERNAL_TOKEN, internal_token);
    overrides.set(
        keys::CLAWFLEET_LIFECYCLE_ADDR,
        lifecycle_address.to_string(),
    );
    overrides.set(keys::CLAWFLEET_BRIDGE_ADDR, bridge_address.to_string());
    overrides.set(keys::CLAWFLEET_CHANNELS_ADDR, channels_address.to_string());
    overrides.set(keys::CLAWFLEET_DATA_DIR, data_dir.display().to_string());
    let env = LayeredEnv {
        overrides: &overrides,
        fallback: process_env,
    };

    let credentials: Credentials = settings::credentials(&env)?;
    let lifecycle_config = settings::lifecycle_config(&env, openclaw)?;
    let edge_config = clawfleet_edge::EdgeConfig::from_env(&env)?;
    let bridge_config = clawfleet_gateway_bridge::BridgeConfig::from_env(&env)?;
    let channels_config = clawfleet_channels::ChannelsConfig::from_env(&env)?;

    let shutdown = token_cancelled_on_signal();
    let lifecycle = LifecycleServer::start(lifecycle_config).await?;
    let bridge = clawfleet_gateway_bridge::BridgeServer::start(bridge_config)?;
    let channels = clawfleet_channels::ChannelsServer::start(channels_config)?;
    let mut lifecycle_task =
        tokio::spawn(lifecycle.serve(lifecycle_listener, credentials.clone(), shutdown.clone()));
    let mut bridge_task =
        tokio::spawn(bridge.serve(bridge_listener, credentials.clone(), shutdown.clone()));
    let mut channels_task =
        tokio::spawn(channels.serve(channels_listener, credentials, shutdown.clone()));
    let mut edge_task = tokio::spawn(clawfleet_edge::serve(
        edge_listener,
        edge_config,
        shutdown.clone(),
    ));
    println!(
        "clawfleet is up: edge http://{edge_address}  lifecycle grpc {lifecycle_address}  bridge grpc {bridge_address}  channels grpc {channels_address}  data {}",
        data_dir.display()
    );
    tracing::info!(%edge_address, %lifecycle_address, %bridge_address, data_dir = %data_dir.display(), "clawfleet up");

    // If any service stops on its own, stop the others too. A finished task must not be
    // polled again, so its result is kept from the select.
    let (mut lifecycle_result, mut bridge_result, mut channels_result, mut edge_result) =
        (None, None, None, None);
    tokio::select! {
        result = &mut lifecycle_task => lifecycle_result = Some(result),
        result = &mut bridge_task => bridge_result = Some(result),
        result = &mut channels_task => channels_result = Some(result),
        result = &mut edge_task => edge_result = Some(result),
    }
    shutdown.cancel();
    let lifecycle_result = match lifecycle_result {
        Some(result) => result,
        None => lifecycle_task.await,
    };
    let bridge_result = match bridge_result {
        Some(result) => result,
        None => bridge_task.await,
    };
    let channels_result = match channels_result {
        Some(result) => result,
        None => channels_task.await,
    };
    let edge_result = match edge_result {
        Some(result) => result,
        None => edge_task.await,
    };
    lifecycle_result??;
    bridge_result??;
    channels_result??;
    edge_result??;
    Ok(())
}
