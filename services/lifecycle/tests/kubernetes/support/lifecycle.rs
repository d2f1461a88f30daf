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
    }
}

/// A registry holding `records`; keep the directory alive as long as the registry.
pub async fn registry_with(records: &[InstanceRecord]) -> (tempfile::TempDir, Arc<Registry>) {
    let data = tempfile::tempdir().unwrap();
    let store = InstanceStore::open(&data.path().join("lifecycle.db"))
        .await
        .unwrap();
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

pub fn handler(registry: Arc<Registry>, runtime: SharedRuntime) -> InstanceServiceHandler {
    InstanceServiceHandler::new(Arc::new(Lifecycle {
        registry,
        runtime,
        hub: WatchHub::default(),
        shutdown: CancellationToken::new(),
    }))
}

/// `body` as a request from `caller`, past the identity interceptor.
pub fn request<T>(caller: Caller, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request.extensions_mut().insert(caller);
    request
}
