//! Configuration read from environment variables.
//!
//! Loaders take an [`EnvSource`] so tests pass a map instead of mutating the process
//! environment. Every key a service reads is a named constant in [`keys`].

use std::{collections::HashMap, fmt::Display, str::FromStr};

/// Every environment key clawfleet reads, in one place.
pub mod keys {
    /// Edge HTTP port (default 4000).
    pub const PORT: &str = "PORT";
    /// Address every listener binds to (default loopback; `0.0.0.0` in a pod).
    pub const CLAWFLEET_LISTEN_HOST: &str = "CLAWFLEET_LISTEN_HOST";
    /// The platform API key operators present as `Authorization: Bearer <key>`.
    pub const OPENCLAW_MANAGER_API_KEY: &str = "OPENCLAW_MANAGER_API_KEY";
    /// Port the gateway listens on inside its pod (default 18789).
    pub const OPENCLAW_GATEWAY_PORT: &str = "OPENCLAW_GATEWAY_PORT";
    /// Where clawfleet keeps its data (default `./.clawfleet`).
    pub const CLAWFLEET_DATA_DIR: &str = "CLAWFLEET_DATA_DIR";
    /// Root from which `clawfleet up` derives each service's token (random when unset);
    /// no service started alone reads it (docs/product/service-authority.md).
    pub const CLAWFLEET_INTERNAL_TOKEN: &str = "CLAWFLEET_INTERNAL_TOKEN";
    /// The token this service presents when it calls another (edge, bridge, channels).
    pub const CLAWFLEET_SERVICE_TOKEN: &str = "CLAWFLEET_SERVICE_TOKEN";
    /// `edge=<hex>,bridge=<hex>,channels=<hex>`: SHA-256 digests of the calling services'
    /// tokens, by which a gRPC server recognises its callers.
    pub const CLAWFLEET_SERVICE_TOKEN_DIGESTS: &str = "CLAWFLEET_SERVICE_TOKEN_DIGESTS";
    /// PEM certificate chain this service presents on every gRPC hop, as server and as
    /// client (service TLS, docs/product/service-tls.md; off when unset).
    pub const CLAWFLEET_TLS_CERT_FILE: &str = "CLAWFLEET_TLS_CERT_FILE";
    /// PEM private key of `CLAWFLEET_TLS_CERT_FILE`.
    pub const CLAWFLEET_TLS_KEY_FILE: &str = "CLAWFLEET_TLS_KEY_FILE";
    /// PEM certificate of the platform CA every service's certificate chains to.
    pub const CLAWFLEET_TLS_CA_FILE: &str = "CLAWFLEET_TLS_CA_FILE";
    /// Address of the lifecycle service's gRPC listener (`host:port`).
    pub const CLAWFLEET_LIFECYCLE_ADDR: &str = "CLAWFLEET_LIFECYCLE_ADDR";
    /// gRPC port of the lifecycle service when run on its own (default 4101).
    pub const CLAWFLEET_LIFECYCLE_PORT: &str = "CLAWFLEET_LIFECYCLE_PORT";
    /// Address of the gateway bridge's gRPC listener (`host:port`).
    pub const CLAWFLEET_BRIDGE_ADDR: &str = "CLAWFLEET_BRIDGE_ADDR";
    /// gRPC port of the gateway bridge when run on its own (default 4102).
    pub const CLAWFLEET_BRIDGE_PORT: &str = "CLAWFLEET_BRIDGE_PORT";
    /// The bridge's Ed25519 device identity file (default `<data dir>/bridge/device-identity.json`).
    pub const CLAWFLEET_BRIDGE_IDENTITY_FILE: &str = "CLAWFLEET_BRIDGE_IDENTITY_FILE";
    /// The gateway's shared token, as the gateway itself reads it.
    pub const OPENCLAW_GATEWAY_TOKEN: &str = "OPENCLAW_GATEWAY_TOKEN";
    /// The gateway's state dir, as the gateway itself reads it (`clawfleet instance run`
    /// prepares it first).
    pub const OPENCLAW_STATE_DIR: &str = "OPENCLAW_STATE_DIR";
    /// The platform's keys for the gateway's `openclaw.json`, a JSON file (`clawfleet
    /// instance run`; the instance's ConfigMap in a pod).
    pub const CLAWFLEET_BASE_CONFIG: &str = "CLAWFLEET_BASE_CONFIG";
    /// The platform bridge's device id, the only device the pairing approver approves.
    pub const CLAWFLEET_PLATFORM_DEVICE_ID: &str = "CLAWFLEET_PLATFORM_DEVICE_ID";
    /// Address of the channels service's gRPC listener (`host:port`).
    pub const CLAWFLEET_CHANNELS_ADDR: &str = "CLAWFLEET_CHANNELS_ADDR";
    /// gRPC port of the channels service when run on its own (default 4103).
    pub const CLAWFLEET_CHANNELS_PORT: &str = "CLAWFLEET_CHANNELS_PORT";
    /// Telegram Bot API base URL given to gateways (a loopback stand-in in tests).
    pub const CLAWFLEET_TELEGRAM_API_ROOT: &str = "CLAWFLEET_TELEGRAM_API_ROOT";
    /// Runtime that runs gateways: `local` (default) or `kubernetes`.
    pub const CLAWFLEET_RUNTIME: &str = "CLAWFLEET_RUNTIME";
    /// Path of an `openclaw` executable to use instead of looking it up or installing it.
    pub const OPENCLAW_BIN: &str = "OPENCLAW_BIN";
    /// Where the local runtime installs Node and openclaw on first use.
    pub const CLAWFLEET_TOOLCHAIN_DIR: &str = "CLAWFLEET_TOOLCHAIN_DIR";
    /// The `clawfleet` executable the local runtime starts each instance with (`clawfleet
    /// instance run`); default: the running executable.
    pub const CLAWFLEET_EXECUTABLE: &str = "CLAWFLEET_EXECUTABLE";
    /// First loopback port the local runtime hands to gateways (default 19000).
    pub const CLAWFLEET_GATEWAY_PORT_BASE: &str = "CLAWFLEET_GATEWAY_PORT_BASE";
    /// How the local runtime confines tenants: `required` (default; refuse to run a
    /// gateway the kernel cannot fully confine), `best-effort` or `off`
    /// (docs/product/local-confinement.md).
    pub const CLAWFLEET_LOCAL_CONFINEMENT: &str = "CLAWFLEET_LOCAL_CONFINEMENT";
    /// First uid (and gid) the local runtime gives a tenant when it runs as root
    /// (default 1500000000).
    pub const CLAWFLEET_LOCAL_TENANT_UID_BASE: &str = "CLAWFLEET_LOCAL_TENANT_UID_BASE";
    /// Seconds between bookmarks on a quiet WatchInstances stream (default 10).
    pub const CLAWFLEET_WATCH_BOOKMARK_SECONDS: &str = "CLAWFLEET_WATCH_BOOKMARK_SECONDS";
    /// Seconds the kept data of a deleted instance outlives it before the lifecycle's
    /// leader purges it (default 7 days); it counts toward the owner's plan meanwhile.
    pub const CLAWFLEET_KEPT_DATA_RETENTION_SECONDS: &str = "CLAWFLEET_KEPT_DATA_RETENTION_SECONDS";
    /// OpenRouter's key-provisioning management key; unset, no keys are provisioned
    /// (docs/product/provider-keys.md).
    pub const OPENROUTER_MANAGEMENT_KEY: &str = "OPENROUTER_MANAGEMENT_KEY";
    /// OpenRouter's API root (default `https://openrouter.ai/api/v1`; a stand-in in tests).
    pub const OPENROUTER_BASE_URL: &str = "OPENROUTER_BASE_URL";
    /// Credit limits in USD of provisioned keys, per plan.
    pub const CLAWFLEET_OPENROUTER_LIMIT_FREE_USD: &str = "CLAWFLEET_OPENROUTER_LIMIT_FREE_USD";
    pub const CLAWFLEET_OPENROUTER_LIMIT_PRO_USD: &str = "CLAWFLEET_OPENROUTER_LIMIT_PRO_USD";
    pub const CLAWFLEET_OPENROUTER_LIMIT_ENTERPRISE_USD: &str =
        "CLAWFLEET_OPENROUTER_LIMIT_ENTERPRISE_USD";
    /// The gateway's default model when the platform provides the key.
    pub const CLAWFLEET_OPENROUTER_DEFAULT_MODEL: &str = "CLAWFLEET_OPENROUTER_DEFAULT_MODEL";
    /// Milliseconds one call to OpenRouter may take (default 10000).
    pub const CLAWFLEET_OPENROUTER_TIMEOUT_MS: &str = "CLAWFLEET_OPENROUTER_TIMEOUT_MS";
    /// Seconds between reads of the provider keys' usage for alerts (default 300).
    pub const CLAWFLEET_OPENROUTER_USAGE_POLL_SECONDS: &str =
        "CLAWFLEET_OPENROUTER_USAGE_POLL_SECONDS";
    /// Seconds a lapsed subscription keeps its instances running (default 3 days).
    pub const CLAWFLEET_SUBSCRIPTION_GRACE_SECONDS: &str = "CLAWFLEET_SUBSCRIPTION_GRACE_SECONDS";
    /// Where the lifecycle keeps backups (docs/product/backups.md#stores): `local` (default
    /// on the local runtime: `CLAWFLEET_BACKUP_DIR`), `s3` (the `CLAWFLEET_BACKUP_S3_*`
    /// keys) or `off` (default on the Kubernetes runtime).
    pub const CLAWFLEET_BACKUP_STORE: &str = "CLAWFLEET_BACKUP_STORE";
    /// The local backup directory (default `<data dir>/backups`).
    pub const CLAWFLEET_BACKUP_DIR: &str = "CLAWFLEET_BACKUP_DIR";
    /// The platform key sealing backups (default `<data dir>/backup.key`, created 0600).
    pub const CLAWFLEET_BACKUP_KEY_FILE: &str = "CLAWFLEET_BACKUP_KEY_FILE";
    /// S3-compatible endpoint URL (`https://s3.eu-west-1.amazonaws.com`).
    pub const CLAWFLEET_BACKUP_S3_ENDPOINT: &str = "CLAWFLEET_BACKUP_S3_ENDPOINT";
    pub const CLAWFLEET_BACKUP_S3_BUCKET: &str = "CLAWFLEET_BACKUP_S3_BUCKET";
    /// Key prefix inside the bucket (default none).
    pub const CLAWFLEET_BACKUP_S3_PREFIX: &str = "CLAWFLEET_BACKUP_S3_PREFIX";
    /// Region for request signing (default `us-east-1`).
    pub const CLAWFLEET_BACKUP_S3_REGION: &str = "CLAWFLEET_BACKUP_S3_REGION";
    pub const CLAWFLEET_BACKUP_S3_ACCESS_KEY_ID: &str = "CLAWFLEET_BACKUP_S3_ACCESS_KEY_ID";
    pub const CLAWFLEET_BACKUP_S3_SECRET_ACCESS_KEY: &str = "CLAWFLEET_BACKUP_S3_SECRET_ACCESS_KEY";
    /// Seconds without word from the lifecycle's watch after which the edge answers
    /// instance reads 503 rather than serve what may be stale (default 30).
    pub const EDGE_INSTANCE_STALENESS_SECONDS: &str = "EDGE_INSTANCE_STALENESS_SECONDS";
    /// Largest request body the edge accepts, in bytes (default 1 MiB).
    pub const EDGE_BODY_LIMIT_BYTES: &str = "EDGE_BODY_LIMIT_BYTES";
    /// HTTP port of the lifecycle's `/metrics` when run on its own (default 9101).
    pub const CLAWFLEET_LIFECYCLE_METRICS_PORT: &str = "CLAWFLEET_LIFECYCLE_METRICS_PORT";
    /// HTTP port of the bridge's `/metrics` when run on its own (default 9102).
    pub const CLAWFLEET_BRIDGE_METRICS_PORT: &str = "CLAWFLEET_BRIDGE_METRICS_PORT";
    /// HTTP port of the channels service's `/metrics` when run on its own (default 9103).
    pub const CLAWFLEET_CHANNELS_METRICS_PORT: &str = "CLAWFLEET_CHANNELS_METRICS_PORT";
    /// HTTP port of the auth service's `/metrics` when run on its own (default 9104).
    pub const CLAWFLEET_AUTH_METRICS_PORT: &str = "CLAWFLEET_AUTH_METRICS_PORT";
    /// `clawfleet up` only: an extra HTTP port serving the whole process's `/metrics`
    /// (the edge's `/metrics` serves the same; unset, no extra port).
    pub const CLAWFLEET_METRICS_PORT: &str = "CLAWFLEET_METRICS_PORT";
    /// OTLP endpoint; traces are exported only when it (or the traces endpoint) is set.
    pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// OTLP endpoint for traces alone, used as given (for HTTP, the full URL).
    pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    /// `grpc` (default) or `http/protobuf`.
    pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// Which traces are kept (`parentbased_traceidratio`, ...; default: all, following
    /// the caller's decision).
    pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
    /// The sampler's ratio, 0 to 1.
    pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    /// `key=value,...` attributes of every exported span's resource.
    pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// Overrides the service name in exported traces.
    pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// Log filter in `tracing_subscriber::EnvFilter` syntax (default `info`).
    pub const RUST_LOG: &str = "RUST_LOG";
    /// `text` or `json`; unset means text on a terminal, JSON otherwise.
    pub const CLAWFLEET_LOG_FORMAT: &str = "CLAWFLEET_LOG_FORMAT";

