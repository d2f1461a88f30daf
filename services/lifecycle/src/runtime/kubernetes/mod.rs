//! The Kubernetes runtime (docs/product/instances.md, docs/product/runtimes.md#kubernetes): each instance is a Deployment, headless
//! Service, Secret, ConfigMap and PVC (plus Ingress and ManagedCertificate when enabled)
//! in one namespace, written with server-side apply under one field manager; one
//! NetworkPolicy covers every gateway (docs/capacity.md).
//!
//! - [`manifests`] builds the objects from k8s-openapi types (pure, golden-tested);
//! - [`watch`] keeps a lean [`cache`] of this platform's objects and pods ([`lean`] says
//!   what is kept), from which [`phase`] derives what callers see: Get, List and Watch
//!   never call the apiserver;
//! - [`apply`] writes only what the cache shows missing or different, so re-applying
//!   an unchanged instance writes nothing; [`drift`] re-applies an instance whose
//!   objects were deleted or edited, never on mere status changes;
//! - [`deletions`] keeps a reconcile racing a delete from bringing the instance back;
//!   [`leftovers`] removes objects an instance no longer gets;
//! - [`exec`] runs commands in the gateway container through `pods/exec`;
//! - [`lease`] elects the one lifecycle replica that writes (applies, repairs, deletes);
//! - [`api`] is the only door to the apiserver, checked against the [`rbac`] table, and
//!   [`failure`] says what its errors mean to callers; [`api_spans`] traces each call.

pub mod api;
pub mod api_spans;
pub mod applier;
pub mod apply;
pub mod cache;
pub mod config;
pub mod deletions;
pub mod drift;
pub mod exec;
pub mod failure;
pub mod kinds;
pub mod lean;
pub mod lease;
pub mod leftovers;
pub mod manifests;
pub mod names;
pub mod phase;
pub mod plan;
pub mod pods;
pub mod queue;
pub mod rbac;
pub mod state;
pub mod subset;
pub mod watch;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::{
    api::{ClusterApi, ConnectError},
    config::{KubernetesConfig, NOVNC_PORT},
    kinds::ObjectKind,
    names::object_name,
    state::{DesiredInstance, RuntimeState},
};
use super::{
    DataRetention, ExecOutput, ExecRequest, GatewayEndpoint, Observed, Runtime, RuntimeError,
};
use crate::{instance_id::InstanceId, model::InstanceSpec};

/// How often instances shown as starting are re-derived (see [`phase`]).
const STARTING_RECHECK: Duration = Duration::from_secs(5);

/// Why the Kubernetes runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesStartError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("the cluster's objects were not listed within {0:?}")]
    SyncTimeout(Duration),
}

/// What the background tasks share with the runtime.
pub struct Core {
    api: ClusterApi,
    state: Arc<RuntimeState>,
}

impl Core {
    /// Applies `spec` unless it is an incarnation that was deleted (see [`deletions`]).
    async fn apply(&self, spec: &InstanceSpec) -> Result<usize, RuntimeError> {
        let _gate = self.state.deletions.gate(&spec.id).await;
        if self
            .state
            .deletions
            .is_buried(&spec.id, &spec.gateway_token)
        {
            tracing::info!(instance = %spec.id, "not re-creating a deleted instance");
            return Err(RuntimeError::NotFound(spec.id.clone()));
        }
        let desired = self.state.set_desired(spec);
        self.write(&desired).await
    }

    /// Re-applies what `id` should be, unless it was deleted meanwhile.
    async fn repair(&self, id: &InstanceId) -> Result<usize, RuntimeError> {
        let _gate = self.state.deletions.gate(id).await;
        match self.state.desired(id) {
            Some(desired) => self.write(&desired).await,
            None => Ok(0),
        }
    }

    /// Writes what differs, then removes leftovers; the caller holds the gate.
    async fn write(&self, desired: &DesiredInstance) -> Result<usize, RuntimeError> {
        let id = &desired.spec.id;
        self.ensure_shared_policy().await?;
        let live = self.state.cache.get(id);
        let objects = desired.objects(&self.state.config);
        let written = apply::apply_objects(&self.api, &live, &objects).await?;
        let removed = leftovers::remove(&self.api, &self.state, id, &live, &objects).await?;
        Ok(written + removed)
    }

    /// Applies the NetworkPolicy of all gateways unless it already says what it should;
    /// before any instance's objects, so no gateway pod runs outside it.
    async fn ensure_shared_policy(&self) -> Result<(), RuntimeError> {
        let policy = manifests::gateway_network_policy(&self.state.config);
        if self.state.shared_policy_is(policy.digest) {
            return Ok(());
        }
        self.api.apply(&policy).await?;
        self.state.shared_policy_found(Some(policy.digest));
        Ok(())
    }

