//! Which environment keys each service started alone (`clawfleet <service>`) reads: the
//! ones it cannot start without, and the ones it reads when they are set.
//!
//! The table is what deployments are checked against: a manifest must set every required
//! key of the service it runs and may set only keys the table knows for it (see the
//! deploy manifests test). The clawfleet binary's tests hold the table to the loaders: a
//! service starts from its required keys alone, and without any one of them it fails
//! naming that key.

use crate::config::keys::*;

/// A service the clawfleet binary runs on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Edge,
    Auth,
    Lifecycle,
    Bridge,
    Channels,
}

/// The keys one service (or one of the lifecycle's runtimes) reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTable {
    /// Missing (or empty), the service refuses to start with a line naming the key.
    pub required: &'static [&'static str],
    /// Read when set; each has a default or turns a feature off when unset.
    pub optional: &'static [&'static str],
}

impl KeyTable {
    /// Whether the service reads `key` at all.
    pub fn knows(&self, key: &str) -> bool {
        self.required.contains(&key) || self.optional.contains(&key)
    }
}

const EDGE: KeyTable = KeyTable {
    required: &[
        OPENCLAW_MANAGER_API_KEY,
        CLAWFLEET_SERVICE_TOKEN,
        JWT_SECRET,
        CLAWFLEET_LIFECYCLE_ADDR,
        CLAWFLEET_BRIDGE_ADDR,
        CLAWFLEET_CHANNELS_ADDR,
        CLAWFLEET_AUTH_ADDR,
    ],
    optional: &[
        CLAWFLEET_LISTEN_HOST,
        CLAWFLEET_TLS_CERT_FILE,
        CLAWFLEET_TLS_KEY_FILE,
        CLAWFLEET_TLS_CA_FILE,
        PORT,
        EDGE_BODY_LIMIT_BYTES,
        EDGE_AUTH_RATE_PER_MINUTE,
        EDGE_REFRESH_RATE_PER_MINUTE,
        EDGE_TRUSTED_PROXIES,
        EDGE_APP_RATE_PER_MINUTE,
        EDGE_APP_CONCURRENT_REQUESTS,
        EDGE_INSTANCE_STALENESS_SECONDS,
        EDGE_DOCS,
        // Unset, RevenueCat's webhook answers 412.
        REVENUECAT_WEBHOOK_AUTHORIZATION,
        RUST_LOG,
        CLAWFLEET_LOG_FORMAT,
        OTEL_EXPORTER_OTLP_ENDPOINT,
        OTEL_SERVICE_NAME,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        OTEL_EXPORTER_OTLP_PROTOCOL,
        OTEL_TRACES_SAMPLER,
        OTEL_TRACES_SAMPLER_ARG,
        OTEL_RESOURCE_ATTRIBUTES,
    ],
};

const AUTH: KeyTable = KeyTable {
    required: &[
        OPENCLAW_MANAGER_API_KEY,
        CLAWFLEET_SERVICE_TOKEN_DIGESTS,
        JWT_SECRET,
    ],
    optional: &[
        CLAWFLEET_LISTEN_HOST,
        CLAWFLEET_TLS_CERT_FILE,
        CLAWFLEET_TLS_KEY_FILE,
        CLAWFLEET_TLS_CA_FILE,
        CLAWFLEET_AUTH_PORT,
        CLAWFLEET_AUTH_METRICS_PORT,
        // Unset, the accounts live in SQLite under the data dir.
        DATABASE_URL,
        CLAWFLEET_DATA_DIR,
        GOOGLE_CLIENT_ID,
        APPLE_CLIENT_ID,
        CLAWFLEET_GOOGLE_JWKS_URL,
        CLAWFLEET_APPLE_JWKS_URL,
        CLAWFLEET_GOOGLE_REQUIRE_NONCE,
        CLAWFLEET_APPLE_REQUIRE_NONCE,
        // Unset, operators set plans (docs/product/subscriptions.md).
        REVENUECAT_SECRET_KEY,
        REVENUECAT_BASE_URL,
        REVENUECAT_ENTITLEMENT_PLANS,
        REVENUECAT_CACHE_SECONDS,
        REVENUECAT_TIMEOUT_MS,
        RUST_LOG,
        CLAWFLEET_LOG_FORMAT,
        OTEL_EXPORTER_OTLP_ENDPOINT,
        OTEL_SERVICE_NAME,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        OTEL_EXPORTER_OTLP_PROTOCOL,
        OTEL_TRACES_SAMPLER,
        OTEL_TRACES_SAMPLER_ARG,
        OTEL_RESOURCE_ATTRIBUTES,
    ],
};

