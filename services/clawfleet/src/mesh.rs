//! The whole platform in one process: lifecycle, bridge, channels, auth and the edge,
//! each on its own port, talking real gRPC to each other (`clawfleet up`). Tests start
//! the same mesh in their own process through [`Mesh::start`].
//!
//! Metrics: the process has one registry, so the edge's `/metrics` shows every
//! service's; `CLAWFLEET_METRICS_PORT` adds a port serving the same, off the edge's
//! public path (docs/monitoring.md).

use std::{net::SocketAddr, path::PathBuf};

use clawfleet_kit::{
    config::{self, EnvMap, EnvSource, LayeredEnv, keys},
    identity::Credentials,
    metrics::exposition,
    principal::Principal,
    secret::random_token,
    server,
    shutdown::ShutdownToken,
};
use clawfleet_lifecycle::LifecycleServer;
use tokio::task::JoinHandle;

use crate::{service_credentials::DerivedCredentials, settings, toolchain};

/// One running service: its name (for errors) and its serving task.
type ServiceTask = (&'static str, JoinHandle<anyhow::Result<()>>);

/// Where each service of a running mesh listens.
#[derive(Debug, Clone)]
pub struct MeshAddresses {
    pub edge: SocketAddr,
    pub lifecycle: SocketAddr,
    pub bridge: SocketAddr,
    pub channels: SocketAddr,
    pub auth: SocketAddr,
    /// The extra `/metrics` port, when `CLAWFLEET_METRICS_PORT` asked for one.
    pub metrics: Option<SocketAddr>,
    pub data_dir: PathBuf,
}

/// A running mesh: its addresses, and its services until [`Mesh::wait`] or [`Mesh::stop`].
pub struct Mesh {
    pub addresses: MeshAddresses,
    shutdown: ShutdownToken,
    tasks: Vec<ServiceTask>,
}

impl Mesh {
    /// Binds every listener (port 0 picks a free port), builds every service from `env`
    /// and starts serving. `shutdown` stops them all.
    pub async fn start(
        process_env: &dyn EnvSource,
        shutdown: ShutdownToken,
    ) -> anyhow::Result<Mesh> {
        let data_dir = settings::data_dir(process_env);
        let api_key = settings::api_key_for_up(process_env, &data_dir)?;
        let jwt_secret = settings::jwt_secret_for_up(process_env, &data_dir)?;

        // Bind first so that port 0 works and every service learns the real addresses.
        let lifecycle_listener = server::bind(settings::lifecycle_address(process_env)?).await?;
        let bridge_listener = server::bind(settings::bridge_address(process_env)?).await?;
        let channels_listener = server::bind(settings::channels_address(process_env)?).await?;
        let auth_listener = server::bind(settings::auth_address(process_env)?).await?;
        let edge_listener = server::bind(settings::edge_address(process_env)?).await?;
        let metrics_listener = match settings::up_metrics_address(process_env)? {
            Some(address) => Some(server::bind(address).await?),
            None => None,
        };
        let addresses = MeshAddresses {
            edge: edge_listener.local_addr()?,
            lifecycle: lifecycle_listener.local_addr()?,
            bridge: bridge_listener.local_addr()?,
            channels: channels_listener.local_addr()?,
            auth: auth_listener.local_addr()?,
            metrics: metrics_listener
                .as_ref()
                .map(|listener| listener.local_addr())
                .transpose()?,
            data_dir: data_dir.clone(),
        };

        let mut overrides = EnvMap::default();
        overrides.set(keys::OPENCLAW_MANAGER_API_KEY, &api_key);
        overrides.set(keys::JWT_SECRET, jwt_secret);
        // Each calling service gets its own token, derived from a root that is fresh per
        // run unless given (tests and tools that call internal RPCs set it); every
        // server gets only the digests.
        let root = config::optional(process_env, keys::CLAWFLEET_INTERNAL_TOKEN)
            .unwrap_or_else(|| random_token(32));
        let derived = DerivedCredentials::from_root(&root).map_err(|error| {
            anyhow::anyhow!("{} cannot be used: {error}", keys::CLAWFLEET_INTERNAL_TOKEN)
        })?;
        overrides.set(
            keys::CLAWFLEET_SERVICE_TOKEN_DIGESTS,
            derived.digests.to_string(),
        );
        overrides.set(
            keys::CLAWFLEET_LIFECYCLE_ADDR,
            addresses.lifecycle.to_string(),
        );
        overrides.set(keys::CLAWFLEET_BRIDGE_ADDR, addresses.bridge.to_string());
        overrides.set(
            keys::CLAWFLEET_CHANNELS_ADDR,
            addresses.channels.to_string(),
        );
        overrides.set(keys::CLAWFLEET_AUTH_ADDR, addresses.auth.to_string());
        overrides.set(keys::CLAWFLEET_DATA_DIR, data_dir.display().to_string());
        let env = LayeredEnv {
            overrides: &overrides,
            fallback: process_env,
        };

        let credentials: Credentials = settings::credentials(&env)?;
        let lifecycle_config =
            settings::lifecycle_config(&env, || toolchain::resolve_openclaw(process_env))?;
        let with_token = |overrides| LayeredEnv {
            overrides,
            fallback: &env,
        };
        let (edge_token, bridge_token, channels_token) = (
            own_token(&derived, Principal::Edge),
            own_token(&derived, Principal::Bridge),
            own_token(&derived, Principal::Channels),
        );
        let edge_config = clawfleet_edge::EdgeConfig::from_env(&with_token(&edge_token))?;
        let bridge_config =
            clawfleet_gateway_bridge::BridgeConfig::from_env(&with_token(&bridge_token))?;
        let channels_config =
            clawfleet_channels::ChannelsConfig::from_env(&with_token(&channels_token))?;
        let auth_config = clawfleet_auth::server::AuthConfig::from_env(&env)?;

        let lifecycle = LifecycleServer::start(lifecycle_config).await?;
        let bridge = clawfleet_gateway_bridge::BridgeServer::start(bridge_config)?;
        let channels = clawfleet_channels::ChannelsServer::start(channels_config)?;
        let auth = clawfleet_auth::server::AuthServer::start(auth_config).await?;
        let (creds, stop) = (credentials.clone(), shutdown.clone());
        let lifecycle_task = spawn_service("lifecycle", async move {
            Ok(lifecycle.serve(lifecycle_listener, creds, stop).await?)
        });
        let (creds, stop) = (credentials.clone(), shutdown.clone());
        let bridge_task = spawn_service("bridge", async move {
            Ok(bridge.serve(bridge_listener, creds, stop).await?)
        });
        let (creds, stop) = (credentials.clone(), shutdown.clone());
        let channels_task = spawn_service("channels", async move {
            Ok(channels.serve(channels_listener, creds, stop).await?)
        });
        let (creds, stop) = (credentials, shutdown.clone());
        let auth_task = spawn_service("auth", async move {
            Ok(auth.serve(auth_listener, creds, stop).await?)
        });
        let stop = shutdown.clone();
        let edge_task = spawn_service("edge", async move {
            Ok(clawfleet_edge::serve(edge_listener, edge_config, stop).await?)
        });
        let mut tasks = vec![
            lifecycle_task,
            bridge_task,
            channels_task,
            auth_task,
            edge_task,
        ];
        if let Some(listener) = metrics_listener {
            let stop = shutdown.clone();
            tasks.push(spawn_service("metrics", async move {
                Ok(exposition::serve(listener, stop).await?)
            }));
        }
        Ok(Mesh {
            addresses,
            shutdown,
            tasks,
        })
    }

    /// The token that stops every service.
    pub fn shutdown_token(&self) -> ShutdownToken {
        self.shutdown.clone()
    }

    /// Stops every service and waits for them (gateways included).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until any service stops (or the shutdown token fires), then stops the
    /// others and reports the first failure.
    pub async fn wait(self) -> anyhow::Result<()> {
        let (names, handles): (Vec<_>, Vec<_>) = self.tasks.into_iter().unzip();
        let (first, index, rest) = futures_util::future::select_all(handles).await;
        self.shutdown.cancel();
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
}

/// The overlay that gives `service` its own token (and no other service's).
fn own_token(derived: &DerivedCredentials, service: Principal) -> EnvMap {
    EnvMap::from_pairs([(
        keys::CLAWFLEET_SERVICE_TOKEN,
        derived.token(service).unwrap_or_default(),
    )])
}

fn spawn_service(
    name: &'static str,
    serving: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> ServiceTask {
    (name, tokio::spawn(serving))
}
