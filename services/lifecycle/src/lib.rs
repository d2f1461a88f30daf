//! The lifecycle service (`clawfleet.lifecycle.v1.InstanceService`): desired state in
//! a store, actual state in a runtime, a reconciler between them, phases and a watch
//! stream for clients. [`LifecycleServer`] assembles and serves it.

/// The id rule lives in the kit, shared by every service.
pub use clawfleet_kit::instance_id;
pub mod backups; // taking and restoring backups around the runtime: quiesce, swap, verify
pub mod deletion; // accepted deletes torn down on a task of their own, joined by retries
pub mod exec_slots; // the bound on commands running inside one instance at a time
pub mod kept_data; // kept data of deleted instances: counted toward the plan, purged after retention
pub mod metrics; // instances by phase, time to running, reconcile passes, failures and repairs
pub mod model; // records, specs, phases
pub mod provider_keys; // per-user OpenRouter keys: provisioning, plans, lapses, rotation, usage
pub mod reconciler; // converging the runtime to the store, at start and periodically
pub mod registry; // the in-memory view of the store that every read uses
pub mod replication; // hearing other replicas' writes (PostgreSQL notifications)
pub mod revision; // one hybrid clock ordering every change watchers see
pub mod runtime; // the runtime trait, local processes and Kubernetes
pub mod service; // the gRPC handlers
pub mod settling; // waiting briefly for a starting gateway to settle
pub mod store; // desired state on SQLite or PostgreSQL
pub mod validation; // input checks of create
pub mod view; // what callers see of an instance
pub mod watch_hub; // fan-out of changes to WatchInstances streams

use std::{path::PathBuf, sync::Arc, time::Duration};

use clawfleet_contracts::lifecycle::v1::instance_service_server::{
    InstanceServiceServer, SERVICE_NAME,
};
use clawfleet_kit::{
    identity::Credentials,
    server::{ServerError, serve_grpc},
    shutdown::ShutdownToken,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::service::Routes;

use crate::{
    registry::Registry,
    runtime::{
        SharedRuntime,
        kubernetes::{
            KubernetesRuntime, KubernetesStartError,
            config::KubernetesConfig,
            lease::{self, LeaseElector},
        },
        local::{LocalRuntime, LocalRuntimeConfig},
        traced::TracedRuntime,
    },
    service::{InstanceServiceHandler, Lifecycle},
    store::{InstanceStore, StoreError},
    watch_hub::WatchHub,
};

/// Everything the lifecycle service needs to start.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub data_dir: PathBuf,
    /// Where desired state is kept (`DATABASE_URL`; default a SQLite file in the data
    /// dir). Replicas share one PostgreSQL database.
    pub database_url: String,
    /// Which runtime runs the gateways (`CLAWFLEET_RUNTIME`), with its settings.
    pub runtime: RuntimeChoice,
    pub reconcile_period: Duration,
    /// How often a quiet watch stream sends a bookmark (`CLAWFLEET_WATCH_BOOKMARK_SECONDS`).
    pub watch_bookmark_interval: Duration,
    /// How long the kept data of a deleted instance outlives it
    /// (`CLAWFLEET_KEPT_DATA_RETENTION_SECONDS`, default [`kept_data::DEFAULT_RETENTION`]).
    pub kept_data_retention: Duration,
    /// Per-user OpenRouter keys and subscription lapses (docs/product/provider-keys.md).
    pub provider_keys: provider_keys::ProviderKeysConfig,
    /// Where backups go and the key sealing them; `None`: no backups
    /// (docs/product/backups.md).
    pub backups: Option<backups::BackupsConfig>,
}

/// The runtime that runs the gateways, with the settings only that runtime needs (the
/// Kubernetes runtime has no use for a local openclaw install, so none is resolved).
#[derive(Debug, Clone)]
pub enum RuntimeChoice {
    /// Real gateway processes on this machine (the embedded default).
    Local(LocalRuntimeConfig),
    /// One Deployment and its objects per instance on a cluster.
    Kubernetes(Box<KubernetesConfig>),
}

impl RuntimeChoice {
    pub fn name(&self) -> &'static str {
        match self {
            RuntimeChoice::Local(_) => "local",
            RuntimeChoice::Kubernetes(_) => "kubernetes",
        }
    }
}