/// The lifecycle's own keys; its runtime adds those of [`LOCAL_RUNTIME`] or
/// [`KUBERNETES_RUNTIME`], chosen by `CLAWFLEET_RUNTIME`.
const LIFECYCLE: KeyTable = KeyTable {
    required: &[OPENCLAW_MANAGER_API_KEY, CLAWFLEET_SERVICE_TOKEN_DIGESTS],
    optional: &[
        CLAWFLEET_LISTEN_HOST,
        CLAWFLEET_TLS_CERT_FILE,
        CLAWFLEET_TLS_KEY_FILE,
        CLAWFLEET_TLS_CA_FILE,
        CLAWFLEET_LIFECYCLE_PORT,
        CLAWFLEET_LIFECYCLE_METRICS_PORT,
        CLAWFLEET_DATA_DIR,
        DATABASE_URL,
        CLAWFLEET_RUNTIME,
        CLAWFLEET_WATCH_BOOKMARK_SECONDS,
        CLAWFLEET_KEPT_DATA_RETENTION_SECONDS,
        // Per-user OpenRouter keys and lapsed subscriptions (docs/product/provider-keys.md).
        OPENROUTER_MANAGEMENT_KEY,
        OPENROUTER_BASE_URL,
        CLAWFLEET_OPENROUTER_LIMIT_FREE_USD,
        CLAWFLEET_OPENROUTER_LIMIT_PRO_USD,
        CLAWFLEET_OPENROUTER_LIMIT_ENTERPRISE_USD,
        CLAWFLEET_OPENROUTER_DEFAULT_MODEL,
        CLAWFLEET_OPENROUTER_TIMEOUT_MS,
        CLAWFLEET_OPENROUTER_USAGE_POLL_SECONDS,
        CLAWFLEET_SUBSCRIPTION_GRACE_SECONDS,
        CLAWFLEET_BACKUP_STORE,
        CLAWFLEET_BACKUP_DIR,
        CLAWFLEET_BACKUP_KEY_FILE,
        CLAWFLEET_BACKUP_S3_ENDPOINT,
        CLAWFLEET_BACKUP_S3_BUCKET,
        CLAWFLEET_BACKUP_S3_PREFIX,
        CLAWFLEET_BACKUP_S3_REGION,
        CLAWFLEET_BACKUP_S3_ACCESS_KEY_ID,
        CLAWFLEET_BACKUP_S3_SECRET_ACCESS_KEY,
        RUST_LOG,
        CLAWFLEET_LOG_FORMAT,
        OTEL_EXPORTER_OTLP_ENDPOINT,
        OTEL_SERVICE_NAME,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        OTEL_EXPORTER_OTLP_PROTOCOL,
        OTEL_TRACES_SAMPLER,
        OTEL_TRACES_SAMPLER_ARG,
        OTEL_RESOURCE_ATTRIBUTES,
    ],
};

const BRIDGE: KeyTable = KeyTable {
    required: &[
        OPENCLAW_MANAGER_API_KEY,
        CLAWFLEET_SERVICE_TOKEN,
        CLAWFLEET_SERVICE_TOKEN_DIGESTS,
        CLAWFLEET_LIFECYCLE_ADDR,
    ],
    optional: &[
        CLAWFLEET_LISTEN_HOST,
        CLAWFLEET_TLS_CERT_FILE,
        CLAWFLEET_TLS_KEY_FILE,
        CLAWFLEET_TLS_CA_FILE,
        CLAWFLEET_BRIDGE_PORT,
        CLAWFLEET_BRIDGE_METRICS_PORT,
        CLAWFLEET_DATA_DIR,
        CLAWFLEET_BRIDGE_IDENTITY_FILE,
        RUST_LOG,
        CLAWFLEET_LOG_FORMAT,
        OTEL_EXPORTER_OTLP_ENDPOINT,
        OTEL_SERVICE_NAME,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        OTEL_EXPORTER_OTLP_PROTOCOL,
        OTEL_TRACES_SAMPLER,
        OTEL_TRACES_SAMPLER_ARG,
        OTEL_RESOURCE_ATTRIBUTES,
    ],
};

