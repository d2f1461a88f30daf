//! Assembly of the auth service: configuration from the environment, start-up (store,
//! migrations, keys, verifiers) and serving behind the identity interceptor.

use std::{path::PathBuf, sync::Arc, time::Duration};

use clawfleet_contracts::auth::v1::auth_service_server::{AuthServiceServer, SERVICE_NAME};
use clawfleet_kit::{
    access_token::{AccessTokenError, AccessTokenKeys, MIN_SECRET_BYTES},
    config::{self, ConfigError, EnvSource, keys},
    identity::Credentials,
    secret::{ExposeSecret, SecretString},
    server::{ServerError, serve_grpc},
    shutdown::ShutdownToken,
};
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{
    accounts::Accounts,
    password::{PasswordError, Passwords},
    providers::{
        DEFAULT_APPLE_JWKS_URL, DEFAULT_GOOGLE_JWKS_URL, IdTokenVerifier, JwksCache, Provider, jwks,
    },
    purge::{DEFAULT_PURGE_INTERVAL, purge_expired_tokens_until},
    service::AuthServiceHandler,
    sessions::{DEFAULT_REFRESH_TTL, DEFAULT_RETRY_GRACE, DEFAULT_SESSION_LIFETIME, Sessions},
    store::{AuthStore, StoreError},
    subscriptions::{RevenueCatConfig, Subscriptions},
};

/// Data directory used for the default SQLite database when none is configured.
const DEFAULT_DATA_DIR: &str = ".clawfleet";

/// What the auth service needs.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `sqlite://…` or `postgres://…`; secret because the URL may carry a password.
    pub database_url: SecretString,
    /// HMAC secret of the access JWTs (at least 32 bytes), shared with the edge.
    pub jwt_secret: SecretString,
    /// The `aud` of Google ID tokens; Google sign-in is refused when `None`.
    pub google_client_id: Option<String>,
    pub google_jwks_url: String,
    /// The `aud` of Apple identity tokens; Apple sign-in is refused when `None`.
    pub apple_client_id: Option<String>,
    pub apple_jwks_url: String,
    /// Google sign-in must carry a nonce (`CLAWFLEET_GOOGLE_REQUIRE_NONCE`).
    pub google_require_nonce: bool,
    /// Apple sign-in must carry a nonce (`CLAWFLEET_APPLE_REQUIRE_NONCE`).
    pub apple_require_nonce: bool,
    /// Lifetime of each refresh token (7 days).
    pub refresh_ttl: Duration,
    /// How long after a rotation a retry with the rotated token gets the same successor (30 s).
    pub refresh_retry_grace: Duration,
    /// How long one sign-in lasts at most, however often refreshed (30 days).
    pub session_lifetime: Duration,
    /// Shortest time between two JWKS fetches caused by unknown `kid`s (30 s).
    pub jwks_min_refetch_interval: Duration,
    /// How often refresh-token families that have fully expired are deleted (1 h).
    pub refresh_purge_interval: Duration,
    /// RevenueCat, when it decides plans (docs/product/subscriptions.md).
    pub revenuecat: RevenueCatConfig,
}

impl AuthConfig {
    /// Reads `JWT_SECRET` (required, ≥ 32 bytes), `DATABASE_URL` (default
    /// `sqlite://<CLAWFLEET_DATA_DIR>/auth.db`), the Google and Apple client ids and
    /// their JWKS URLs.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let jwt_secret = config::required(env, keys::JWT_SECRET)?;
        if jwt_secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                key: keys::JWT_SECRET,
                reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        let database_url = config::optional(env, keys::DATABASE_URL).unwrap_or_else(|| {
            let data_dir = config::optional(env, keys::CLAWFLEET_DATA_DIR)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            default_sqlite_url(&data_dir)
        });
        Ok(Self {
            database_url: database_url.into(),
            jwt_secret: jwt_secret.into(),
            google_client_id: config::optional(env, keys::GOOGLE_CLIENT_ID),
            google_jwks_url: config::optional(env, keys::CLAWFLEET_GOOGLE_JWKS_URL)
                .unwrap_or_else(|| DEFAULT_GOOGLE_JWKS_URL.to_owned()),
            apple_client_id: config::optional(env, keys::APPLE_CLIENT_ID),
            apple_jwks_url: config::optional(env, keys::CLAWFLEET_APPLE_JWKS_URL)
                .unwrap_or_else(|| DEFAULT_APPLE_JWKS_URL.to_owned()),
            google_require_nonce: config::flag_or(
                env,
                keys::CLAWFLEET_GOOGLE_REQUIRE_NONCE,
                false,
            )?,
            apple_require_nonce: config::flag_or(env, keys::CLAWFLEET_APPLE_REQUIRE_NONCE, false)?,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            refresh_retry_grace: DEFAULT_RETRY_GRACE,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            jwks_min_refetch_interval: jwks::MIN_REFETCH_INTERVAL,
            refresh_purge_interval: DEFAULT_PURGE_INTERVAL,
            revenuecat: RevenueCatConfig::from_env(env)?,
        })
    }
}

/// `sqlite://<data dir>/auth.db`, the embedded default.
pub fn default_sqlite_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}", data_dir.join("auth.db").display())
}