/// Why the lifecycle service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot prepare data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the instance store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot start the kubernetes runtime: {0}")]
    Kubernetes(#[from] KubernetesStartError),
    #[error("cannot build the OpenRouter client: {0}")]
    ProviderKeys(#[from] rustls::Error),
    #[error("cannot set up backups: {0}")]
    Backups(#[from] backups::BackupsSetupError),
}

/// A started lifecycle service: instances reconciled, background tasks running.
pub struct LifecycleServer {
    lifecycle: Arc<Lifecycle>,
    background: Vec<JoinHandle<()>>,
}

impl LifecycleServer {
    /// Opens the store, starts the runtime and brings every stored instance back.
    pub async fn start(config: LifecycleConfig) -> Result<Self, StartError> {
        let data_dir_error = |source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(data_dir_error)?;
        let backups = match &config.backups {
            Some(settings) => Some(Arc::new(backups::Backups::open(settings)?)),
            None => None,
        };
        let store = InstanceStore::open(&config.database_url).await?;
        let registry = Arc::new(Registry::load(store).await?);
        let (runtime, elector): (SharedRuntime, Option<LeaseElector>) = match &config.runtime {
            RuntimeChoice::Local(local) => (
                Arc::new(LocalRuntime::new(local.clone()).map_err(data_dir_error)?),
                None,
            ),
            RuntimeChoice::Kubernetes(kubernetes) => {
                let runtime = KubernetesRuntime::start((**kubernetes).clone()).await?;
                let elector = LeaseElector::new(
                    runtime.client(),
                    runtime.namespace(),
                    lease::identity(),
                    kubernetes.lease,
                );
                (Arc::new(runtime), Some(elector))
            }
        };
        let runtime: SharedRuntime = Arc::new(TracedRuntime::new(runtime));
        let shutdown = ShutdownToken::new();
        let mut background = Vec::new();
        // Only the Kubernetes runtime runs replicated; the local one always leads.
        let leadership = match elector {
            Some(elector) => {
                let (leadership, election) = elector.start(shutdown.clone()).await;
                background.push(election);
                leadership
            }
            None => tokio::sync::watch::channel(true).1,
        };
        runtime.set_leading(*leadership.borrow());
        let hub = WatchHub::with_bookmark_interval(config.watch_bookmark_interval);
        let lifecycle = Arc::new(
            Lifecycle::new(
                registry.clone(),
                runtime.clone(),
                hub.clone(),
                shutdown.clone(),
            )
            .with_leadership(leadership.clone())
            .with_provider_keys(provider_keys::ProviderKeys::new(
                config.provider_keys.clone(),
            )?)
            .with_backups(backups),
        );
        metrics::phases::watch(&lifecycle);
        background.push(reconciler::spawn_on_leadership(
            lifecycle.clone(),
            leadership,
            shutdown.clone(),
        ));
        background.extend([
            hub.spawn_forwarder(registry.clone(), runtime.clone(), shutdown.clone()),
            reconciler::spawn_periodic(
                lifecycle.clone(),
                config.reconcile_period,
                shutdown.clone(),
            ),
            kept_data::spawn_purger(
                lifecycle.clone(),
                config.kept_data_retention,
                shutdown.clone(),
            ),
        ]);
        background.push(provider_keys::upkeep::spawn(
            lifecycle.clone(),
            shutdown.clone(),
        ));
        background.extend(replication::spawn_follower(
            lifecycle.clone(),
            shutdown.clone(),
        ));
        reconciler::reconcile_all(&lifecycle).await;
        tracing::info!(
            runtime = runtime.name(),
            store = registry.store().database().backend_name(),
            instances = registry.all().len(),
            "lifecycle started"
        );
        Ok(Self {
            lifecycle,
            background,
        })
    }

    /// The InstanceService handlers, without the identity interceptor (tests call them
    /// with the caller the interceptor would attach).
    pub fn handler(&self) -> InstanceServiceHandler {
        InstanceServiceHandler::new(self.lifecycle.clone())
    }

    /// Whether this replica leads (always, outside the Kubernetes runtime).
    pub fn is_leader(&self) -> bool {
        self.lifecycle.is_leader()
    }

    /// The gRPC routes of the InstanceService (the access layer of
    /// [`clawfleet_kit::server::serve_grpc`] authenticates every call).
    pub fn routes(&self) -> Routes {
        let handler = InstanceServiceHandler::new(self.lifecycle.clone());
        Routes::new(InstanceServiceServer::new(handler))
    }

    /// Serves gRPC on `listener` until `shutdown`, then stops gateways and background work.
    pub async fn serve(
        self,
        listener: TcpListener,
        credentials: Credentials,
        shutdown: ShutdownToken,
    ) -> Result<(), ServerError> {
        let routes = self.routes();
        // Watch streams end (with a status saying so) as soon as the stop begins:
        // graceful shutdown waits for open streams, which would otherwise wait for it.
        let streams = self.lifecycle.shutdown.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            streams.cancel();
        });
        let served = serve_grpc(listener, routes, &[SERVICE_NAME], credentials, shutdown).await;
        self.stop().await;
        served
    }

    /// Stops background work and every local gateway (desired state is kept; on
    /// Kubernetes the gateways keep running).
    pub async fn stop(self) {
        self.lifecycle.shutdown.cancel();
        self.lifecycle.runtime.shutdown().await;
        for task in self.background {
            let _ = task.await;
        }
        self.lifecycle.registry.close().await;
        tracing::info!("lifecycle stopped");
    }
}
