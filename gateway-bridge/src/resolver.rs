//! Where gateways are: endpoints and tokens from `lifecycle.ResolveGateway`, cached, and
//! kept fresh by watching the lifecycle service, so a restarted gateway (new port) or a
//! rotated token is picked up without anyone telling the bridge by hand.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use clawfleet_contracts::{
    common::v1::Phase,
    lifecycle::v1::{
        ResolveGatewayRequest, WatchInstancesRequest,
        instance_service_client::InstanceServiceClient, watch_instances_response::Kind,
    },
};
use clawfleet_kit::client::GrpcChannel;
use clawfleet_kit::identity::ServiceCredentials;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request};

use crate::{
    client::{Endpoint, EndpointSource, ResolveError},
    pool::GatewayPool,
};

/// How long one ResolveGateway call may take.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(5);
/// Pause before reopening a broken watch of the lifecycle service.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// Resolves gateway endpoints through the lifecycle service.
pub struct LifecycleEndpoints {
    client: InstanceServiceClient<GrpcChannel>,
    credentials: ServiceCredentials,
    cache: Mutex<HashMap<String, Endpoint>>,
}

impl LifecycleEndpoints {
    pub fn new(channel: GrpcChannel, credentials: ServiceCredentials) -> Self {
        Self {
            client: InstanceServiceClient::new(channel),
            credentials,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, instance_id: &str) -> Option<Endpoint> {
        self.lock().get(instance_id).cloned()
    }

    /// Drops the cached endpoint of one instance.
    pub fn forget(&self, instance_id: &str) {
        self.lock().remove(instance_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Endpoint>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn request<T>(
        &self,
        message: T,
        deadline: Option<Duration>,
    ) -> Result<Request<T>, tonic::Status> {
        let mut request = Request::new(message);
        self.credentials.stamp_self(&mut request);
        if let Some(deadline) = deadline {
            request.set_timeout(deadline);
        }
        Ok(request)
    }

    /// Watches instance changes until `shutdown`: a deleted instance's client is removed;
    /// a running instance whose endpoint or token changed gets its connection replaced.
    pub fn spawn_watcher(
        self: std::sync::Arc<Self>,
        pool: std::sync::Arc<GatewayPool>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                if let Err(error) = self.watch_once(&pool, &shutdown).await {
                    tracing::debug!(%error, "lifecycle watch ended; reopening");
                }
                tokio::select! {
                    _ = tokio::time::sleep(WATCH_RETRY) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        })
    }

    async fn watch_once(
        &self,
        pool: &GatewayPool,
        shutdown: &CancellationToken,
    ) -> Result<(), tonic::Status> {
        let request = self.request(WatchInstancesRequest { id: String::new() }, None)?;
        let mut stream = self
            .client
            .clone()
            .watch_instances(request)
            .await?
            .into_inner();
        loop {
            let message = tokio::select! {
                message = stream.message() => message?,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let Some(message) = message else {
                return Ok(());
            };
            let Some(instance) = message.instance else {
                continue;
            };
            if message.kind == Kind::Deleted as i32 {
                self.forget(&instance.id);
                pool.remove(&instance.id);
                continue;
            }
            if instance.phase != Phase::Running as i32 {
                // The gateway is down or restarting; its next endpoint may differ.
                self.forget(&instance.id);
                continue;
            }
            let previous = self.cached(&instance.id);
            match self.resolve(&instance.id, true).await {
                Ok(current)
                    if previous
                        .as_ref()
                        .is_some_and(|before| before.revision != current.revision) =>
                {
                    tracing::info!(instance = %instance.id, "gateway endpoint changed; reconnecting");
                    pool.invalidate(&instance.id);
                }
                Ok(_) | Err(_) => {}
            }
        }
    }
}

impl LifecycleEndpoints {
    /// The instance's NoVNC WebSocket URL; empty when it has none.
    pub async fn vnc_url(
        &self,
        instance_id: &str,
    ) -> Result<String, clawfleet_kit::error::ServiceError> {
        let request = self.request(
            ResolveGatewayRequest {
                instance_id: instance_id.to_owned(),
            },
            Some(RESOLVE_DEADLINE),
        )?;
        let response = self.client.clone().resolve_gateway(request).await?;
        Ok(response.into_inner().vnc_url)
    }
}

#[tonic::async_trait]
impl EndpointSource for LifecycleEndpoints {
    async fn resolve(&self, instance_id: &str, refresh: bool) -> Result<Endpoint, ResolveError> {
        if !refresh && let Some(endpoint) = self.cached(instance_id) {
            return Ok(endpoint);
        }
        let request = self
            .request(
                ResolveGatewayRequest {
                    instance_id: instance_id.to_owned(),
                },
                Some(RESOLVE_DEADLINE),
            )
            .map_err(|status| ResolveError::Unavailable(status.message().to_owned()))?;
        match self.client.clone().resolve_gateway(request).await {
            Ok(response) => {
                let response = response.into_inner();
                let endpoint = Endpoint {
                    url: response.gateway_url,
                    token: response.gateway_token.into(),
                    revision: response.endpoint_revision,
                    loopback: response.loopback,
                };
                self.lock().insert(instance_id.to_owned(), endpoint.clone());
                Ok(endpoint)
            }
            Err(status) if status.code() == Code::NotFound => {
                Err(ResolveError::NotFound(status.message().to_owned()))
            }
            Err(status) if status.code() == Code::InvalidArgument => {
                Err(ResolveError::Invalid(status.message().to_owned()))
            }
            Err(status) if status.code() == Code::FailedPrecondition => {
                Err(ResolveError::NotRunning(status.message().to_owned()))
            }
            Err(status) => Err(ResolveError::Unavailable(status.message().to_owned())),
        }
    }
}
