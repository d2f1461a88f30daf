//! Turning ingress off (`OPENCLAW_INGRESS_ENABLED=false` after it was true): the next
//! apply or reconcile removes each instance's Ingress and ManagedCertificate, and only
//! those our field manager applied.

use std::time::Duration;

use crate::support::*;
use clawfleet_lifecycle::{
    model::DesiredState,
    runtime::{DataRetention, Runtime},
};
use serde_json::json;

fn ingress_kinds(
    server: &clawfleet_kube_apiserver::KubeApiServer,
    name: &str,
) -> Vec<&'static str> {
    ["Ingress", "ManagedCertificate"]
        .into_iter()
        .filter(|kind| server.get(kind, NAMESPACE, name).is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_ingress_removes_the_instances_ingress_objects_and_nothing_else() {
    let server = server().await;
    let mut enabled = config();
    enabled.ingress_domain_base = Some("claw.example.com".into());
    let before = runtime(&server, enabled).await;
    for id in ["alice", "carol"] {
        before
            .apply(&spec(id, DesiredState::Running))
            .await
            .unwrap();
    }
    before.shutdown().await;
    drop(before);
    assert_eq!(
        ingress_kinds(&server, "alice-openclaw"),
        ["Ingress", "ManagedCertificate"]
    );
    // Bob's Ingress carries the platform's labels but someone else made it.
    let labels = json!({
        "openclaw.ai/user": "bob",
        "app.kubernetes.io/name": "openclaw",
        "app.kubernetes.io/instance": "bob",
        "app.kubernetes.io/managed-by": "clawfleet",
    });
    server
        .create(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": { "name": "bob-openclaw", "namespace": NAMESPACE, "labels": labels },
            "spec": { "rules": [{ "host": "bob.example.com" }] },
        }))
        .unwrap();

    let after = runtime(&server, config()).await;
    for id in ["alice", "bob"] {
        after.apply(&spec(id, DesiredState::Running)).await.unwrap();
    }
    assert_eq!(ingress_kinds(&server, "alice-openclaw"), Vec::<&str>::new());
    assert_eq!(ingress_kinds(&server, "bob-openclaw"), ["Ingress"]);
    // Carol is not applied yet: hers go when she is (or when she is deleted).
    assert_eq!(
        ingress_kinds(&server, "carol-openclaw"),
        ["Ingress", "ManagedCertificate"]
    );
    let carol = spec("carol", DesiredState::Running).id;
    after.delete(&carol, DataRetention::Keep).await.unwrap();
    assert_eq!(ingress_kinds(&server, "carol-openclaw"), Vec::<&str>::new());

    // Once removed they stay removed, and re-applying writes nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.clear_request_log();
    after
        .apply(&spec("alice", DesiredState::Running))
        .await
        .unwrap();
    let writes = writes(&server);
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(ingress_kinds(&server, "alice-openclaw"), Vec::<&str>::new());
    after.shutdown().await;
}
