//! What the runtime holds and writes at scale (docs/capacity.md): the loopback API
//! server answers with managedFields and status as heavy as a real one's, the cache keeps
//! none of it, no Secret data is kept, and an idle resync writes nothing.

use clawfleet_kube_apiserver::{PodScript, PodState};
use clawfleet_lifecycle::{
    model::{DesiredState, Phase},
    runtime::{
        Runtime,
        kubernetes::{
            kinds::ObjectKind,
            names::{self, FIELD_MANAGER},
        },
    },
};

use crate::support::*;

fn managed_fields_bytes(object: &serde_json::Value) -> usize {
    serde_json::to_vec(&object["metadata"]["managedFields"])
        .map(|bytes| bytes.len())
        .unwrap_or(0)
}

/// A real apiserver returns a Deployment with 10–15 KB of managedFields (the applier's
/// fields and the controller's status) and a pod with the controller's and the
/// kubelet's; measuring the cache against a server that sent less would flatter it.
#[tokio::test]
async fn the_api_server_answers_with_managed_fields_and_status_like_a_real_one() {
    let server = server().await;
    server.set_default_pod_script(PodScript::stays(PodState::Running { ready: true }));
    let runtime = runtime(&server, config()).await;
    let alice = spec("alice", DesiredState::Running);
    runtime.apply(&alice).await.unwrap();
    eventually("alice running", || {
        (runtime.observe(&alice.id).phase == Phase::Running).then_some(())
    })
    .await;
    let deployment = server
        .objects("Deployment", NAMESPACE)
        .into_iter()
        .next()
        .expect("a deployment");
    let pod = server
        .objects("Pod", NAMESPACE)
        .into_iter()
        .next()
        .expect("a pod");
    let deployment_bytes = serde_json::to_vec(&deployment).unwrap().len();
    let pod_bytes = serde_json::to_vec(&pod).unwrap().len();
    println!(
        "deployment {deployment_bytes} B ({} B managedFields), pod {pod_bytes} B ({} B managedFields)",
        managed_fields_bytes(&deployment),
        managed_fields_bytes(&pod)
    );
    let managers = |object: &serde_json::Value| -> Vec<String> {
        object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| entry["manager"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(managers(&deployment).contains(&"kube-controller-manager".to_owned()));
    assert!(managers(&pod).contains(&"kubelet".to_owned()));
    assert!(deployment["status"]["conditions"].is_array());
    assert!(pod["status"]["containerStatuses"].is_array());
    runtime.shutdown().await;
}

/// The cache holds no Secret data, no managedFields, no pod spec and no object body:
/// only digests, uids and the typed fields phases are derived from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_no_secret_data_and_no_whole_objects() {
    let server = server().await;
    server.set_default_pod_script(PodScript::stays(PodState::Running { ready: true }));
    let runtime = runtime(&server, config()).await;
    let alice = spec("alice", DesiredState::Running);
    runtime.apply(&alice).await.unwrap();
    eventually("alice running", || {
        (runtime.observe(&alice.id).phase == Phase::Running).then_some(())
    })
    .await;
    let cached = runtime.cached(&alice.id);
    let kept = format!("{cached:?}");
    for secret in ["alice-token", "sk-ant-alice"] {
        assert!(!kept.contains(secret), "{secret} is kept: {kept}");
    }
    for bulky in [
        "managed_fields: Some",
        "registry.example/openclaw",
        "fieldsV1",
    ] {
        assert!(!kept.contains(bulky), "{bulky} is kept: {kept}");
    }
    assert!(cached.gateway_token_digest.is_some());
    assert_eq!(cached.owned.len(), 5, "{:?}", cached.owned.keys());
    let pod = cached.pods.values().next().expect("the pod");
    assert!(pod.spec.is_none());
    assert!(pod.metadata.labels.is_none());
    // What is kept still says everything callers see.
    let endpoint = runtime
        .gateway_endpoint(&alice.id, &alice.gateway_token)
        .await
        .unwrap();
    assert_eq!(endpoint.gateway_token, "alice-token");
    assert!(
        runtime
            .gateway_endpoint(&alice.id, "not-the-token")
            .await
            .is_err()
    );
    runtime.shutdown().await;
}

/// Five objects per instance, a headless Service (no cluster IP, no kube-proxy rules) and
/// one NetworkPolicy for all gateways; a second create writes exactly five objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_five_objects_with_no_cluster_ip_and_one_policy_for_all() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    runtime
        .apply(&spec("alice", DesiredState::Running))
        .await
        .unwrap();
    server.clear_request_log();
    runtime
        .apply(&spec("bob", DesiredState::Running))
        .await
        .unwrap();
    let written: Vec<_> = writes(&server);
    assert_eq!(written.len(), 5, "{written:?}");
    for instance in ["alice", "bob"] {
        let own: Vec<_> = objects_of(&server, instance)
            .into_iter()
            .filter(|(kind, _)| kind != "Pod" && kind != "ReplicaSet")
            .map(|(kind, _)| kind)
            .collect();
        assert_eq!(
            own,
            [
                "ConfigMap",
                "Deployment",
                "PersistentVolumeClaim",
                "Secret",
                "Service"
            ]
        );
        let service = server
            .get("Service", NAMESPACE, &format!("{instance}-openclaw"))
            .unwrap();
        assert_eq!(service["spec"]["clusterIP"], "None", "headless");
    }
    let policies: Vec<String> = server
        .objects("NetworkPolicy", NAMESPACE)
        .iter()
        .map(|policy| policy["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(policies, ["openclaw-gateways"]);
    runtime.shutdown().await;
}

/// A cluster from before: an instance with its own NetworkPolicy and a ClusterIP
/// Service. The next apply removes the policy and replaces the Service with a headless
/// one (a cluster IP cannot be changed in place), and leaves the rest alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_clusters_upgrade_in_place() {
    let server = server().await;
    let alice = spec("alice", DesiredState::Running);
    let client = client_for(&server).await;
    let apply_old = |kind: ObjectKind, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let api: kube::Api<kube::api::DynamicObject> =
                kube::Api::namespaced_with(client, NAMESPACE, &kind.api_resource());
            let name = body["metadata"]["name"].as_str().unwrap().to_owned();
            api.patch(
                &name,
                &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
                &kube::api::Patch::Apply(&body),
            )
            .await
            .unwrap();
        }
    };
    let labels = serde_json::to_value(names::labels(&alice.id)).unwrap();
    apply_old(
        ObjectKind::NetworkPolicy,
        serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "alice-openclaw", "namespace": NAMESPACE, "labels": labels},
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "alice"}},
                     "policyTypes": ["Ingress", "Egress"]}
        }),
    )
    .await;
    apply_old(
        ObjectKind::Service,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "alice-openclaw", "namespace": NAMESPACE, "labels": labels},
            "spec": {"type": "ClusterIP",
                     "selector": {"app.kubernetes.io/instance": "alice", "app.kubernetes.io/name": "openclaw"},
                     "ports": [{"name": "gateway", "port": 18789, "protocol": "TCP", "targetPort": 18789}]}
        }),
    )
    .await;
    let old_service = server.get("Service", NAMESPACE, "alice-openclaw").unwrap();
    assert!(
        old_service["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.")
    );
    // A look-alike someone else made is not the platform's to remove.
    let bystander = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "bob-openclaw", "namespace": NAMESPACE,
                     "labels": {"app.kubernetes.io/instance": "bob"}},
        "spec": {"podSelector": {}}
    });
    server.create(bystander).unwrap();

    let runtime = runtime(&server, config()).await;
    runtime.apply(&alice).await.unwrap();
    assert!(
        server
            .get("NetworkPolicy", NAMESPACE, "alice-openclaw")
            .is_none()
    );
    assert!(
        server
            .get("NetworkPolicy", NAMESPACE, "bob-openclaw")
            .is_some()
    );
    assert!(
        server
            .get("NetworkPolicy", NAMESPACE, "openclaw-gateways")
            .is_some()
    );
    let service = server.get("Service", NAMESPACE, "alice-openclaw").unwrap();
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_ne!(service["metadata"]["uid"], old_service["metadata"]["uid"]);
    // And once upgraded, applying again writes nothing.
    eventually("the cache to see the new service", || {
        runtime
            .cached(&alice.id)
            .owned
            .get(&ObjectKind::Service)
            .filter(|service| !service.has_cluster_ip)
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.clear_request_log();
    runtime.apply(&alice).await.unwrap();
    assert_eq!(writes(&server), []);
    runtime.shutdown().await;
}
