//! Settings shared by the subcommands: data dir, listen host, ports, credentials.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use clawfleet_kit::{
    config::{self, ConfigError, EnvSource, keys},
    identity::Credentials,
    private_file::{create_private_dir, read_or_create_secret},
    secret::random_token,
    service_keys::Service,
};
use clawfleet_lifecycle::{
    LifecycleConfig,
    runtime::local::{LocalRuntimeConfig, OpenclawCommand},
    watch_hub::DEFAULT_BOOKMARK_INTERVAL,
};

pub const DEFAULT_DATA_DIR: &str = ".clawfleet";
pub const DEFAULT_EDGE_PORT: u16 = Service::Edge.default_port();
pub const DEFAULT_LIFECYCLE_PORT: u16 = Service::Lifecycle.default_port();
pub const DEFAULT_BRIDGE_PORT: u16 = Service::Bridge.default_port();
pub const DEFAULT_CHANNELS_PORT: u16 = Service::Channels.default_port();
pub const DEFAULT_AUTH_PORT: u16 = Service::Auth.default_port();
pub const DEFAULT_GATEWAY_PORT_BASE: u16 = 19000;
/// Readiness budget of a starting gateway (docs/product/instances.md#probes: 10–60 s; cold CI machines are slower).
pub const GATEWAY_START_TIMEOUT: Duration = Duration::from_secs(120);
pub const GATEWAY_STOP_GRACE: Duration = Duration::from_secs(15);
pub const RECONCILE_PERIOD: Duration = Duration::from_secs(30);

pub fn data_dir(env: &dyn EnvSource) -> PathBuf {
    let dir = config::optional(env, keys::CLAWFLEET_DATA_DIR)
        .unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
    std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir))
}

pub fn listen_host(env: &dyn EnvSource) -> Result<IpAddr, ConfigError> {
    config::parsed_or(
        env,
        keys::CLAWFLEET_LISTEN_HOST,
        IpAddr::from([127, 0, 0, 1]),
    )
}

pub fn lifecycle_address(env: &dyn EnvSource) -> Result<SocketAddr, ConfigError> {
    let port = config::parsed_or(env, keys::CLAWFLEET_LIFECYCLE_PORT, DEFAULT_LIFECYCLE_PORT)?;
    Ok(SocketAddr::new(listen_host(env)?, port))
}

pub fn bridge_address(env: &dyn EnvSource) -> Result<SocketAddr, ConfigError> {
    let port = config::parsed_or(env, keys::CLAWFLEET_BRIDGE_PORT, DEFAULT_BRIDGE_PORT)?;
    Ok(SocketAddr::new(listen_host(env)?, port))
}

pub fn channels_address(env: &dyn EnvSource) -> Result<SocketAddr, ConfigError> {
    let port = config::parsed_or(env, keys::CLAWFLEET_CHANNELS_PORT, DEFAULT_CHANNELS_PORT)?;
    Ok(SocketAddr::new(listen_host(env)?, port))
}

pub fn auth_address(env: &dyn EnvSource) -> Result<SocketAddr, ConfigError> {
    let port = config::parsed_or(env, keys::CLAWFLEET_AUTH_PORT, DEFAULT_AUTH_PORT)?;
    Ok(SocketAddr::new(listen_host(env)?, port))
}

/// The access-token secret in `up` mode: `JWT_SECRET`, else the one generated on first
/// use and kept in the data dir (so app users stay signed in across restarts).
pub fn jwt_secret_for_up(env: &dyn EnvSource, data_dir: &Path) -> std::io::Result<String> {
    if let Some(secret) = config::optional(env, keys::JWT_SECRET) {
        return Ok(secret);
    }
    create_private_dir(data_dir)?;
    let (secret, _) = read_or_create_secret(&data_dir.join("jwt-secret"), || random_token(48))?;
    Ok(secret)
}

/// Where a service run alone serves `/metrics` (`None` for the edge, which serves it on
/// its HTTP port).
pub fn metrics_address(
    env: &dyn EnvSource,
    service: Service,
) -> Result<Option<SocketAddr>, ConfigError> {
    let (Some(key), Some(default)) = (service.metrics_port_key(), service.default_metrics_port())
    else {
        return Ok(None);
    };
    let port = config::parsed_or(env, key, default)?;
    Ok(Some(SocketAddr::new(listen_host(env)?, port)))
}