const CHANNELS: KeyTable = KeyTable {
    required: &[
        OPENCLAW_MANAGER_API_KEY,
        CLAWFLEET_SERVICE_TOKEN,
        CLAWFLEET_SERVICE_TOKEN_DIGESTS,
        CLAWFLEET_LIFECYCLE_ADDR,
        CLAWFLEET_BRIDGE_ADDR,
    ],
    optional: &[
        CLAWFLEET_LISTEN_HOST,
        CLAWFLEET_TLS_CERT_FILE,
        CLAWFLEET_TLS_KEY_FILE,
        CLAWFLEET_TLS_CA_FILE,
        CLAWFLEET_CHANNELS_PORT,
        CLAWFLEET_CHANNELS_METRICS_PORT,
        CLAWFLEET_TELEGRAM_API_ROOT,
        RUST_LOG,
        CLAWFLEET_LOG_FORMAT,
        OTEL_EXPORTER_OTLP_ENDPOINT,
        OTEL_SERVICE_NAME,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        OTEL_EXPORTER_OTLP_PROTOCOL,
        OTEL_TRACES_SAMPLER,
        OTEL_TRACES_SAMPLER_ARG,
        OTEL_RESOURCE_ATTRIBUTES,
    ],
};

/// A runtime of the lifecycle service and the keys it adds to the lifecycle's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeKeys {
    /// The value of `CLAWFLEET_RUNTIME` that chooses it.
    pub name: &'static str,
    pub keys: KeyTable,
}

/// Gateway processes on this machine (the default when `CLAWFLEET_RUNTIME` is unset).
pub const LOCAL_RUNTIME: RuntimeKeys = RuntimeKeys {
    name: "local",
    keys: KeyTable {
        required: &[],
        optional: &[
            CLAWFLEET_GATEWAY_PORT_BASE,
            CLAWFLEET_TOOLCHAIN_DIR,
            OPENCLAW_BIN,
            CLAWFLEET_EXECUTABLE,
            CLAWFLEET_LOCAL_CONFINEMENT,
            CLAWFLEET_LOCAL_TENANT_UID_BASE,
        ],
    },
};

/// One Deployment and its objects per instance on a cluster.
pub const KUBERNETES_RUNTIME: RuntimeKeys = RuntimeKeys {
    name: "kubernetes",
    keys: KeyTable {
        // The gateway image is the operator's build, never a guess.
        required: &[OPENCLAW_IMAGE_REPO],
        optional: &[
            KUBECONFIG,
            OPENCLAW_NAMESPACE,
            OPENCLAW_IMAGE_TAG,
            OPENCLAW_GATEWAY_PORT,
            OPENCLAW_INGRESS_ENABLED,
            OPENCLAW_DOMAIN_BASE,
            OPENCLAW_RUNTIME_CLASS,
            OPENCLAW_STORAGE_CLASS,
            OPENCLAW_TRUSTED_PROXIES,
            OPENCLAW_APPLY_CONCURRENCY,
            CLAWFLEET_PLATFORM_DEVICE_ID,
            CLAWFLEET_PLATFORM_NAMESPACE,
        ],
    },
};

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Edge,
        Service::Auth,
        Service::Lifecycle,
        Service::Bridge,
        Service::Channels,
    ];

    /// The `clawfleet` subcommand that runs it.
    pub const fn subcommand(self) -> &'static str {
        match self {
            Service::Edge => "edge",
            Service::Auth => "auth",
            Service::Lifecycle => "lifecycle",
            Service::Bridge => "bridge",
            Service::Channels => "channels",
        }
    }

    /// The key that moves its listener to another port.
    pub const fn port_key(self) -> &'static str {
        match self {
            Service::Edge => PORT,
            Service::Auth => CLAWFLEET_AUTH_PORT,
            Service::Lifecycle => CLAWFLEET_LIFECYCLE_PORT,
            Service::Bridge => CLAWFLEET_BRIDGE_PORT,
            Service::Channels => CLAWFLEET_CHANNELS_PORT,
        }
    }

    /// The port it listens on when [`Service::port_key`] is unset.
    pub const fn default_port(self) -> u16 {
        match self {
            Service::Edge => 4000,
            Service::Lifecycle => 4101,
            Service::Bridge => 4102,
            Service::Channels => 4103,
            Service::Auth => 4104,
        }
    }

    /// The key that moves its `/metrics` port; the edge has none: it serves `/metrics`
    /// on its HTTP port.
    pub const fn metrics_port_key(self) -> Option<&'static str> {
        match self {
            Service::Edge => None,
            Service::Auth => Some(CLAWFLEET_AUTH_METRICS_PORT),
            Service::Lifecycle => Some(CLAWFLEET_LIFECYCLE_METRICS_PORT),
            Service::Bridge => Some(CLAWFLEET_BRIDGE_METRICS_PORT),
            Service::Channels => Some(CLAWFLEET_CHANNELS_METRICS_PORT),
        }
    }

    /// The port of its `/metrics` when [`Service::metrics_port_key`] is unset: the
    /// gRPC port's last digits on 91xx.
    pub const fn default_metrics_port(self) -> Option<u16> {
        match self {
            Service::Edge => None,
            Service::Lifecycle => Some(9101),
            Service::Bridge => Some(9102),
            Service::Channels => Some(9103),
            Service::Auth => Some(9104),
        }
    }

    /// The key through which other services find it (`host:port`); the edge has none,
    /// since no service calls it.
    pub const fn address_key(self) -> Option<&'static str> {
        match self {
            Service::Edge => None,
            Service::Auth => Some(CLAWFLEET_AUTH_ADDR),
            Service::Lifecycle => Some(CLAWFLEET_LIFECYCLE_ADDR),
            Service::Bridge => Some(CLAWFLEET_BRIDGE_ADDR),
            Service::Channels => Some(CLAWFLEET_CHANNELS_ADDR),
        }
    }

    /// Its own keys (for the lifecycle, without its runtime's).
    pub const fn keys(self) -> KeyTable {
        match self {
            Service::Edge => EDGE,
            Service::Auth => AUTH,
            Service::Lifecycle => LIFECYCLE,
            Service::Bridge => BRIDGE,
            Service::Channels => CHANNELS,
        }
    }
}

