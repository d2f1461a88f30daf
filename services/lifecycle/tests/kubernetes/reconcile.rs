//! Recovery on the Kubernetes runtime: a create interrupted by a crash is finished at
//! the next start, and the workloads of an instance the store does not know are
//! removed (keeping its data); the lifecycle service picks the runtime from its config.

use std::{sync::Arc, time::Duration};

use crate::support::{lifecycle::record, *};
use clawfleet_lifecycle::{
    model::DesiredState,
    reconciler,
    registry::Registry,
    runtime::{Runtime, SharedRuntime},
    store::InstanceStore,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_create_is_finished_and_unknown_instances_are_cleaned_up() {
    let server = server().await;
    // Before the crash: bob was fully created but his record is gone (a delete that
    // crashed between the store and the cluster), and alice's create died after her
    // Secret, ConfigMap, PVC and Service but before her Deployment.
    let before = runtime(&server, config()).await;
    before
        .apply(&spec("bob", DesiredState::Running))
        .await
        .unwrap();
    server.fail_requests(Some("deployments"), Some("patch"), 500, 1);
    assert!(
        before
            .apply(&spec("alice", DesiredState::Running))
            .await
            .is_err()
    );
    before.shutdown().await;
    drop(before);
    assert!(
        server
            .get("Deployment", NAMESPACE, "alice-openclaw")
            .is_none()
    );
    assert!(server.get("Secret", NAMESPACE, "alice-openclaw").is_some());

    // The platform starts again; the store knows alice only.
    let data = tempfile::tempdir().unwrap();
    let store = InstanceStore::open(&lifecycle::sqlite_url(data.path()))
        .await
        .unwrap();
    store.insert(&record("alice")).await.unwrap();
    let registry = Arc::new(Registry::load(store).await.unwrap());
    let after: SharedRuntime = Arc::new(runtime(&server, config()).await);
    assert_eq!(
        after
            .known_instances()
            .iter()
            .map(|id| id.to_string())
            .collect::<std::collections::BTreeSet<_>>(),
        ["alice".to_owned(), "bob".to_owned()].into()
    );
    reconciler::reconcile_all(&lifecycle::lifecycle(registry.clone(), after.clone())).await;

    eventually("alice's deployment", || {
        server.get("Deployment", NAMESPACE, "alice-openclaw")
    })
    .await;
    let alice = spec("alice", DesiredState::Running).id;
    eventually("alice running", || {
        (after.observe(&alice).phase == clawfleet_lifecycle::model::Phase::Running).then_some(())
    })
    .await;
    eventually("bob's workloads gone, his data kept", || {
        (objects_of(&server, "bob")
            == [(
                "PersistentVolumeClaim".to_owned(),
                "bob-openclaw-data".to_owned(),
            )])
        .then_some(())
    })
    .await;
    assert_eq!(
        after
            .known_instances()
            .iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    after.shutdown().await;
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_service_runs_on_the_runtime_its_config_names() {
    let server = server().await;
    let data = tempfile::tempdir().unwrap();
    {
        let store = InstanceStore::open(&lifecycle::sqlite_url(data.path()))
            .await
            .unwrap();
        store.insert(&record("carol")).await.unwrap();
        store.close().await;
    }
    let lifecycle = lifecycle_server(&server, data.path(), Duration::from_secs(30)).await;
    // Started means reconciled: carol's objects are in the cluster once the background
    // apply ran.
    for kind in ["Deployment", "Service", "Secret", "ConfigMap"] {
        eventually(kind, || server.get(kind, NAMESPACE, "carol-openclaw")).await;
    }
    lifecycle.stop().await;
    // Stopping the platform leaves the gateways running on the cluster.
    assert!(
        server
            .get("Deployment", NAMESPACE, "carol-openclaw")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_reconciling_unchanged_instances_writes_nothing() {
    let server = server().await;
    let before = runtime(&server, config()).await;
    before
        .apply(&spec("alice", DesiredState::Running))
        .await
        .unwrap();
    before.shutdown().await;
    drop(before);

    // The new runtime knows alice's objects from its watchers' first list only.
    let after = runtime(&server, config()).await;
    server.clear_request_log();
    for _ in 0..2 {
        after
            .apply(&spec("alice", DesiredState::Running))
            .await
            .unwrap();
    }
    let writes = writes(&server);
    assert!(writes.is_empty(), "{writes:?}");
    after.shutdown().await;
}
