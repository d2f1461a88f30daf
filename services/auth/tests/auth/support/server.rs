//! The real auth gRPC server on 127.0.0.1, and a client that calls it as the edge
//! would (its service token + caller metadata) or as an operator.

use std::{sync::Arc, time::Duration};

use clawfleet_auth::{AuthConfig, AuthServer, store::AuthStore};
use clawfleet_contracts::auth::v1::auth_service_client::AuthServiceClient;
use clawfleet_kit::{
    identity::{Caller, Credentials, ServiceCredentials},
    principal::Principal,
    service_token::ServiceDigests,
    shutdown::ShutdownToken,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{Request, transport::Channel};

use super::database::{Backend, TestDatabase};

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PLATFORM_API_KEY: &str = "operator-key";
/// The edge's service token in these tests (the auth service recognises it by digest).
pub const EDGE_TOKEN: &str = "edge-service-token-for-auth-tests-0123";
pub const GOOGLE_CLIENT_ID: &str = "test-app.apps.googleusercontent.com";
pub const APPLE_CLIENT_ID: &str = "com.example.clawbox";

/// A running auth service with its own database.
pub struct TestServer {
    pub client: AuthServiceClient<Channel>,
    pub store: Arc<AuthStore>,
    shutdown: ShutdownToken,
    task: Option<JoinHandle<()>>,
    _database: TestDatabase,
}

/// The configuration tests start from; JWKS URLs point nowhere until a test sets them.
pub fn test_config(database_url: &str) -> AuthConfig {
    AuthConfig {
        database_url: database_url.into(),
        jwt_secret: JWT_SECRET.into(),
        google_client_id: Some(GOOGLE_CLIENT_ID.to_owned()),
        google_jwks_url: "http://127.0.0.1:9/unused".to_owned(),
        apple_client_id: Some(APPLE_CLIENT_ID.to_owned()),
        apple_jwks_url: "http://127.0.0.1:9/unused".to_owned(),
        google_require_nonce: false,
        apple_require_nonce: false,
        refresh_ttl: Duration::from_secs(7 * 24 * 3600),
        refresh_retry_grace: Duration::from_secs(30),
        session_lifetime: Duration::from_secs(30 * 24 * 3600),
        jwks_min_refetch_interval: Duration::from_secs(30),
        refresh_purge_interval: Duration::from_secs(3600),
        revenuecat: clawfleet_auth::subscriptions::RevenueCatConfig::from_env(
            &clawfleet_kit::config::EnvMap::default(),
        )
        .expect("the default RevenueCat settings"),
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts with `adjust` applied to [`test_config`].
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut AuthConfig)) -> Self {
        let database = TestDatabase::create(backend).await;
        let mut config = test_config(&database.url);
        adjust(&mut config);
        let server = AuthServer::start(config).await.expect("auth server starts");
        let store = server.store().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().unwrap();
        let shutdown = ShutdownToken::new();
        let credentials = Credentials {
            platform_api_key: PLATFORM_API_KEY.into(),
            service_digests: ServiceDigests::of_tokens([(Principal::Edge, EDGE_TOKEN)]).unwrap(),
            tls: None,
        };
        let serving = shutdown.clone();
        let task = tokio::spawn(async move {
            server
                .serve(listener, credentials, serving)
                .await
                .expect("auth server serves");
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("connect to auth server");
        Self {
            client: AuthServiceClient::new(channel),
            store,
            shutdown,
            task: Some(task),
            _database: database,
        }
    }

    /// Stops serving and waits for the store to close.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `message` as the edge sends it for an anonymous request (sign-up, log-in, refresh).
pub fn anonymous<T>(message: T) -> Request<T> {
    as_caller(message, &Caller::service("edge"))
}

/// `message` as the edge sends it on behalf of the app user `user_id`.
pub fn as_app_user<T>(message: T, user_id: &str) -> Request<T> {
    as_caller(message, &Caller::app_user(user_id))
}

/// `message` with `caller` stamped the way the edge calls the auth service.
pub fn as_caller<T>(message: T, caller: &Caller) -> Request<T> {
    let mut request = Request::new(message);
    ServiceCredentials::new(EDGE_TOKEN)
        .unwrap()
        .stamp(&mut request, caller)
        .unwrap();
    request
}

/// `message` as an operator with the platform API key (grpcurl).
pub fn as_operator<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {PLATFORM_API_KEY}").parse().unwrap(),
    );
    request
}
