//! The lifecycle service on top of a Kubernetes runtime, for tests that check what gRPC
//! callers see: a store in a temporary directory, its registry, and the handler called
//! directly with the caller the identity interceptor would have attached.

use std::sync::Arc;

use clawfleet_kit::identity::Caller;
use clawfleet_lifecycle::{
    model::{DesiredState, InstanceRecord, Phase, Plan, now_ms},
    registry::Registry,
    runtime::SharedRuntime,
    service::{InstanceServiceHandler, Lifecycle},
    store::InstanceStore,
    watch_hub::WatchHub,
};
use tokio_util::sync::CancellationToken;

use super::spec;

/// A stored instance whose spec is [`spec`]`(id, Running)`.
pub fn record(id: &str) -> InstanceRecord {
    let spec = spec(id, DesiredState::Running);
    InstanceRecord {
        revision: 0,
        id: spec.id,
        owner: "owner-1".into(),
        plan: Plan::Free,
        desired_state: DesiredState::Running,
        model: spec.model,
        gateway_token: spec.gateway_token,
        secrets: spec.secrets,
        created_at_ms: now_ms(),
        updated_at_ms: now_ms(),
        deleting: None,
        generation: 0,
    }
}

/// A registry holding `records`; keep the directory alive as long as the registry.
pub async fn registry_with(records: &[InstanceRecord]) -> (tempfile::TempDir, Arc<Registry>) {
    let data = tempfile::tempdir().unwrap();
    let store = InstanceStore::open(&sqlite_url(data.path())).await.unwrap();
    for record in records {
        store.insert(record).await.unwrap();
    }
    (data, Arc::new(Registry::load(store).await.unwrap()))
}

/// Alice stored in a fresh registry and applied on `runtime`, once her observed phase
/// passes `reached`. Keep the directory alive as long as the registry.
pub async fn applied_alice(
    runtime: &SharedRuntime,
    reached: impl Fn(Phase) -> bool,
) -> (tempfile::TempDir, Arc<Registry>, InstanceRecord) {
    let alice = record("alice");
    let (data, registry) = registry_with(std::slice::from_ref(&alice)).await;
    runtime.apply(&alice.spec()).await.unwrap();
    super::eventually("alice's phase", || {
        reached(runtime.observe(&alice.id).phase).then_some(())
    })
    .await;
    (data, registry, alice)
}

/// The store URL of a SQLite file in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("lifecycle.db").display())
}

/// The service's shared state over `registry` and `runtime`.
pub fn lifecycle(registry: Arc<Registry>, runtime: SharedRuntime) -> Arc<Lifecycle> {
    Arc::new(Lifecycle::new(
        registry,
        runtime,
        WatchHub::default(),
        CancellationToken::new(),
    ))
}

pub fn handler(registry: Arc<Registry>, runtime: SharedRuntime) -> InstanceServiceHandler {
    InstanceServiceHandler::new(lifecycle(registry, runtime))
}

/// `body` as a request from `caller`, past the identity interceptor.
pub fn request<T>(caller: Caller, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request.extensions_mut().insert(caller);
    request
}

/// A lifecycle replica on `server` and the shared `database_url`.
pub async fn replica(
    server: &clawfleet_kube_apiserver::KubeApiServer,
    data_dir: &std::path::Path,
    database_url: &str,
    lease: clawfleet_lifecycle::runtime::kubernetes::lease::LeaseTiming,
) -> clawfleet_lifecycle::LifecycleServer {
    let kubeconfig = data_dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let mut kubernetes = super::config();
    kubernetes.access =
        clawfleet_lifecycle::runtime::kubernetes::config::ClusterAccess::Kubeconfig(kubeconfig);
    kubernetes.lease = lease;
    clawfleet_lifecycle::LifecycleServer::start(clawfleet_lifecycle::LifecycleConfig {
        data_dir: data_dir.to_path_buf(),
        database_url: database_url.to_owned(),
        runtime: clawfleet_lifecycle::RuntimeChoice::Kubernetes(Box::new(kubernetes)),
        // Long: whatever reaches the leader here came through the store's notifications.
        reconcile_period: std::time::Duration::from_secs(600),
        watch_bookmark_interval: clawfleet_lifecycle::watch_hub::DEFAULT_BOOKMARK_INTERVAL,
        kept_data_retention: clawfleet_lifecycle::kept_data::DEFAULT_RETENTION,
        provider_keys: Default::default(),
        backups: None,
    })
    .await
    .expect("the lifecycle replica starts")
}