    // --- accounts (auth service and the edge's JWT check) ---
    /// HMAC secret that signs and verifies access JWTs (required by auth and edge).
    pub const JWT_SECRET: &str = "JWT_SECRET";
    /// Database of the services that own tables: `sqlite://…` or `postgres://…`.
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// The `aud` Google ID tokens must carry; Google sign-in is refused when unset.
    pub const GOOGLE_CLIENT_ID: &str = "GOOGLE_CLIENT_ID";
    /// The `aud` Apple identity tokens must carry; Apple sign-in is refused when unset.
    pub const APPLE_CLIENT_ID: &str = "APPLE_CLIENT_ID";
    /// Google's JWKS (default `https://www.googleapis.com/oauth2/v3/certs`).
    pub const CLAWFLEET_GOOGLE_JWKS_URL: &str = "CLAWFLEET_GOOGLE_JWKS_URL";
    /// Apple's JWKS (default `https://appleid.apple.com/auth/keys`).
    pub const CLAWFLEET_APPLE_JWKS_URL: &str = "CLAWFLEET_APPLE_JWKS_URL";
    /// Google sign-in must carry a nonce (the app sends one), so a stolen ID token cannot
    /// be replayed from another client (default false).
    pub const CLAWFLEET_GOOGLE_REQUIRE_NONCE: &str = "CLAWFLEET_GOOGLE_REQUIRE_NONCE";
    /// Apple sign-in must carry a nonce (default false).
    pub const CLAWFLEET_APPLE_REQUIRE_NONCE: &str = "CLAWFLEET_APPLE_REQUIRE_NONCE";
    /// RevenueCat's REST API root (default `https://api.revenuecat.com`; a loopback
    /// stand-in in tests). docs/product/subscriptions.md
    pub const REVENUECAT_BASE_URL: &str = "REVENUECAT_BASE_URL";
    /// RevenueCat secret API key; unset means plans are set by operators only.
    pub const REVENUECAT_SECRET_KEY: &str = "REVENUECAT_SECRET_KEY";
    /// `entitlement=plan` pairs, comma-separated (default `pro=pro,enterprise=enterprise`).
    pub const REVENUECAT_ENTITLEMENT_PLANS: &str = "REVENUECAT_ENTITLEMENT_PLANS";
    /// How long a subscriber read is trusted before RevenueCat is asked again (default 60 s).
    pub const REVENUECAT_CACHE_SECONDS: &str = "REVENUECAT_CACHE_SECONDS";
    /// Upper bound on one RevenueCat request in milliseconds (default 5000).
    pub const REVENUECAT_TIMEOUT_MS: &str = "REVENUECAT_TIMEOUT_MS";
    /// The exact `Authorization` header RevenueCat's webhook sends (edge); unset: the
    /// webhook route answers 412.
    pub const REVENUECAT_WEBHOOK_AUTHORIZATION: &str = "REVENUECAT_WEBHOOK_AUTHORIZATION";
    /// Where other services reach the auth service (host:port).
    pub const CLAWFLEET_AUTH_ADDR: &str = "CLAWFLEET_AUTH_ADDR";
    /// Port the auth service listens on in `clawfleet auth` / `up`.
    pub const CLAWFLEET_AUTH_PORT: &str = "CLAWFLEET_AUTH_PORT";