/// Why the auth service could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthStartError {
    #[error("invalid jwt secret: {0}")]
    Secret(#[from] AccessTokenError),
    #[error("cannot open the account store: {0}")]
    Store(#[from] StoreError),
    #[error("invalid {provider} jwks url {url:?}")]
    JwksUrl { provider: Provider, url: String },
    #[error("cannot set up tls for fetching signing keys: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot prepare password hashing: {0}")]
    Passwords(#[from] PasswordError),
}

/// A started auth service: store open and migrated, keys and verifiers ready.
pub struct AuthServer {
    accounts: Arc<Accounts>,
    refresh_purge_interval: Duration,
}

impl AuthServer {
    pub async fn start(config: AuthConfig) -> Result<Self, AuthStartError> {
        crate::metrics::register();
        let keys = AccessTokenKeys::from_secret(config.jwt_secret.expose_secret().as_bytes())?;
        let http = jwks::http_client()?;
        let verifier = |provider: Provider, client_id: Option<&str>, url: &str, nonce: bool| {
            let uri: http::Uri = url.parse().map_err(|_| AuthStartError::JwksUrl {
                provider,
                url: url.to_owned(),
            })?;
            Ok::<_, AuthStartError>(
                IdTokenVerifier::new(
                    provider,
                    client_id,
                    JwksCache::new(uri, http.clone(), config.jwks_min_refetch_interval),
                )
                .requiring_nonce(nonce),
            )
        };
        let google = verifier(
            Provider::Google,
            config.google_client_id.as_deref(),
            &config.google_jwks_url,
            config.google_require_nonce,
        )?;
        let apple = verifier(
            Provider::Apple,
            config.apple_client_id.as_deref(),
            &config.apple_jwks_url,
            config.apple_require_nonce,
        )?;
        let store = Arc::new(AuthStore::open(config.database_url.expose_secret()).await?);
        let passwords = Passwords::new().await?;
        let subscriptions = Subscriptions::new(store.clone(), &config.revenuecat, http.clone());
        tracing::info!(
            backend = store.backend_name(),
            google = config.google_client_id.is_some(),
            apple = config.apple_client_id.is_some(),
            revenuecat = subscriptions.revenuecat_configured(),
            "auth started"
        );
        Ok(Self {
            accounts: Arc::new(Accounts {
                sessions: Sessions::new(store.clone(), keys, config.refresh_ttl)
                    .with_limits(config.refresh_retry_grace, config.session_lifetime),
                store,
                passwords,
                google,
                apple,
                subscriptions,
            }),
            refresh_purge_interval: config.refresh_purge_interval,
        })
    }

    /// The account store (for inspection by tests and operators' tools).
    pub fn store(&self) -> &Arc<AuthStore> {
        &self.accounts.store
    }

    /// The account operations, for in-process callers.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// The AuthService routes (the access layer of
    /// [`clawfleet_kit::server::serve_grpc`] authenticates every call).
    pub fn routes(&self) -> Routes {
        let handler = AuthServiceHandler::new(self.accounts.clone());
        Routes::new(AuthServiceServer::new(handler))
    }

    /// Serves gRPC (with health and reflection) on `listener` until `shutdown`, then
    /// closes the store. Expired refresh tokens are purged in the background meanwhile.
    pub async fn serve(
        self,
        listener: TcpListener,
        credentials: Credentials,
        shutdown: ShutdownToken,
    ) -> Result<(), ServerError> {
        let stop_purging = shutdown.child_token();
        let purging = tokio::spawn(purge_expired_tokens_until(
            self.accounts.store.clone(),
            self.refresh_purge_interval,
            stop_purging.clone(),
        ));
        let served = serve_grpc(
            listener,
            self.routes(),
            &[SERVICE_NAME],
            credentials,
            shutdown,
        )
        .await;
        // The purge must finish before the pool closes under it; serving may also have
        // ended by failing, without the shutdown.
        stop_purging.cancel();
        let _ = purging.await;
        self.accounts.store.close().await;
        served
    }
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::config::EnvMap;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_fill_everything_but_the_secret() {
        let env = EnvMap::from_pairs([
            (keys::JWT_SECRET, SECRET),
            (keys::CLAWFLEET_DATA_DIR, "/data"),
        ]);
        let config = AuthConfig::from_env(&env).unwrap();
        assert_eq!(
            config.database_url.expose_secret(),
            "sqlite:///data/auth.db"
        );
        assert_eq!(config.google_jwks_url, DEFAULT_GOOGLE_JWKS_URL);
        assert_eq!(config.apple_jwks_url, DEFAULT_APPLE_JWKS_URL);
        assert_eq!(config.google_client_id, None);
        assert_eq!(config.refresh_ttl, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn the_secret_is_required_and_must_be_long() {
        let missing = AuthConfig::from_env(&EnvMap::default()).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "missing required environment variable JWT_SECRET"
        );
        let short =
            AuthConfig::from_env(&EnvMap::from_pairs([(keys::JWT_SECRET, "short")])).unwrap_err();
        assert!(short.to_string().contains("JWT_SECRET"));
        assert!(!short.to_string().contains("short"));
    }

    #[test]
    fn configured_values_win_and_debug_hides_secrets() {
        let env = EnvMap::from_pairs([
            (keys::JWT_SECRET, SECRET),
            (keys::DATABASE_URL, "postgres://app:hunter2@db/auth"),
            (keys::GOOGLE_CLIENT_ID, "g.apps.googleusercontent.com"),
            (keys::APPLE_CLIENT_ID, "com.example.app"),
            (keys::CLAWFLEET_GOOGLE_JWKS_URL, "http://127.0.0.1:1/g"),
            (keys::CLAWFLEET_APPLE_JWKS_URL, "http://127.0.0.1:1/a"),
        ]);
        let config = AuthConfig::from_env(&env).unwrap();
        assert_eq!(
            config.database_url.expose_secret(),
            "postgres://app:hunter2@db/auth"
        );
        assert_eq!(config.apple_client_id.as_deref(), Some("com.example.app"));
        assert_eq!(config.google_jwks_url, "http://127.0.0.1:1/g");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains(SECRET));
    }
}
