//! Where an instance's gateway is: the [`EndpointSource`] the client asks before each
//! connect, and why it may fail to answer.

use clawfleet_kit::secret::SecretString;

/// Where an instance's gateway is and how to authenticate with it.
#[tonic::async_trait]
pub trait EndpointSource: Send + Sync + 'static {
    /// Endpoint and token of an instance's gateway; `refresh` asks to bypass any cache.
    async fn resolve(&self, instance_id: &str, refresh: bool) -> Result<Endpoint, ResolveError>;
}

/// An instance's gateway address and credentials.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `ws://host:port` of the gateway.
    pub url: String,
    /// The shared gateway token.
    pub token: SecretString,
    /// Changes whenever url or token change.
    pub revision: String,
    /// Whether the bridge reaches the gateway over loopback (no device approval needed).
    pub loopback: bool,
}

/// Why an endpoint could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The instance does not exist.
    #[error("instance not found: {0}")]
    NotFound(String),
    /// The instance exists but has no reachable gateway right now.
    #[error("instance gateway unavailable: {0}")]
    Unavailable(String),
    /// The instance is stopped or failed: no call can succeed until someone acts.
    #[error("instance is not running: {0}")]
    NotRunning(String),
    /// The instance id itself is malformed.
    #[error("invalid instance: {0}")]
    Invalid(String),
}
