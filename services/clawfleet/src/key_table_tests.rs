//! The kit's table of the keys each service requires and reads
//! (`clawfleet_kit::service_keys`) held to what the subcommands really read before they
//! bind their listener (the loaders `run_edge`, `run_auth`, `run_lifecycle`, `run_bridge`
//! and `run_channels` in main.rs call, in the same order): a service starts from its
//! required keys alone, and without any one of them it stops with an error naming it.
//! Deploy manifests are checked against the same table, so it cannot drift from the code
//! unnoticed.

#![cfg(test)]

use clawfleet_kit::{
    config::{ConfigError, EnvMap, EnvSource, keys},
    service_keys::{KUBERNETES_RUNTIME, KeyTable, LOCAL_RUNTIME, RuntimeKeys, Service},
};
use clawfleet_lifecycle::runtime::local::OpenclawCommand;

use crate::settings;

/// What the local runtime gets instead of a real toolchain: these tests read settings only.
fn resolved_toolchain() -> Result<OpenclawCommand, std::io::Error> {
    Ok(OpenclawCommand {
        program: "/opt/clawfleet/bin/openclaw".into(),
        path_prefix: Vec::new(),
        plugin_paths: Vec::new(),
    })
}

/// Reads every setting `clawfleet <service>` reads before it binds its listener.
fn load(service: Service, env: &dyn EnvSource) -> anyhow::Result<()> {
    match service {
        Service::Edge => {
            clawfleet_edge::EdgeConfig::from_env(env)?;
            settings::edge_address(env)?;
        }
        Service::Auth => {
            settings::credentials(env)?;
            clawfleet_auth::server::AuthConfig::from_env(env)?;
            settings::auth_address(env)?;
            settings::metrics_address(env, service)?;
        }
        Service::Lifecycle => {
            settings::credentials(env)?;
            settings::lifecycle_address(env)?;
            settings::metrics_address(env, service)?;
            settings::lifecycle_config(env, resolved_toolchain)?;
        }
        Service::Bridge => {
            settings::credentials(env)?;
            clawfleet_gateway_bridge::BridgeConfig::from_env(env)?;
            settings::bridge_address(env)?;
            settings::metrics_address(env, service)?;
        }
        Service::Channels => {
            settings::credentials(env)?;
            clawfleet_channels::ChannelsConfig::from_env(env)?;
            settings::channels_address(env)?;
            settings::metrics_address(env, service)?;
        }
    }
    Ok(())
}