/// The runtime named by a `CLAWFLEET_RUNTIME` value (`None` for the default, local).
pub fn runtime_keys(name: Option<&str>) -> Option<RuntimeKeys> {
    match name {
        None => Some(LOCAL_RUNTIME),
        Some(name) => [LOCAL_RUNTIME, KUBERNETES_RUNTIME]
            .into_iter()
            .find(|runtime| runtime.name == name),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn all_tables() -> Vec<(String, KeyTable)> {
        let mut tables: Vec<(String, KeyTable)> = Service::ALL
            .iter()
            .map(|service| (format!("{service:?}"), service.keys()))
            .collect();
        for runtime in [LOCAL_RUNTIME, KUBERNETES_RUNTIME] {
            tables.push((format!("{} runtime", runtime.name), runtime.keys));
        }
        tables
    }

    #[test]
    fn no_key_is_listed_twice_or_both_required_and_optional() {
        for (name, table) in all_tables() {
            let mut seen = BTreeSet::new();
            for key in table.required.iter().chain(table.optional) {
                assert!(seen.insert(*key), "{name} lists {key} twice");
            }
        }
    }

    #[test]
    fn every_service_reads_its_credentials_port_listen_host_and_telemetry() {
        for service in Service::ALL {
            let keys = service.keys();
            for key in [
                RUST_LOG,
                CLAWFLEET_LOG_FORMAT,
                OTEL_EXPORTER_OTLP_ENDPOINT,
                OTEL_EXPORTER_OTLP_PROTOCOL,
                OTEL_TRACES_SAMPLER,
                OTEL_RESOURCE_ATTRIBUTES,
            ] {
                assert!(keys.optional.contains(&key), "{service:?} reads {key}");
            }
            assert!(
                keys.required.contains(&OPENCLAW_MANAGER_API_KEY),
                "{service:?} needs the operator key"
            );
            assert!(
                !keys.knows(CLAWFLEET_INTERNAL_TOKEN),
                "{service:?} holds the root"
            );
            assert!(keys.optional.contains(&service.port_key()), "{service:?}");
            if let Some(key) = service.metrics_port_key() {
                assert!(keys.optional.contains(&key), "{service:?} reads {key}");
            }
            assert!(
                keys.optional.contains(&CLAWFLEET_LISTEN_HOST),
                "{service:?}"
            );
        }
    }

    #[test]
    fn callers_hold_their_own_token_and_servers_only_digests() {
        use crate::principal::Principal;
        for service in Service::ALL {
            let keys = service.keys();
            let calls_others = Principal::service_named(service.subcommand()).is_some();
            let serves_grpc = service.address_key().is_some();
            assert_eq!(
                keys.required.contains(&CLAWFLEET_SERVICE_TOKEN),
                calls_others,
                "{service:?}"
            );
            assert_eq!(
                keys.required.contains(&CLAWFLEET_SERVICE_TOKEN_DIGESTS),
                serves_grpc,
                "{service:?}"
            );
        }
    }

    #[test]
    fn runtimes_are_found_by_their_name_and_local_is_the_default() {
        assert_eq!(runtime_keys(None), Some(LOCAL_RUNTIME));
        assert_eq!(runtime_keys(Some("kubernetes")), Some(KUBERNETES_RUNTIME));
        assert_eq!(runtime_keys(Some("docker")), None);
    }
}