    // --- edge ---
    /// Serve the OpenAPI document and a viewer at `/docs` (dev only).
    pub const EDGE_DOCS: &str = "EDGE_DOCS";
    /// Requests per minute one client address may make to `/auth/*` (default 30).
    pub const EDGE_AUTH_RATE_PER_MINUTE: &str = "EDGE_AUTH_RATE_PER_MINUTE";
    /// `/auth/refresh` requests per minute per client address (its own budget).
    pub const EDGE_REFRESH_RATE_PER_MINUTE: &str = "EDGE_REFRESH_RATE_PER_MINUTE";
    /// Comma-separated CIDR ranges of proxies whose `X-Forwarded-For` the edge believes.
    pub const EDGE_TRUSTED_PROXIES: &str = "EDGE_TRUSTED_PROXIES";
    /// App instance and gateway requests per user per minute.
    pub const EDGE_APP_RATE_PER_MINUTE: &str = "EDGE_APP_RATE_PER_MINUTE";
    /// App instance and gateway requests one user may have in flight.
    pub const EDGE_APP_CONCURRENT_REQUESTS: &str = "EDGE_APP_CONCURRENT_REQUESTS";

    // --- kubernetes runtime ---
    /// Namespace of the instances' objects (default `openclaw`).
    pub const OPENCLAW_NAMESPACE: &str = "OPENCLAW_NAMESPACE";
    /// Gateway image repository.
    pub const OPENCLAW_IMAGE_REPO: &str = "OPENCLAW_IMAGE_REPO";
    /// Gateway image tag (default `latest`).
    pub const OPENCLAW_IMAGE_TAG: &str = "OPENCLAW_IMAGE_TAG";
    /// Base domain of per-instance hosts (`<id>.<base>`) when ingress is enabled.
    pub const OPENCLAW_DOMAIN_BASE: &str = "OPENCLAW_DOMAIN_BASE";
    /// Create an Ingress and a ManagedCertificate per instance (default false).
    pub const OPENCLAW_INGRESS_ENABLED: &str = "OPENCLAW_INGRESS_ENABLED";
    /// Pod `runtimeClassName` for instances (e.g. `gvisor`); none when unset.
    pub const OPENCLAW_RUNTIME_CLASS: &str = "OPENCLAW_RUNTIME_CLASS";
    /// How many instances the Kubernetes runtime applies at once in the background (default 16).
    pub const OPENCLAW_APPLY_CONCURRENCY: &str = "OPENCLAW_APPLY_CONCURRENCY";
    /// StorageClass of the instances' PVCs; the cluster default when unset.
    pub const OPENCLAW_STORAGE_CLASS: &str = "OPENCLAW_STORAGE_CLASS";
    /// Comma-separated exact proxy addresses written to the gateways' `gateway.trustedProxies`.
    pub const OPENCLAW_TRUSTED_PROXIES: &str = "OPENCLAW_TRUSTED_PROXIES";
    /// Namespace of the platform's bridge pods when it is not the instances' namespace; the
    /// instances' NetworkPolicy admits the bridge from there.
    pub const CLAWFLEET_PLATFORM_NAMESPACE: &str = "CLAWFLEET_PLATFORM_NAMESPACE";
    /// Kubeconfig used outside a cluster.
    pub const KUBECONFIG: &str = "KUBECONFIG";
}