    async fn delete(&self, id: &InstanceId, retention: DataRetention) -> Result<(), RuntimeError> {
        let _gate = self.state.deletions.gate(id).await;
        let live = self.state.cache.get(id);
        let incarnation = self
            .state
            .desired(id)
            .map(|desired| lean::token_digest_of(&desired.spec.gateway_token))
            .or(live.gateway_token_digest);
        if let Some(token_digest) = incarnation {
            self.state.deletions.bury(id, token_digest);
        }
        // Forget it first, so the deletions below do not read as drift.
        self.state.forget(id);
        let ingress_enabled = self.state.config.ingress_domain_base.is_some();
        apply::delete_objects(&self.api, id, &live, ingress_enabled, retention).await?;
        // Leftovers were found by a one-off list; no watcher reports them gone.
        for kind in leftovers::kinds(ingress_enabled) {
            self.state.cache.remove(kind, id, &kind.object_name(id));
        }
        Ok(())
    }
}

pub struct KubernetesRuntime {
    core: Arc<Core>,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl KubernetesRuntime {
    /// Connects with the configured credentials, then [`Self::with_client`].
    pub async fn start(config: KubernetesConfig) -> Result<Self, KubernetesStartError> {
        let client = api::connect(&config.access).await?;
        Self::with_client(client, config).await
    }

    /// Starts the watchers and waits until every kind has been listed once, so the
    /// first reconcile sees what already exists.
    pub async fn with_client(
        client: kube::Client,
        config: KubernetesConfig,
    ) -> Result<Self, KubernetesStartError> {
        let api =
            ClusterApi::new(client, config.namespace.clone()).with_call_timeout(config.api_timeout);
        let sync_timeout = config.sync_timeout;
        let ingress = config.ingress_domain_base.is_some();
        let (state, repair_queue) = RuntimeState::new(config);
        let core = Arc::new(Core {
            api: api.clone(),
            state: state.clone(),
        });
        let stop = CancellationToken::new();
        let kinds: Vec<ObjectKind> = ObjectKind::OWNED
            .into_iter()
            .filter(|kind| (ingress || !kind.is_ingress()) && !kind.is_retired())
            .chain([ObjectKind::Pod])
            .collect();
        let (synced, mut synced_count) = tokio::sync::watch::channel(0usize);
        let mut tasks: Vec<JoinHandle<()>> = kinds
            .iter()
            .map(|kind| {
                tokio::spawn(watch::run(
                    api.clone(),
                    *kind,
                    state.clone(),
                    synced.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        tasks.push(tokio::spawn(drift::run(
            core.clone(),
            repair_queue,
            state.repairs.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(recheck_starting(state.clone(), stop.clone())));
        for _ in 0..state.config.apply_concurrency.max(1) {
            tasks.push(tokio::spawn(applier::run(core.clone(), stop.clone())));
        }
        let runtime = Self {
            core,
            stop,
            tasks: Mutex::new(tasks),
        };
        let all = kinds.len();
        let synced = async {
            let _ = synced_count.wait_for(|count| *count >= all).await;
            find_leftovers(&api, &state).await;
        };
        if tokio::time::timeout(sync_timeout, synced).await.is_err() {
            runtime.shutdown().await;
            return Err(KubernetesStartError::SyncTimeout(sync_timeout));
        }
        Ok(runtime)
    }

    fn config(&self) -> &KubernetesConfig {
        &self.core.state.config
    }

    /// The client the runtime talks to the cluster with (the leader election uses it).
    pub fn client(&self) -> kube::Client {
        self.core.api.client()
    }

    /// What the cache holds of `id` (tests and the capacity bench check it stays lean).
    pub fn cached(&self, id: &InstanceId) -> cache::InstanceObjects {
        self.core.state.cache.get(id)
    }

    /// How many accepted instances wait for the background applier.
    pub fn waiting_to_apply(&self) -> usize {
        self.core.state.waiting_to_apply()
    }

    /// The namespace of the instances (and of the leader Lease).
    pub fn namespace(&self) -> &str {
        &self.config().namespace
    }

    /// The pod to exec in: the newest running, not terminating pod (ready ones first).
    fn exec_pod(&self, id: &InstanceId) -> Result<String, RuntimeError> {
        let objects = self.core.state.cache.get(id);
        if !objects.has_workload() && self.core.state.desired(id).is_none() {
            return Err(RuntimeError::NotFound(id.clone()));
        }
        let mut candidates: Vec<_> = objects
            .pods
            .values()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .filter(|pod| {
                pods::gateway_status(pod)
                    .and_then(|status| status.state.as_ref())
                    .is_some_and(|state| state.running.is_some())
            })
            .collect();
        candidates.sort_by_key(|pod| {
            (
                !pods::condition(pod, "Ready"),
                std::cmp::Reverse(pod.metadata.creation_timestamp.as_ref().map(pods::time_ms)),
            )
        });
        candidates
            .first()
            .and_then(|pod| pod.metadata.name.clone())
            .ok_or_else(|| RuntimeError::NotRunning {
                id: id.clone(),
                reason: self.observe(id).reason,
            })
    }
}

/// Lists leftovers until it works: the watchers just listed, so a failure here
/// is a blip, and the start's own timeout bounds the retries.
async fn find_leftovers(api: &ClusterApi, state: &RuntimeState) {
    let mut backoff =
        clawfleet_kit::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        match leftovers::find(api, state).await {
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot list leftovers; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

async fn recheck_starting(state: Arc<RuntimeState>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(STARTING_RECHECK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => state.refresh_starting(),
            _ = stop.cancelled() => return,
        }
    }
}

#[tonic::async_trait]
impl Runtime for KubernetesRuntime {
    fn set_leading(&self, leading: bool) {
        self.core.state.set_leading(leading);
    }

    fn name(&self) -> &'static str {
        "kubernetes"
    }

    async fn apply(&self, spec: &InstanceSpec) -> Result<(), RuntimeError> {
        if self.stop.is_cancelled() {
            return Err(RuntimeError::ShuttingDown);
        }
        let written = self.core.apply(spec).await?;
        if written > 0 {
            tracing::debug!(instance = %spec.id, written, "instance applied");
        }
        Ok(())
    }

    fn applies_in_background(&self) -> bool {
        true
    }

    /// Records what the instance should be and queues it for the applier; nothing is
    /// queued when the cache shows the cluster already says it.
    async fn submit(&self, spec: &InstanceSpec, owner: &str) -> Result<(), RuntimeError> {
        if self.stop.is_cancelled() {
            return Err(RuntimeError::ShuttingDown);
        }
        let state = &self.core.state;
        if state.deletions.is_buried(&spec.id, &spec.gateway_token) {
            tracing::info!(instance = %spec.id, "not re-creating a deleted instance");
            return Err(RuntimeError::NotFound(spec.id.clone()));
        }
        let desired = state.set_desired(spec);
        let live = state.cache.get(&spec.id);
        let in_sync = desired.digests.iter().all(|(kind, digest)| {
            live.owned
                .get(kind)
                .is_some_and(|object| object.in_sync_with == Some(*digest))
        }) && !live.owned.keys().any(|kind| {
            kind.is_retired() || (kind.is_ingress() && desired.digest(*kind).is_none())
        });
        if !in_sync {
            state.enqueue(owner, &spec.id);
        }
        Ok(())
    }

    async fn delete(&self, id: &InstanceId, retention: DataRetention) -> Result<(), RuntimeError> {
        self.core.delete(id, retention).await
    }

    fn observe(&self, id: &InstanceId) -> Observed {
        self.core.state.observe(id)
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<InstanceId> {
        self.core.state.board.subscribe()
    }

    async fn gateway_endpoint(
        &self,
        id: &InstanceId,
        gateway_token: &str,
    ) -> Result<GatewayEndpoint, RuntimeError> {
        let objects = self.core.state.cache.get(id);
        // The token comes from the record; the cache keeps only a digest of the one the
        // Secret holds, so the endpoint is handed out once the cluster has that token.
        if objects.gateway_token_digest != Some(lean::token_digest_of(gateway_token)) {
            return Err(if objects.owned.contains_key(&ObjectKind::Secret) {
                RuntimeError::NotRunning {
                    id: id.clone(),
                    reason: "the instance secret does not hold the current token yet".into(),
                }
            } else if self.core.state.desired(id).is_some() || objects.has_workload() {
                RuntimeError::NotRunning {
                    id: id.clone(),
                    reason: "the instance secret is not created yet".into(),
                }
            } else {
                RuntimeError::NotFound(id.clone())
            });
        }
        let gateway_token = gateway_token.to_owned();
        let stopped = objects
            .deployment
            .as_ref()
            .and_then(|deployment| deployment.spec.as_ref())
            .and_then(|spec| spec.replicas)
            == Some(0);
        if stopped || objects.deployment.is_none() {
            return Err(RuntimeError::NotRunning {
                id: id.clone(),
                reason: self.observe(id).reason,
            });
        }
        let host = format!(
            "{}.{}.svc.cluster.local",
            object_name(id),
            self.config().namespace
        );
        Ok(GatewayEndpoint {
            gateway_url: format!("ws://{host}:{}", self.config().gateway_port),
            gateway_token,
            vnc_url: format!("ws://{host}:{NOVNC_PORT}"),
            // Pod IPs reach the gateway: the bridge pairs its device (see the sidecar).
            loopback: false,
        })
    }

    async fn exec(
        &self,
        id: &InstanceId,
        request: ExecRequest,
    ) -> Result<ExecOutput, RuntimeError> {
        exec::validate(&request)?;
        let pod = self.exec_pod(id)?;
        exec::exec_in_pod(&self.core.api, id, &pod, request).await
    }

    fn known_instances(&self) -> Vec<InstanceId> {
        self.core.state.cache.instances_with_workloads()
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for task in tasks {
            let _ = task.await;
        }
    }
}
