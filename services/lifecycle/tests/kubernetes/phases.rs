//! Phase derivation from pod statuses shaped like what the kubelet and the scheduler
//! really report (field for field as `kubectl get pod -o json` shows them).

use std::time::Duration;

use clawfleet_lifecycle::{model::Phase, runtime::kubernetes::phase::derive};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use serde_json::{Value, json};

/// 2026-01-10T10:00:00Z plus `seconds`.
fn at(seconds: i64) -> String {
    let base = 1_768_039_200; // 2026-01-10T10:00:00Z
    let time = k8s_openapi::jiff::Timestamp::from_second(base + seconds).unwrap();
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now_ms(seconds: i64) -> i64 {
    (1_768_039_200 + seconds) * 1000
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "alice-openclaw", "namespace": "openclaw", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "openclaw", "app.kubernetes.io/instance": "alice"}},
            "template": {"metadata": {}, "spec": {"containers": [{"name": "gateway"}]}}
        },
        "status": {"observedGeneration": 1, "replicas": replicas}
    }))
    .unwrap()
}

fn condition(kind: &str, status: bool, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut condition = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at(1),
    });
    if let Some(reason) = reason {
        condition["reason"] = json!(reason);
    }
    if let Some(message) = message {
        condition["message"] = json!(message);
    }
    condition
}

/// The conditions of a scheduled pod whose init containers finished.
fn scheduled_conditions(ready: bool) -> Value {
    let unready = (!ready).then_some("ContainersNotReady");
    let message = (!ready).then_some("containers with unready status: [gateway]");
    json!([
        condition("PodReadyToStartContainers", true, None, None),
        condition("Initialized", true, None, None),
        condition("Ready", ready, unready, message),
        condition("ContainersReady", ready, unready, message),
        condition("PodScheduled", true, None, None),
    ])
}

fn gateway_status(
    state: Value,
    last_state: Value,
    ready: bool,
    restarts: i32,
    started: bool,
) -> Value {
    json!({
        "name": "gateway",
        "state": state,
        "lastState": last_state,
        "ready": ready,
        "restartCount": restarts,
        "image": "registry.example/openclaw:2026.9.6",
        "imageID": "registry.example/openclaw@sha256:4b1d0c5e9f6a",
        "containerID": "containerd://8f3e2a7c41b9",
        "started": started,
    })
}

fn pod(name: &str, status: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "openclaw",
            "creationTimestamp": at(0),
            "labels": {"app.kubernetes.io/instance": "alice", "app.kubernetes.io/managed-by": "clawfleet"}
        },
        "spec": {"containers": [{"name": "gateway"}]},
        "status": status
    }))
    .unwrap()
}

fn running_pod(status: Value) -> Pod {
    pod("alice-openclaw-7d9c5b6f4-x2x9q", status)
}

fn with_phase(phase: &str, conditions: Value, container: Value) -> Value {
    json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": "10.128.0.5",
        "hostIPs": [{"ip": "10.128.0.5"}],
        "podIP": "10.52.1.17",
        "podIPs": [{"ip": "10.52.1.17"}],
        "startTime": at(0),
        "containerStatuses": [container],
        "qosClass": "Burstable"
    })
}

const GRACE: Duration = Duration::from_secs(60);

fn phase_of(deployment: Option<&Deployment>, pods: &[&Pod], seconds: i64) -> (Phase, String) {
    let observed = derive(deployment, pods, now_ms(seconds), GRACE);
    (observed.phase, observed.reason)
}

#[test]
fn unschedulable_pods_are_pending_with_the_schedulers_reason() {
    let message = "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
    let pod = running_pod(json!({
        "phase": "Pending",
        "conditions": [condition("PodScheduled", false, Some("Unschedulable"), Some(message))],
        "qosClass": "Burstable"
    }));
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&pod], 5);
    assert_eq!(phase, Phase::Pending);
    assert_eq!(reason, format!("Unschedulable: {message}"));
}