/// A source of environment values.
pub trait EnvSource: Send + Sync {
    /// The value of `key`, or `None` when it is unset.
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// An environment made of a map, for tests and for composing overrides.
#[derive(Debug, Clone, Default)]
pub struct EnvMap(pub HashMap<String, String>);

impl EnvMap {
    /// Builds a map from `(key, value)` pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }

    /// Sets one key, replacing any earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }
}

impl EnvSource for EnvMap {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Values from `overrides` first, then from `fallback`.
pub struct LayeredEnv<'a> {
    pub overrides: &'a EnvMap,
    pub fallback: &'a dyn EnvSource,
}

impl EnvSource for LayeredEnv<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.overrides.get(key).or_else(|| self.fallback.get(key))
    }
}

/// A configuration value that is missing or cannot be used. The message is one line
/// naming the key, fit to stop a process with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {key}")]
    Missing { key: &'static str },
    #[error("invalid value for environment variable {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Reads a required value; empty counts as missing.
pub fn required(env: &dyn EnvSource, key: &'static str) -> Result<String, ConfigError> {
    optional(env, key).ok_or(ConfigError::Missing { key })
}

/// The fewest characters the operator key may have: shorter ones can be guessed, and
/// anyone holding it acts for the whole platform (service tokens have their own, longer
/// minimum: `service_token::MIN_SERVICE_TOKEN_LEN`).
pub const MIN_CREDENTIAL_LENGTH: usize = 16;

/// Reads a required credential (`OPENCLAW_MANAGER_API_KEY`) of
/// at least [`MIN_CREDENTIAL_LENGTH`] characters; the error names the key, never the value.
pub fn required_credential(env: &dyn EnvSource, key: &'static str) -> Result<String, ConfigError> {
    let value = required(env, key)?;
    if value.chars().count() < MIN_CREDENTIAL_LENGTH {
        return Err(ConfigError::Invalid {
            key,
            reason: format!(
                "it must be at least {MIN_CREDENTIAL_LENGTH} characters (e.g. the output of `openssl rand -hex 32`)"
            ),
        });
    }
    Ok(value)
}

/// Reads an optional value; empty counts as unset.
pub fn optional(env: &dyn EnvSource, key: &'static str) -> Option<String> {
    env.get(key)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Reads and parses a value, or returns `default` when it is unset.
pub fn parsed_or<T>(env: &dyn EnvSource, key: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match optional(env, key) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|error: T::Err| ConfigError::Invalid {
            key,
            reason: format!("{text:?}: {error}"),
        }),
    }
}