/// A value each loader accepts for `key`.
fn valid_value(key: &str) -> &'static str {
    match key {
        keys::JWT_SECRET => "a-jwt-secret-of-at-least-thirty-two-bytes",
        keys::CLAWFLEET_SERVICE_TOKEN => "a-service-token-of-at-least-32-characters",
        keys::CLAWFLEET_SERVICE_TOKEN_DIGESTS => {
            "edge=1111111111111111111111111111111111111111111111111111111111111111"
        }
        keys::CLAWFLEET_LIFECYCLE_ADDR
        | keys::CLAWFLEET_BRIDGE_ADDR
        | keys::CLAWFLEET_CHANNELS_ADDR
        | keys::CLAWFLEET_AUTH_ADDR => "127.0.0.1:4999",
        keys::CLAWFLEET_LISTEN_HOST => "0.0.0.0",
        keys::PORT
        | keys::CLAWFLEET_LIFECYCLE_PORT
        | keys::CLAWFLEET_BRIDGE_PORT
        | keys::CLAWFLEET_CHANNELS_PORT
        | keys::CLAWFLEET_AUTH_PORT
        | keys::CLAWFLEET_LIFECYCLE_METRICS_PORT
        | keys::CLAWFLEET_BRIDGE_METRICS_PORT
        | keys::CLAWFLEET_CHANNELS_METRICS_PORT
        | keys::CLAWFLEET_AUTH_METRICS_PORT
        | keys::CLAWFLEET_GATEWAY_PORT_BASE
        | keys::OPENCLAW_GATEWAY_PORT => "4998",
        keys::EDGE_BODY_LIMIT_BYTES => "2048",
        keys::OPENCLAW_APPLY_CONCURRENCY => "4",
        keys::CLAWFLEET_OPENROUTER_LIMIT_FREE_USD
        | keys::CLAWFLEET_OPENROUTER_LIMIT_PRO_USD
        | keys::CLAWFLEET_OPENROUTER_LIMIT_ENTERPRISE_USD => "5",
        keys::CLAWFLEET_OPENROUTER_TIMEOUT_MS => "5000",
        keys::CLAWFLEET_OPENROUTER_USAGE_POLL_SECONDS
        | keys::CLAWFLEET_SUBSCRIPTION_GRACE_SECONDS => "60",
        keys::OPENROUTER_BASE_URL => "https://openrouter.example/api/v1",
        keys::CLAWFLEET_OPENROUTER_DEFAULT_MODEL => "openrouter/auto",
        keys::CLAWFLEET_LOCAL_CONFINEMENT => "best-effort",
        keys::CLAWFLEET_LOCAL_TENANT_UID_BASE => "1500000000",
        keys::EDGE_AUTH_RATE_PER_MINUTE
        | keys::EDGE_REFRESH_RATE_PER_MINUTE
        | keys::EDGE_APP_RATE_PER_MINUTE
        | keys::EDGE_APP_CONCURRENT_REQUESTS => "30",
        keys::EDGE_TRUSTED_PROXIES => "10.0.0.0/8,fd00::/8",
        keys::EDGE_INSTANCE_STALENESS_SECONDS
        | keys::CLAWFLEET_WATCH_BOOKMARK_SECONDS
        | keys::CLAWFLEET_KEPT_DATA_RETENTION_SECONDS => "10",
        keys::EDGE_DOCS
        | keys::OPENCLAW_INGRESS_ENABLED
        | keys::CLAWFLEET_GOOGLE_REQUIRE_NONCE
        | keys::CLAWFLEET_APPLE_REQUIRE_NONCE => "true",
        keys::DATABASE_URL => "sqlite:///tmp/clawfleet-key-table-test/auth.db",
        keys::CLAWFLEET_DATA_DIR => "/tmp/clawfleet-key-table-test",
        keys::CLAWFLEET_GOOGLE_JWKS_URL | keys::CLAWFLEET_APPLE_JWKS_URL => {
            "https://keys.example.com/jwks"
        }
        keys::REVENUECAT_BASE_URL => "https://api.revenuecat.com",
        keys::REVENUECAT_ENTITLEMENT_PLANS => "pro=pro,max=enterprise",
        keys::REVENUECAT_CACHE_SECONDS | keys::REVENUECAT_TIMEOUT_MS => "10",
        keys::OTEL_EXPORTER_OTLP_ENDPOINT => "http://127.0.0.1:4317",
        keys::CLAWFLEET_LOG_FORMAT => "json",
        keys::RUST_LOG => "info",
        keys::OPENCLAW_NAMESPACE | keys::CLAWFLEET_PLATFORM_NAMESPACE => "openclaw",
        keys::OPENCLAW_TRUSTED_PROXIES => "10.0.0.1",
        keys::OPENCLAW_MANAGER_API_KEY => "a-credential-of-sixteen-or-more",
        // Names the test's own executable: OPENCLAW_BIN must exist, and the toolchain is
        // never resolved here anyway.
        keys::OPENCLAW_BIN | keys::CLAWFLEET_EXECUTABLE => "/proc/self/exe",
        keys::CLAWFLEET_TLS_CERT_FILE | keys::CLAWFLEET_TLS_CA_FILE => {
            pem_file("tls-cert.pem", "CERTIFICATE")
        }
        keys::CLAWFLEET_TLS_KEY_FILE => pem_file("tls-key.pem", "PRIVATE KEY"),
        keys::CLAWFLEET_BACKUP_STORE => "s3",
        keys::CLAWFLEET_BACKUP_S3_ENDPOINT => "https://s3.example.com",
        keys::CLAWFLEET_BACKUP_DIR | keys::CLAWFLEET_BACKUP_KEY_FILE => {
            "/tmp/clawfleet-key-table-test/backups"
        }
        _ => "a-plain-value",
    }
}

/// A file holding one PEM block labelled `label` (the loaders check the label; what the
/// block holds matters only once a handshake happens), written on first use.
fn pem_file(name: &str, label: &str) -> &'static str {
    let dir = std::path::Path::new("/tmp/clawfleet-key-table-test");
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n"),
    )
    .unwrap();
    path.display().to_string().leak()
}