#[test]
fn a_container_being_created_or_initialised_is_pending() {
    let creating = running_pod(with_phase(
        "Pending",
        scheduled_conditions(false),
        gateway_status(
            json!({"waiting": {"reason": "ContainerCreating"}}),
            json!({}),
            false,
            0,
            false,
        ),
    ));
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&creating], 5);
    assert_eq!(
        (phase, reason.as_str()),
        (Phase::Pending, "ContainerCreating")
    );

    let mut initialising = with_phase(
        "Pending",
        json!([
            condition("PodReadyToStartContainers", true, None, None),
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [prepare-state]")
            ),
            condition(
                "Ready",
                false,
                Some("ContainersNotReady"),
                Some("containers with unready status: [gateway]")
            ),
            condition(
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some("containers with unready status: [gateway]")
            ),
            condition("PodScheduled", true, None, None),
        ]),
        gateway_status(
            json!({"waiting": {"reason": "PodInitializing"}}),
            json!({}),
            false,
            0,
            false,
        ),
    );
    initialising["initContainerStatuses"] = json!([{
        "name": "prepare-state",
        "state": {"running": {"startedAt": at(2)}},
        "lastState": {},
        "ready": false,
        "restartCount": 0,
        "image": "registry.example/openclaw:2026.9.6",
        "imageID": "registry.example/openclaw@sha256:4b1d0c5e9f6a",
        "started": true
    }]);
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&running_pod(initialising)], 5);
    assert_eq!(phase, Phase::Pending);
    assert!(reason.starts_with("PodInitializing"), "{reason}");
}

#[test]
fn image_and_config_problems_are_errors_with_the_kubelets_message() {
    for (reason, message) in [
        (
            "ImagePullBackOff",
            "Back-off pulling image \"registry.example/openclaw:nope\"",
        ),
        (
            "ErrImagePull",
            "failed to pull and unpack image \"registry.example/openclaw:nope\": failed to resolve reference \"registry.example/openclaw:nope\": registry.example/openclaw:nope: not found",
        ),
        (
            "CreateContainerConfigError",
            "secret \"alice-openclaw\" not found",
        ),
    ] {
        let pod = running_pod(with_phase(
            "Pending",
            scheduled_conditions(false),
            gateway_status(
                json!({"waiting": {"reason": reason, "message": message}}),
                json!({}),
                false,
                0,
                false,
            ),
        ));
        let (phase, text) = phase_of(Some(&deployment(1)), &[&pod], 5);
        assert_eq!(phase, Phase::Error, "{reason}");
        assert_eq!(text, format!("{reason}: {message}"));
    }
}

#[test]
fn crash_loops_are_errors_naming_the_last_exit() {
    let pod = running_pod(with_phase(
        "Running",
        scheduled_conditions(false),
        gateway_status(
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=gateway pod=alice-openclaw-7d9c5b6f4-x2x9q_openclaw(3c1f0a52-5d0e-4b8e-9a51-0c7b6f1d2e3a)"}}),
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": at(30), "finishedAt": at(41), "containerID": "containerd://8f3e2a7c41b9"}}),
            false,
            3,
            false,
        ),
    ));
    let observed = derive(Some(&deployment(1)), &[&pod], now_ms(60), GRACE);
    assert_eq!(observed.phase, Phase::Error);
    assert!(
        observed
            .reason
            .starts_with("CrashLoopBackOff: back-off 40s"),
        "{}",
        observed.reason
    );
    assert!(
        observed.reason.contains("exit code 1, 3 restarts"),
        "{}",
        observed.reason
    );
    let summary = &observed.pods[0];
    assert_eq!(summary.restart_count, 3);
    assert_eq!(summary.state.as_ref().unwrap().reason, "CrashLoopBackOff");
    assert_eq!(summary.phase, "Running");
}

#[test]
fn an_oom_killed_gateway_is_an_error_saying_so() {
    let looping = running_pod(with_phase(
        "Running",
        scheduled_conditions(false),
        gateway_status(
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container=gateway pod=alice-openclaw-7d9c5b6f4-x2x9q_openclaw(3c1f0a52)"}}),
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": at(10), "finishedAt": at(25)}}),
            false,
            2,
            false,
        ),
    ));
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&looping], 30);
    assert_eq!(phase, Phase::Error);
    assert!(
        reason.starts_with("OOMKilled: the gateway container ran out of memory (exit code 137"),
        "{reason}"
    );

    // Terminated by the OOM killer and not restarted yet.
    let killed = running_pod(with_phase(
        "Running",
        scheduled_conditions(false),
        gateway_status(
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": at(10), "finishedAt": at(25)}}),
            json!({}),
            false,
            0,
            false,
        ),
    ));
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&killed], 30);
    assert_eq!(phase, Phase::Error);
    assert_eq!(reason, "OOMKilled (exit code 137)");
}

