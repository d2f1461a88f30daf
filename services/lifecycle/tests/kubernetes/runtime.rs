//! The Kubernetes runtime against a Kubernetes API server on loopback that speaks the
//! real wire format (server-side apply with managed fields, label-selector lists,
//! watches, delete propagation and garbage collection, pods/exec).

use std::time::Duration;

use crate::support::*;
use clawfleet_kube_apiserver::{ExecResult, PodScript, PodState};
use clawfleet_lifecycle::{
    model::{DesiredState, Phase},
    runtime::{DataRetention, ExecRequest, Runtime, RuntimeError},
};

fn managed_kinds(ingress: bool) -> Vec<(&'static str, String)> {
    let mut kinds = vec![
        ("ConfigMap", "alice-openclaw".to_owned()),
        ("Deployment", "alice-openclaw".to_owned()),
        ("PersistentVolumeClaim", "alice-openclaw-data".to_owned()),
        ("Secret", "alice-openclaw".to_owned()),
        ("Service", "alice-openclaw".to_owned()),
    ];
    if ingress {
        kinds.push(("Ingress", "alice-openclaw".to_owned()));
        kinds.push(("ManagedCertificate", "alice-openclaw".to_owned()));
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_created_runs_and_resolves_to_its_service() {
    let server = server().await;
    let mut config = config();
    config.ingress_domain_base = Some("claw.example.com".into());
    let runtime = runtime(&server, config).await;
    let spec = spec("alice", DesiredState::Running);
    runtime.apply(&spec).await.unwrap();
    for (kind, name) in managed_kinds(true) {
        let object = server
            .get(kind, NAMESPACE, &name)
            .unwrap_or_else(|| panic!("{kind} {name} exists"));
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["operation"] == "Apply")
            .map(|entry| entry["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["clawfleet-lifecycle"], "{kind}");
    }
    let ingress = server.get("Ingress", NAMESPACE, "alice-openclaw").unwrap();
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "alice.claw.example.com"
    );

    let observed = eventually("running", || {
        let observed = runtime.observe(&spec.id);
        (observed.phase == Phase::Running).then_some(observed)
    })
    .await;
    assert!(observed.ready);
    assert_eq!(observed.pods.len(), 1);
    let pod = &observed.pods[0];
    assert!(pod.name.starts_with("alice-openclaw-"), "{}", pod.name);
    assert_eq!(pod.phase, "Running");
    assert_eq!(pod.state.as_ref().unwrap().status, "running");
    assert!(pod.conditions.as_ref().unwrap().ready);
    assert!(pod.created_at.is_some());

    let endpoint = runtime
        .gateway_endpoint(&spec.id, &spec.gateway_token)
        .await
        .unwrap();
    assert_eq!(
        endpoint.gateway_url,
        "ws://alice-openclaw.openclaw.svc.cluster.local:18789"
    );
    assert_eq!(
        endpoint.vnc_url,
        "ws://alice-openclaw.openclaw.svc.cluster.local:6080"
    );
    assert_eq!(endpoint.gateway_token, "alice-token");
    assert!(!endpoint.loopback);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_applying_an_unchanged_instance_changes_no_object() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    let spec = spec("alice", DesiredState::Running);
    runtime.apply(&spec).await.unwrap();
    eventually("running", || {
        (runtime.observe(&spec.id).phase == Phase::Running).then_some(())
    })
    .await;
    let versions = |server: &clawfleet_kube_apiserver::KubeApiServer| {
        managed_kinds(false)
            .into_iter()
            .map(|(kind, name)| {
                let object = server.get(kind, NAMESPACE, &name).unwrap();
                (
                    kind,
                    resource_version(&object),
                    object["metadata"]["generation"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    // The deployment controller keeps writing status (ready, available) for a moment
    // after the gateway reads as running; those writes are not ours, so compare only once
    // the objects have settled.
    let before = bounded("objects to settle", async {
        loop {
            let first = versions(&server);
            tokio::time::sleep(Duration::from_millis(300)).await;
            if versions(&server) == first {
                return first;
            }
        }
    })
    .await;
    server.clear_request_log();
    for _ in 0..3 {
        runtime.apply(&spec).await.unwrap();
    }
    // Nothing differs, so nothing is even sent.
    let writes: Vec<_> = server
        .request_log()
        .into_iter()
        .filter(|request| request.method != "GET")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // And a fresh runtime with an empty view of its own applies everything again:
    // the apiserver still changes nothing, because every object says exactly what is
    // stored (defaults and canonical quantities included).
    let second = runtime_without_cache_skip(&server).await;
    second.apply(&spec).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(versions(&server), before);
    second.shutdown().await;
    runtime.shutdown().await;
}

/// A runtime that applies every object (its cache is bypassed by applying directly).
async fn runtime_without_cache_skip(
    server: &clawfleet_kube_apiserver::KubeApiServer,
) -> ForcedApplier {
    ForcedApplier {
        api: clawfleet_lifecycle::runtime::kubernetes::api::ClusterApi::new(
            client_for(server).await,
            NAMESPACE,
        ),
    }
}

struct ForcedApplier {
    api: clawfleet_lifecycle::runtime::kubernetes::api::ClusterApi,
}

impl ForcedApplier {
    async fn apply(
        &self,
        spec: &clawfleet_lifecycle::model::InstanceSpec,
    ) -> Result<(), clawfleet_lifecycle::runtime::kubernetes::failure::ApiFailure> {
        for object in
            clawfleet_lifecycle::runtime::kubernetes::manifests::desired_objects(&config(), spec)
        {
            self.api.apply(&object).await?;
        }
        Ok(())
    }

    async fn shutdown(&self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_never_cause_writes() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    let spec = spec("alice", DesiredState::Running);
    runtime.apply(&spec).await.unwrap();
    let pod = eventually("a pod", || {
        server
            .objects("Pod", NAMESPACE)
            .first()
            .map(|pod| pod["metadata"]["name"].as_str().unwrap().to_owned())
    })
    .await;
    eventually("running", || {
        (runtime.observe(&spec.id).phase == Phase::Running).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.clear_request_log();
    for ready in [false, true, false, true] {
        assert!(server.set_pod_state(NAMESPACE, &pod, PodState::Running { ready }));
        let expected = if ready {
            Phase::Running
        } else {
            Phase::Starting
        };
        eventually("the phase to follow the pod", || {
            (runtime.observe(&spec.id).phase == expected).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = writes(&server);
    assert!(writes.is_empty(), "no reconcile storm: {writes:?}");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_objects_and_edited_replicas_are_repaired_within_seconds() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    let spec = spec("alice", DesiredState::Running);
    runtime.apply(&spec).await.unwrap();
    for (kind, name) in managed_kinds(false) {
        let uid = server.get(kind, NAMESPACE, &name).unwrap()["metadata"]["uid"].clone();
        server.delete(kind, NAMESPACE, &name).unwrap();
        eventually(&format!("{kind} to come back"), || {
            server.get(kind, NAMESPACE, &name).filter(|object| {
                object["metadata"]["uid"] != uid
                    && object["metadata"]["deletionTimestamp"].is_null()
            })
        })
        .await;
    }

    // `kubectl scale --replicas=3`, as a merge patch by another manager.
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client_for(&server).await, NAMESPACE);
    deployments
        .patch(
            "alice-openclaw",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    eventually("the replica count to revert", || {
        let deployment = server.get("Deployment", NAMESPACE, "alice-openclaw")?;
        (deployment["spec"]["replicas"] == 1).then_some(())
    })
    .await;
    eventually("running again", || {
        (runtime.observe(&spec.id).phase == Phase::Running).then_some(())
    })
    .await;
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_scales_to_zero_and_start_comes_back_with_the_same_volume() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    let mut spec = spec("alice", DesiredState::Running);
    runtime.apply(&spec).await.unwrap();
    eventually("running", || {
        (runtime.observe(&spec.id).phase == Phase::Running).then_some(())
    })
    .await;
    let volume = server
        .get("PersistentVolumeClaim", NAMESPACE, "alice-openclaw-data")
        .unwrap()["metadata"]["uid"]
        .clone();

    spec.desired_state = DesiredState::Stopped;
    runtime.apply(&spec).await.unwrap();
    let deployment = server
        .get("Deployment", NAMESPACE, "alice-openclaw")
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 0);
    eventually("stopped with no pod", || {
        let observed = runtime.observe(&spec.id);
        (observed.phase == Phase::Stopped && observed.pods.is_empty()).then_some(())
    })
    .await;
    assert!(matches!(
        runtime
            .gateway_endpoint(&spec.id, &spec.gateway_token)
            .await,
        Err(RuntimeError::NotRunning { .. })
    ));

    spec.desired_state = DesiredState::Running;
    runtime.apply(&spec).await.unwrap();
    eventually("running again", || {
        (runtime.observe(&spec.id).phase == Phase::Running).then_some(())
    })
    .await;
    let after = server
        .get("PersistentVolumeClaim", NAMESPACE, "alice-openclaw-data")
        .unwrap();
    assert_eq!(
        after["metadata"]["uid"], volume,
        "the data volume is the same"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_leaves_nothing_but_the_kept_volume_and_purge_leaves_nothing() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    for id in ["alice", "bob"] {
        let spec = spec(id, DesiredState::Running);
        runtime.apply(&spec).await.unwrap();
        eventually("running", || {
            (runtime.observe(&spec.id).phase == Phase::Running).then_some(())
        })
        .await;
    }
    let alice = spec("alice", DesiredState::Running).id;
    runtime.delete(&alice, DataRetention::Keep).await.unwrap();
    eventually("only the volume left", || {
        (objects_of(&server, "alice")
            == [(
                "PersistentVolumeClaim".to_owned(),
                "alice-openclaw-data".to_owned(),
            )])
        .then_some(())
    })
    .await;
    // Nothing of the deleted instance comes back by itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(objects_of(&server, "alice").len(), 1);
    assert_eq!(runtime.observe(&alice).phase, Phase::Unknown);

    // Creating the same id again (a new incarnation, so a new gateway token) reattaches
    // the kept volume.
    let volume = server
        .get("PersistentVolumeClaim", NAMESPACE, "alice-openclaw-data")
        .unwrap()["metadata"]["uid"]
        .clone();
    let mut again = spec("alice", DesiredState::Running);
    again.gateway_token = "alice-token-2".into();
    runtime.apply(&again).await.unwrap();
    eventually("running again", || {
        (runtime.observe(&alice).phase == Phase::Running).then_some(())
    })
    .await;
    assert_eq!(
        server
            .get("PersistentVolumeClaim", NAMESPACE, "alice-openclaw-data")
            .unwrap()["metadata"]["uid"],
        volume
    );

    let bob = spec("bob", DesiredState::Running).id;
    runtime.delete(&bob, DataRetention::Purge).await.unwrap();
    eventually("nothing left of bob", || {
        objects_of(&server, "bob").is_empty().then_some(())
    })
    .await;
    assert_eq!(objects_of(&server, "alice").len(), 7, "alice is untouched");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_troubles_surface_as_phases_with_reasons() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    let cases = [
        (
            "oom",
            PodScript::stays(PodState::oom_killed(3)),
            Phase::Error,
            "OOMKilled",
        ),
        (
            "pull",
            PodScript::stays(PodState::waiting(
                "ImagePullBackOff",
                "Back-off pulling image \"registry.example/openclaw:2026.9.6\"",
            )),
            Phase::Error,
            "ImagePullBackOff: Back-off pulling image",
        ),
        (
            "config",
            PodScript::stays(PodState::waiting(
                "CreateContainerConfigError",
                "secret \"config-openclaw\" not found",
            )),
            Phase::Error,
            "CreateContainerConfigError",
        ),
        (
            "crash",
            PodScript::stays(PodState::CrashLoopBackOff {
                restart_count: 4,
                last_reason: "Error".into(),
                last_exit_code: 1,
            }),
            Phase::Error,
            "CrashLoopBackOff",
        ),
        (
            "full",
            PodScript::stays(PodState::unschedulable(
                "0/3 nodes are available: 3 Insufficient memory.",
            )),
            Phase::Pending,
            "Unschedulable: 0/3 nodes are available: 3 Insufficient memory.",
        ),
        (
            "slow",
            PodScript::stays(PodState::Running { ready: false }),
            Phase::Starting,
            "gateway",
        ),
    ];
    for (id, script, _, _) in &cases {
        server
            .script_pods(&format!("app.kubernetes.io/instance={id}"), script.clone())
            .unwrap();
    }
    for (id, _, phase, reason) in &cases {
        let spec = spec(id, DesiredState::Running);
        runtime.apply(&spec).await.unwrap();
        // A pending pod reads "waiting for the scheduler" until the scheduler's verdict
        // lands in its conditions, so wait for the phase and the reason together.
        let observed = eventually(&format!("{id} to be {phase:?} with {reason}"), || {
            let observed = runtime.observe(&spec.id);
            (observed.phase == *phase && observed.reason.starts_with(reason)).then_some(observed)
        })
        .await;
        assert!(
            observed.reason.starts_with(reason),
            "{id}: {} does not start with {reason}",
            observed.reason
        );
        assert!(!observed.ready);
    }
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_in_the_gateway_container_through_pods_exec() {
    let server = server().await;
    server.set_exec_handler(|call| match call.command.first().map(String::as_str) {
        Some("openclaw") => ExecResult {
            stdout: format!(
                "{}|{}|{}",
                call.container,
                call.command.join(" "),
                String::from_utf8_lossy(&call.stdin)
            )
            .into_bytes(),
            stderr: b"warn".to_vec(),
            exit_code: 3,
        },
        Some("yes") => ExecResult::ok(vec![b'y'; 1000]),
        _ => ExecResult::fail(127, "not found"),
    });
    let runtime = runtime(&server, config()).await;
    let spec = spec("alice", DesiredState::Running);
    let request = |argv: &[&str], stdin: &[u8]| ExecRequest {
        argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
        stdin: stdin.to_vec(),
        timeout: Duration::from_secs(10),
        output_limit_bytes: 64,
    };
    let unknown = runtime
        .exec(&spec.id, request(&["openclaw", "pairing", "list"], b""))
        .await;
    assert!(
        matches!(unknown, Err(RuntimeError::NotFound(_))),
        "{unknown:?}"
    );
    runtime.apply(&spec).await.unwrap();
    eventually("running", || {
        (runtime.observe(&spec.id).phase == Phase::Running).then_some(())
    })
    .await;
    let output = runtime
        .exec(
            &spec.id,
            request(
                &["openclaw", "pairing", "list", "telegram", "--json"],
                b"in",
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "gateway|openclaw pairing list telegram --json|in"
    );
    assert_eq!(output.stderr, b"warn");
    assert_eq!(output.exit_code, 3);
    assert!(!output.truncated && !output.timed_out);

    let output = runtime
        .exec(&spec.id, request(&["yes"], b""))
        .await
        .unwrap();
    assert_eq!(output.stdout.len(), 64);
    assert!(output.truncated);
    assert_eq!(output.exit_code, 0);
    assert!(matches!(
        runtime.exec(&spec.id, request(&[], b"")).await,
        Err(RuntimeError::InvalidExec(_))
    ));
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_are_answered_from_the_cache() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    let specs: Vec<_> = (0..20)
        .map(|index| spec(&format!("user-{index}"), DesiredState::Running))
        .collect();
    for spec in &specs {
        runtime.apply(spec).await.unwrap();
    }
    eventually("all running", || {
        specs
            .iter()
            .all(|spec| runtime.observe(&spec.id).phase == Phase::Running)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.clear_request_log();
    for _ in 0..50 {
        for spec in &specs {
            assert_eq!(runtime.observe(&spec.id).phase, Phase::Running);
            runtime
                .gateway_endpoint(&spec.id, &spec.gateway_token)
                .await
                .unwrap();
        }
        assert_eq!(runtime.known_instances().len(), specs.len());
    }
    let requests = server.request_log();
    assert!(requests.is_empty(), "{requests:?}");
    runtime.shutdown().await;
}