/// Reads a boolean flag (`true`/`false`/`1`/`0`), or `default` when unset.
pub fn flag_or(env: &dyn EnvSource, key: &'static str, default: bool) -> Result<bool, ConfigError> {
    match optional(env, key).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            key,
            reason: format!("{other:?} is not true or false"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_required_value_names_the_key() {
        let env = EnvMap::default();
        let error = required(&env, keys::OPENCLAW_MANAGER_API_KEY).unwrap_err();
        assert_eq!(
            required_credential(&env, keys::OPENCLAW_MANAGER_API_KEY).unwrap_err(),
            error
        );
        assert_eq!(
            error.to_string(),
            "missing required environment variable OPENCLAW_MANAGER_API_KEY"
        );
    }

    #[test]
    fn blank_values_count_as_unset() {
        let env = EnvMap::from_pairs([(keys::PORT, "  ")]);
        assert_eq!(optional(&env, keys::PORT), None);
        assert_eq!(parsed_or(&env, keys::PORT, 4000u16), Ok(4000));
    }

    #[test]
    fn unparsable_values_are_rejected_with_the_key() {
        let env = EnvMap::from_pairs([(keys::PORT, "four")]);
        let error = parsed_or(&env, keys::PORT, 4000u16).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid value for environment variable PORT")
        );
    }

    #[test]
    fn overrides_win_over_the_fallback() {
        let base = EnvMap::from_pairs([(keys::PORT, "1"), (keys::RUST_LOG, "debug")]);
        let overrides = EnvMap::from_pairs([(keys::PORT, "2")]);
        let layered = LayeredEnv {
            overrides: &overrides,
            fallback: &base,
        };
        assert_eq!(layered.get(keys::PORT).as_deref(), Some("2"));
        assert_eq!(layered.get(keys::RUST_LOG).as_deref(), Some("debug"));
    }

    #[test]
    fn flags_accept_only_clear_words() {
        let env = EnvMap::from_pairs([("A", "true"), ("B", "0"), ("C", "maybe")]);
        assert_eq!(flag_or(&env, "A", false), Ok(true));
        assert_eq!(flag_or(&env, "B", true), Ok(false));
        assert!(flag_or(&env, "C", true).is_err());
        assert_eq!(flag_or(&env, "D", true), Ok(true));
    }
}