/// The extra `/metrics` port of `clawfleet up`, when `CLAWFLEET_METRICS_PORT` asks for one.
pub fn up_metrics_address(env: &dyn EnvSource) -> Result<Option<SocketAddr>, ConfigError> {
    match config::optional(env, keys::CLAWFLEET_METRICS_PORT) {
        None => Ok(None),
        Some(_) => {
            let port = config::parsed_or(env, keys::CLAWFLEET_METRICS_PORT, 0u16)?;
            Ok(Some(SocketAddr::new(listen_host(env)?, port)))
        }
    }
}

pub fn edge_address(env: &dyn EnvSource) -> Result<SocketAddr, ConfigError> {
    let port = config::parsed_or(env, keys::PORT, DEFAULT_EDGE_PORT)?;
    Ok(SocketAddr::new(listen_host(env)?, port))
}

/// The credentials a gRPC service accepts: the operator key and the digests of its
/// callers' tokens, both required.
pub fn credentials(env: &dyn EnvSource) -> Result<Credentials, ConfigError> {
    Credentials::from_env(env)
}

/// The lifecycle service's configuration. `resolve_openclaw` (which may install Node and
/// openclaw) runs only for the local runtime: a Kubernetes deployment runs gateways
/// from its image and must not download a toolchain it never uses.
pub fn lifecycle_config<E>(
    env: &dyn EnvSource,
    resolve_openclaw: impl FnOnce() -> Result<OpenclawCommand, E>,
) -> anyhow::Result<LifecycleConfig>
where
    E: std::error::Error + Send + Sync + 'static,
{
    use clawfleet_lifecycle::{RuntimeChoice, runtime::kubernetes::config::KubernetesConfig};
    let data_dir = data_dir(env);
    let runtime = match config::optional(env, keys::CLAWFLEET_RUNTIME).as_deref() {
        None | Some("local") => RuntimeChoice::Local(LocalRuntimeConfig {
            data_dir: data_dir.clone(),
            executable: clawfleet_executable(env)?,
            port_base: config::parsed_or(
                env,
                keys::CLAWFLEET_GATEWAY_PORT_BASE,
                DEFAULT_GATEWAY_PORT_BASE,
            )?,
            openclaw: resolve_openclaw()?,
            start_timeout: GATEWAY_START_TIMEOUT,
            stop_grace: GATEWAY_STOP_GRACE,
            // Used when Xvfb, x11vnc and websockify are installed.
            vnc: true,
            confinement: local_confinement(env)?,
        }),
        Some("kubernetes") => RuntimeChoice::Kubernetes(Box::new(KubernetesConfig::from_env(env)?)),
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: keys::CLAWFLEET_RUNTIME,
                reason: format!("{other:?} is not local or kubernetes"),
            }
            .into());
        }
    };
    let database_url = config::optional(env, keys::DATABASE_URL)
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("lifecycle.db").display()));
    let backups = crate::backup_settings::backups_config(
        env,
        &data_dir,
        matches!(runtime, RuntimeChoice::Local(_)),
    )?;
    Ok(LifecycleConfig {
        backups,
        data_dir,
        database_url,
        runtime,
        reconcile_period: RECONCILE_PERIOD,
        watch_bookmark_interval: Duration::from_secs(config::parsed_or(
            env,
            keys::CLAWFLEET_WATCH_BOOKMARK_SECONDS,
            DEFAULT_BOOKMARK_INTERVAL.as_secs(),
        )?),
        kept_data_retention: Duration::from_secs(config::parsed_or(
            env,
            keys::CLAWFLEET_KEPT_DATA_RETENTION_SECONDS,
            clawfleet_lifecycle::kept_data::DEFAULT_RETENTION.as_secs(),
        )?),
        provider_keys: clawfleet_lifecycle::provider_keys::ProviderKeysConfig::from_env(env)?,
    })
}

/// The `clawfleet` executable the local runtime starts instances with: `CLAWFLEET_EXECUTABLE`,
/// else this process's own (a test process that runs the mesh inside itself names the
/// built binary).
pub fn clawfleet_executable(env: &dyn EnvSource) -> Result<PathBuf, ConfigError> {
    match config::optional(env, keys::CLAWFLEET_EXECUTABLE) {
        Some(path) => {
            let path = std::path::absolute(&path).unwrap_or_else(|_| PathBuf::from(&path));
            if path.is_file() {
                Ok(path)
            } else {
                Err(ConfigError::Invalid {
                    key: keys::CLAWFLEET_EXECUTABLE,
                    reason: format!("{} is not a file", path.display()),
                })
            }
        }
        None => std::env::current_exe().map_err(|error| ConfigError::Invalid {
            key: keys::CLAWFLEET_EXECUTABLE,
            reason: format!("unset, and the running executable is unknown ({error})"),
        }),
    }
}