fn env_with(keys: impl IntoIterator<Item = &'static str>, runtime: Option<RuntimeKeys>) -> EnvMap {
    let mut env = EnvMap::from_pairs(keys.into_iter().map(|key| (key, valid_value(key))));
    if let Some(runtime) = runtime {
        env.set(keys::CLAWFLEET_RUNTIME, runtime.name);
    }
    env
}

/// Each service with the runtimes it can run (only the lifecycle has any).
fn variants() -> Vec<(Service, Option<RuntimeKeys>)> {
    Service::ALL
        .into_iter()
        .flat_map(|service| match service {
            Service::Lifecycle => vec![
                (service, Some(LOCAL_RUNTIME)),
                (service, Some(KUBERNETES_RUNTIME)),
            ],
            _ => vec![(service, None)],
        })
        .collect()
}

fn required(service: Service, runtime: Option<RuntimeKeys>) -> Vec<&'static str> {
    let mut required = service.keys().required.to_vec();
    if let Some(runtime) = runtime {
        required.extend(runtime.keys.required);
    }
    required
}

fn known(service: Service, runtime: Option<RuntimeKeys>) -> Vec<&'static str> {
    let tables: Vec<KeyTable> = std::iter::once(service.keys())
        .chain(runtime.map(|runtime| runtime.keys))
        .collect();
    tables
        .iter()
        .flat_map(|table| table.required.iter().chain(table.optional))
        .copied()
        .filter(|key| *key != keys::CLAWFLEET_RUNTIME)
        .collect()
}

#[test]
fn every_service_starts_from_its_required_keys_alone() {
    for (service, runtime) in variants() {
        let env = env_with(required(service, runtime), runtime);
        if let Err(error) = load(service, &env) {
            panic!("{service:?} ({runtime:?}) did not start from its required keys: {error:#}");
        }
    }
}

#[test]
fn without_any_one_required_key_a_service_stops_naming_it() {
    for (service, runtime) in variants() {
        let required = required(service, runtime);
        for &missing in &required {
            let env = env_with(
                required.iter().copied().filter(|key| *key != missing),
                runtime,
            );
            let error = match load(service, &env) {
                Ok(()) => panic!("{service:?} ({runtime:?}) started without {missing}"),
                Err(error) => error,
            };
            assert_eq!(
                error.downcast_ref::<ConfigError>(),
                Some(&ConfigError::Missing { key: missing }),
                "{service:?} without {missing}: {error:#}"
            );
        }
    }
}

#[test]
fn every_key_the_table_knows_is_accepted_together() {
    for (service, runtime) in variants() {
        let env = env_with(known(service, runtime), runtime);
        if let Err(error) = load(service, &env) {
            panic!("{service:?} ({runtime:?}) refused its known keys: {error:#}");
        }
    }
}

#[test]
fn the_default_ports_are_the_tables() {
    for service in Service::ALL {
        let env = EnvMap::default();
        let port = match service {
            Service::Edge => settings::edge_address(&env),
            Service::Auth => settings::auth_address(&env),
            Service::Lifecycle => settings::lifecycle_address(&env),
            Service::Bridge => settings::bridge_address(&env),
            Service::Channels => settings::channels_address(&env),
        }
        .unwrap()
        .port();
        assert_eq!(port, service.default_port(), "{service:?}");
        let moved = EnvMap::from_pairs([(service.port_key(), "4321")]);
        let moved_port = match service {
            Service::Edge => settings::edge_address(&moved),
            Service::Auth => settings::auth_address(&moved),
            Service::Lifecycle => settings::lifecycle_address(&moved),
            Service::Bridge => settings::bridge_address(&moved),
            Service::Channels => settings::channels_address(&moved),
        }
        .unwrap()
        .port();
        assert_eq!(
            moved_port,
            4321,
            "{service:?} listens on {}",
            service.port_key()
        );
        let metrics_port = settings::metrics_address(&env, service)
            .unwrap()
            .map(|address| address.port());
        assert_eq!(metrics_port, service.default_metrics_port(), "{service:?}");
        if let Some(key) = service.metrics_port_key() {
            let moved = EnvMap::from_pairs([(key, "4322")]);
            let moved_port = settings::metrics_address(&moved, service).unwrap();
            assert_eq!(
                moved_port.map(|address| address.port()),
                Some(4322),
                "{key}"
            );
        }
    }
}
