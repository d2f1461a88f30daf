//! `clawfleet up`: the whole platform in one process, each service on its own loopback
//! port, talking real gRPC to the others.

use clawfleet_kit::{
    config::{EnvMap, EnvSource, LayeredEnv, keys},
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
    let edge_listener = server::bind(edge_address).await?;
    let edge_address = edge_listener.local_addr()?;

    let mut overrides = EnvMap::default();
    overrides.set(keys::OPENCLAW_MANAGER_API_KEY, &api_key);
    // A fresh internal credential per run: only this process's services know it.
    overrides.set(keys::CLAWFLEET_INTERNAL_TOKEN, random_token(32));
    overrides.set(
        keys::CLAWFLEET_LIFECYCLE_ADDR,
        lifecycle_address.to_string(),
    );
    let env = LayeredEnv {
        overrides: &overrides,
        fallback: process_env,
    };

    let credentials: Credentials = settings::credentials(&env)?;
    let lifecycle_config = settings::lifecycle_config(&env, openclaw)?;
    let edge_config = clawfleet_edge::EdgeConfig::from_env(&env)?;

    let shutdown = token_cancelled_on_signal();
    let lifecycle = LifecycleServer::start(lifecycle_config).await?;
    let lifecycle_task =
        tokio::spawn(lifecycle.serve(lifecycle_listener, credentials, shutdown.clone()));
    let edge_task = tokio::spawn(clawfleet_edge::serve(
        edge_listener,
        edge_config,
        shutdown.clone(),
    ));
    println!(
        "clawfleet is up: edge http://{edge_address}  lifecycle grpc {lifecycle_address}  data {}",
        data_dir.display()
    );
    tracing::info!(%edge_address, %lifecycle_address, data_dir = %data_dir.display(), "clawfleet up");

    // If either service stops on its own, stop the other too.
    let (lifecycle_result, edge_result) = {
        let mut lifecycle_task = lifecycle_task;
        let mut edge_task = edge_task;
        tokio::select! {
            result = &mut lifecycle_task => { shutdown.cancel(); (result, edge_task.await) }
            result = &mut edge_task => { shutdown.cancel(); (lifecycle_task.await, result) }
        }
    };
    lifecycle_result??;
    edge_result??;
    Ok(())
}