#[test]
fn a_running_gateway_is_starting_until_readyz_passes_then_running() {
    let starting = running_pod(with_phase(
        "Running",
        scheduled_conditions(false),
        gateway_status(
            json!({"running": {"startedAt": at(5)}}),
            json!({}),
            false,
            0,
            false,
        ),
    ));
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&starting], 10);
    assert_eq!(phase, Phase::Starting);
    assert!(reason.contains("/startupz"), "{reason}");

    let up = running_pod(with_phase(
        "Running",
        scheduled_conditions(false),
        gateway_status(
            json!({"running": {"startedAt": at(5)}}),
            json!({}),
            false,
            0,
            true,
        ),
    ));
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&up], 20);
    assert_eq!(phase, Phase::Starting);
    assert!(reason.contains("/readyz"), "{reason}");
    // Up, but /readyz failing well past the grace period: a broken channel, not "starting".
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&up], 5 + 61);
    assert_eq!(phase, Phase::Error);
    assert!(reason.starts_with("NotReady"), "{reason}");

    let ready = running_pod(with_phase(
        "Running",
        scheduled_conditions(true),
        gateway_status(
            json!({"running": {"startedAt": at(5)}}),
            json!({}),
            true,
            0,
            true,
        ),
    ));
    let observed = derive(Some(&deployment(1)), &[&ready], now_ms(30), GRACE);
    assert_eq!(observed.phase, Phase::Running);
    assert!(observed.ready);
    let summary = &observed.pods[0];
    assert_eq!(summary.name, "alice-openclaw-7d9c5b6f4-x2x9q");
    assert!(summary.ready);
    let conditions = summary.conditions.as_ref().unwrap();
    assert!(
        conditions.scheduled
            && conditions.initialized
            && conditions.containers_ready
            && conditions.ready
    );
    let state = summary.state.as_ref().unwrap();
    assert_eq!(state.status, "running");
    assert_eq!(state.started_at.as_ref().unwrap().seconds, 1_768_039_205);
    assert_eq!(summary.created_at.as_ref().unwrap().seconds, 1_768_039_200);
}

#[test]
fn a_recovered_oom_kill_reads_as_a_restart_and_an_evicted_pod_as_an_error() {
    let restarted = running_pod(with_phase(
        "Running",
        scheduled_conditions(false),
        gateway_status(
            json!({"running": {"startedAt": at(40)}}),
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": at(5), "finishedAt": at(39)}}),
            false,
            1,
            false,
        ),
    ));
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&restarted], 45);
    assert_eq!(phase, Phase::Starting);
    assert!(reason.contains("OOMKilled"), "{reason}");

    let evicted = running_pod(json!({
        "phase": "Failed",
        "reason": "Evicted",
        "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91204Ki. Container gateway was using 1468532Ki, request is 524288Ki, has larger consumption of memory.",
        "startTime": at(0)
    }));
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&evicted], 45);
    assert_eq!(phase, Phase::Error);
    assert!(
        reason.starts_with("Evicted: The node was low on resource: memory."),
        "{reason}"
    );
}

#[test]
fn stopped_unknown_and_terminating_follow_the_deployment() {
    assert_eq!(phase_of(Some(&deployment(0)), &[], 0).0, Phase::Stopped);
    assert_eq!(phase_of(None, &[], 0).0, Phase::Unknown);
    assert_eq!(phase_of(Some(&deployment(1)), &[], 0).0, Phase::Unknown);

    let mut terminating = running_pod(with_phase(
        "Running",
        scheduled_conditions(true),
        gateway_status(
            json!({"running": {"startedAt": at(5)}}),
            json!({}),
            true,
            0,
            true,
        ),
    ));
    terminating.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_768_039_300).unwrap(),
        ));
    let (phase, reason) = phase_of(Some(&deployment(0)), &[&terminating], 100);
    assert_eq!(phase, Phase::Stopped);
    assert!(reason.starts_with("stopping"), "{reason}");
    // Recreate: the new pod waits for the old one to go.
    let (phase, reason) = phase_of(Some(&deployment(1)), &[&terminating], 100);
    assert_eq!(phase, Phase::Pending);
    assert!(reason.contains("previous pod"), "{reason}");
}
