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
use tokio::task::JoinHandle;

use crate::{settings, toolchain};

/// One running service: its name (for errors) and its serving task.
type ServiceTask = (&'static str, JoinHandle<anyhow::Result<()>>);

pub async fn run(process_env: &dyn EnvSource) -> anyhow::Result<()> {
    let data_dir = settings::data_dir(process_env);
    let api_key = settings::api_key_for_up(process_env, &data_dir)?;
    let jwt_secret = settings::jwt_secret_for_up(process_env, &data_dir)?;
    let _telemetry = telemetry::init("clawfleet", process_env);

    // Bind first so that port 0 (any free port) works and the edge learns the real one.
    let lifecycle_listener = server::bind(settings::lifecycle_address(process_env)?).await?;
    let lifecycle_address = lifecycle_listener.local_addr()?;
    let bridge_listener = server::bind(settings::bridge_address(process_env)?).await?;
    let bridge_address = bridge_listener.local_addr()?;
    let channels_listener = server::bind(settings::channels_address(process_env)?).await?;
    let channels_address = channels_listener.local_addr()?;
    let auth_listener = server::bind(settings::auth_address(process_env)?).await?;
    let auth_address = auth_listener.local_addr()?;
    let edge_listener = server::bind(settings::edge_address(process_env)?).await?;
    let edge_address = edge_listener.local_addr()?;

    let mut overrides = EnvMap::default();
    overrides.set(keys::OPENCLAW_MANAGER_API_KEY, &api_key);
    overrides.set(keys::JWT_SECRET, jwt_secret);
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
    overrides.set(keys::CLAWFLEET_AUTH_ADDR, auth_address.to_string());
    overrides.set(keys::CLAWFLEET_DATA_DIR, data_dir.display().to_string());
    let env = LayeredEnv {
        overrides: &overrides,
        fallback: process_env,
    };

    let credentials: Credentials = settings::credentials(&env)?;
    let lifecycle_config =
        settings::lifecycle_config(&env, || toolchain::resolve_openclaw(process_env))?;
    let edge_config = clawfleet_edge::EdgeConfig::from_env(&env)?;
    let bridge_config = clawfleet_gateway_bridge::BridgeConfig::from_env(&env)?;
    let channels_config = clawfleet_channels::ChannelsConfig::from_env(&env)?;
    let auth_config = clawfleet_auth::server::AuthConfig::from_env(&env)?;

    let shutdown = token_cancelled_on_signal();
    let lifecycle = LifecycleServer::start(lifecycle_config).await?;
    let bridge = clawfleet_gateway_bridge::BridgeServer::start(bridge_config)?;
    let channels = clawfleet_channels::ChannelsServer::start(channels_config)?;
    let auth = clawfleet_auth::server::AuthServer::start(auth_config).await?;
    let (creds, stop) = (credentials.clone(), shutdown.clone());
    let lifecycle_task =
        tokio::spawn(async move { Ok(lifecycle.serve(lifecycle_listener, creds, stop).await?) });
    let (creds, stop) = (credentials.clone(), shutdown.clone());
    let bridge_task =
        tokio::spawn(async move { Ok(bridge.serve(bridge_listener, creds, stop).await?) });
    let (creds, stop) = (credentials.clone(), shutdown.clone());
    let channels_task =
        tokio::spawn(async move { Ok(channels.serve(channels_listener, creds, stop).await?) });
    let (creds, stop) = (credentials, shutdown.clone());
    let auth_task = tokio::spawn(async move { Ok(auth.serve(auth_listener, creds, stop).await?) });
    let stop = shutdown.clone();
    let edge_task =
        tokio::spawn(
            async move { Ok(clawfleet_edge::serve(edge_listener, edge_config, stop).await?) },
        );
    println!(
        "clawfleet is up: edge http://{edge_address}  lifecycle grpc {lifecycle_address}  bridge grpc {bridge_address}  channels grpc {channels_address}  auth grpc {auth_address}  data {}",
        data_dir.display()
    );
    tracing::info!(%edge_address, %lifecycle_address, %bridge_address, %channels_address, %auth_address, data_dir = %data_dir.display(), "clawfleet up");

    let tasks: Vec<ServiceTask> = vec![
        ("lifecycle", lifecycle_task),
        ("bridge", bridge_task),
        ("channels", channels_task),
        ("auth", auth_task),
        ("edge", edge_task),
    ];
    wait_then_stop_all(tasks, &shutdown).await
}

/// Waits until any service stops (or a signal stops them all), then stops the others
/// and reports the first failure.
async fn wait_then_stop_all(
    tasks: Vec<ServiceTask>,
    shutdown: &clawfleet_kit::shutdown::ShutdownToken,
) -> anyhow::Result<()> {
    let (names, handles): (Vec<_>, Vec<_>) = tasks.into_iter().unzip();
    let (first, index, rest) = futures_util::future::select_all(handles).await;
    shutdown.cancel();
    let mut results = vec![(names[index], first)];
    let remaining_names = names
        .iter()
        .enumerate()
        .filter(|(position, _)| *position != index)
        .map(|(_, name)| *name);
    for (name, handle) in remaining_names.zip(rest) {
        results.push((name, handle.await));
    }
    for (name, result) in results {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error.context(format!("the {name} service failed"))),
            Err(join_error) => anyhow::bail!("the {name} service panicked: {join_error}"),
        }
    }
    Ok(())
}