/// Where `up` keeps the API key it generated, so it stays the same across restarts.
fn api_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("api-key")
}

/// The platform API key for `up`: from the environment, else the one generated on an
/// earlier run, else a new one that is stored (mode 600) and printed once.
pub fn api_key_for_up(env: &dyn EnvSource, data_dir: &Path) -> std::io::Result<String> {
    if let Some(key) = config::optional(env, keys::OPENCLAW_MANAGER_API_KEY) {
        return Ok(key);
    }
    let path = api_key_file(data_dir);
    create_private_dir(data_dir)?;
    let (key, created) = read_or_create_secret(&path, || random_token(32))?;
    if created {
        println!("OPENCLAW_MANAGER_API_KEY={key}");
        eprintln!(
            "clawfleet: generated an API key (printed above, once; stored in {})",
            path.display()
        );
    } else {
        eprintln!(
            "clawfleet: using the API key stored in {} (set OPENCLAW_MANAGER_API_KEY to choose one)",
            path.display()
        );
    }
    Ok(key)
}

/// `CLAWFLEET_LOCAL_CONFINEMENT` and `CLAWFLEET_LOCAL_TENANT_UID_BASE`
/// (docs/product/local-confinement.md).
fn local_confinement(
    env: &dyn EnvSource,
) -> anyhow::Result<clawfleet_lifecycle::runtime::local::LocalConfinement> {
    use clawfleet_instance::confine::Policy;
    use clawfleet_lifecycle::runtime::local::{LocalConfinement, tenancy::DEFAULT_TENANT_UID_BASE};
    let policy = match config::optional(env, keys::CLAWFLEET_LOCAL_CONFINEMENT).as_deref() {
        None | Some("required") => Some(Policy::Required),
        Some("best-effort") => Some(Policy::BestEffort),
        Some("off") => None,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: keys::CLAWFLEET_LOCAL_CONFINEMENT,
                reason: format!("{other:?} is not required, best-effort or off"),
            }
            .into());
        }
    };
    let tenant_uid_base = config::parsed_or(
        env,
        keys::CLAWFLEET_LOCAL_TENANT_UID_BASE,
        DEFAULT_TENANT_UID_BASE,
    )?;
    Ok(LocalConfinement {
        policy,
        tenant_uid_base,
    })
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::config::EnvMap;
    use clawfleet_lifecycle::RuntimeChoice;

    use super::*;

    fn no_toolchain() -> Result<OpenclawCommand, std::io::Error> {
        Err(std::io::Error::other("the toolchain must not be resolved"))
    }

    #[test]
    fn the_kubernetes_runtime_resolves_no_local_toolchain() {
        let env = EnvMap::from_pairs([
            (keys::CLAWFLEET_RUNTIME, "kubernetes"),
            (keys::OPENCLAW_IMAGE_REPO, "registry.example/openclaw"),
        ]);
        let config = lifecycle_config(&env, no_toolchain).unwrap();
        assert!(matches!(config.runtime, RuntimeChoice::Kubernetes(_)));
    }

    #[test]
    fn the_local_runtime_resolves_the_toolchain_and_reports_its_failure() {
        for runtime in [None, Some("local")] {
            let env = EnvMap::from_pairs(runtime.map(|name| (keys::CLAWFLEET_RUNTIME, name)));
            let error = lifecycle_config(&env, no_toolchain).unwrap_err();
            assert!(
                error.to_string().contains("must not be resolved"),
                "{error}"
            );
            let resolved = lifecycle_config(&env, || {
                Ok::<_, std::io::Error>(OpenclawCommand {
                    program: "/opt/openclaw".into(),
                    path_prefix: Vec::new(),
                    plugin_paths: Vec::new(),
                })
            })
            .unwrap();
            let RuntimeChoice::Local(local) = resolved.runtime else {
                panic!("local runtime expected");
            };
            assert_eq!(local.openclaw.program, PathBuf::from("/opt/openclaw"));
        }
    }

    #[test]
    fn an_unknown_runtime_is_refused_by_name() {
        let env = EnvMap::from_pairs([(keys::CLAWFLEET_RUNTIME, "docker")]);
        let error = lifecycle_config(&env, no_toolchain).unwrap_err();
        assert!(error.to_string().contains("CLAWFLEET_RUNTIME"), "{error}");
    }
}
