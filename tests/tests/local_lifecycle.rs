//! The instance lifecycle end to end against real OpenClaw gateways: create through
//! REST, watch the phases over gRPC, heal a killed gateway, stop, start, delete with
//! and without data, and come back after a platform restart.

use std::time::{Duration, Instant};

use clawfleet_contracts::{
    common::v1::Phase,
    lifecycle::v1::{WatchInstancesRequest, watch_instances_response::Kind},
};
use clawfleet_tests::{
    grpc::lifecycle_client,
    platform::{Platform, PlatformOptions},
    scenario::{GATEWAY_READY_TIMEOUT, Operator},
};
use http::StatusCode;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::json;

fn process_alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.contains(") Z "))
}

async fn wait_until_dead(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `path` is gone: a delete whose teardown outlasts DeleteInstance's wait
/// answers `inProgress` and finishes on its own. A purge first takes a backup of the
/// state (docs/product/backups.md#before-a-purge), which a debug build on a loaded
/// machine makes slow, hence the generous bound.
async fn wait_until_removed(path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is still there",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the edge no longer knows the instance (see [`wait_until_removed`]).
async fn wait_until_not_found(operator: &Operator<'_>, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while operator.get(&format!("/api/instances/{id}")).await.status != StatusCode::NOT_FOUND {
        assert!(Instant::now() < deadline, "instance {id} is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_rfc3339_utc(value: &serde_json::Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| text.len() >= 20 && text.ends_with('Z') && text.as_bytes()[10] == b'T')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_lives_through_create_watch_heal_stop_start_and_delete() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 21000)).unwrap();
    let operator = Operator::new(&platform);
    let mut lifecycle = lifecycle_client(&platform.lifecycle_address, &platform.options.api_key)
        .await
        .unwrap();

    // Watch everything before the instance exists, so every phase is seen.
    let mut watch = lifecycle
        .watch_instances(WatchInstancesRequest { id: String::new() })
        .await
        .unwrap()
        .into_inner();

    let created = operator
        .post(
            "/api/instances",
            json!({"userId": "alice", "secrets": {"ANTHROPIC_API_KEY": "sk-ant-test-secret"}}),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let body = created.json();
    assert_eq!(body["userId"], "alice");
    assert_eq!(body["secrets"], json!(["ANTHROPIC_API_KEY"]));
    assert!(
        !String::from_utf8_lossy(&created.body).contains("sk-ant-test-secret"),
        "secret echoed"
    );

    // The watch stream reports pending, then starting, then running.
    let mut phases = Vec::new();
    let deadline = Instant::now() + GATEWAY_READY_TIMEOUT;
    while phases.last() != Some(&Phase::Running) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(remaining, watch.message())
            .await
            .unwrap_or_else(|_| panic!("no running phase; saw {phases:?}\n{}", platform.log_tail()))
            .unwrap()
            .expect("watch stream ended");
        // Bookmarks carry no instance.
        let Some(instance) = message.instance else {
            continue;
        };
        if instance.id != "alice" || message.kind == Kind::Deleted as i32 {
            continue;
        }
        let phase = Phase::try_from(instance.phase).unwrap();
        if phases.last() != Some(&phase) {
            phases.push(phase);
        }
    }
    let position = |phase| phases.iter().position(|seen| *seen == phase);
    assert!(
        position(Phase::Pending) < position(Phase::Starting),
        "{phases:?}"
    );
    assert!(
        position(Phase::Starting) < position(Phase::Running),
        "{phases:?}"
    );
    assert!(position(Phase::Pending).is_some(), "{phases:?}");

    // GET has the docs/product/manager-api.md#instance-json shape, filled from the real process. The edge answers from
    // its own watch-fed replica, which may trail this test's watch by a moment.
    let instance = operator
        .wait_for(
            "alice",
            Duration::from_secs(10),
            "running via GET",
            |instance| instance["phase"] == "running",
        )
        .await;
    assert_eq!(instance["userId"], "alice");
    assert_eq!(instance["ready"], true);
    assert_eq!(instance["phase"], "running");
    let pod = &instance["pods"][0];
    assert!(pod["name"].as_str().unwrap().starts_with("alice"));
    assert_eq!(pod["phase"], "Running");
    assert_eq!(pod["ready"], true);
    assert_eq!(pod["restartCount"], 0);
    assert_eq!(pod["state"]["status"], "running");
    assert!(is_rfc3339_utc(&pod["state"]["startedAt"]), "{pod}");
    assert!(is_rfc3339_utc(&pod["createdAt"]), "{pod}");
    for condition in ["scheduled", "initialized", "containersReady", "ready"] {
        assert_eq!(pod["conditions"][condition], true, "{condition}");
    }
    assert!(!instance.to_string().contains("sk-ant-test-secret"));

    // The gateway really runs with its own state dir, and answers on loopback.
    let state_dir = platform.instance_dir("alice").join("state");
    assert!(state_dir.join("openclaw.json").exists());
    assert!(state_dir.join("credentials").is_dir());
    let first_pid = platform.gateway_pid("alice").expect("gateway pid file");
    assert!(process_alive(first_pid));

    // kill -9 is noticed and healed.
    kill(Pid::from_raw(first_pid), Signal::SIGKILL).unwrap();
    let healed = operator
        .wait_for("alice", GATEWAY_READY_TIMEOUT, "healed", |instance| {
            instance["phase"] == "running" && instance["pods"][0]["restartCount"] == 1
        })
        .await;
    assert_eq!(healed["ready"], true);
    let second_pid = platform.gateway_pid("alice").unwrap();
    assert_ne!(first_pid, second_pid);

    // Stop: nothing runs, the phase says stopped.
    std::fs::write(state_dir.join("marker.txt"), "kept across delete").unwrap();
    let stopped = operator.post("/api/instances/alice/stop", json!({})).await;
    assert_eq!(stopped.status, StatusCode::OK);
    operator
        .wait_for("alice", Duration::from_secs(60), "stopped", |instance| {
            instance["phase"] == "stopped"
        })
        .await;
    wait_until_dead(second_pid).await;

    // Start: back to running on the same data.
    let started = operator.post("/api/instances/alice/start", json!({})).await;
    assert_eq!(started.status, StatusCode::OK);
    operator.wait_running("alice").await;
    let third_pid = platform.gateway_pid("alice").unwrap();

    // Delete keeps the state dir by default; the gateway goes away.
    let deleted = operator.delete("/api/instances/alice").await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json()["dataPreserved"], true);
    wait_until_not_found(&operator, "alice").await;
    wait_until_dead(third_pid).await;
    assert!(state_dir.join("marker.txt").exists());

    // Creating the same id again reattaches the data.
    let recreated = operator
        .post("/api/instances", json!({"userId": "alice"}))
        .await;
    assert_eq!(recreated.status, StatusCode::CREATED);
    operator.wait_running("alice").await;
    assert_eq!(
        std::fs::read_to_string(state_dir.join("marker.txt")).unwrap(),
        "kept across delete"
    );
    let fourth_pid = platform.gateway_pid("alice").unwrap();

    // preservePvc=false removes everything.
    let purged = operator
        .delete("/api/instances/alice?preservePvc=false")
        .await;
    assert_eq!(purged.status, StatusCode::OK);
    assert_eq!(purged.json()["dataPreserved"], false);
    wait_until_dead(fourth_pid).await;
    wait_until_removed(&platform.instance_dir("alice")).await;
    let list = operator.get("/api/instances").await.json();
    assert_eq!(list["instances"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// The one test that runs the real `clawfleet up` binary end to end: it stops the
/// process with SIGTERM and kills it with SIGKILL.
async fn running_instances_come_back_after_a_platform_restart() {
    let data = tempfile::tempdir().unwrap();
    let options = PlatformOptions::new(data.path(), 22000);
    let platform = Platform::start_binary(options.clone()).unwrap();
    let operator = Operator::new(&platform);
    assert_eq!(
        operator
            .post("/api/instances", json!({"userId": "bob"}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        operator
            .post("/api/instances", json!({"userId": "carol"}))
            .await
            .status,
        StatusCode::CREATED
    );
    operator.wait_running("bob").await;
    operator
        .wait_for("carol", GATEWAY_READY_TIMEOUT, "running", |i| {
            i["phase"] == "running"
        })
        .await;
    assert_eq!(
        operator
            .post("/api/instances/carol/stop", json!({}))
            .await
            .status,
        StatusCode::OK
    );
    operator
        .wait_for("carol", Duration::from_secs(60), "stopped", |i| {
            i["phase"] == "stopped"
        })
        .await;
    std::fs::write(
        platform
            .instance_dir("bob")
            .join("state")
            .join("marker.txt"),
        "bob's data",
    )
    .unwrap();
    let bob_pid = platform.gateway_pid("bob").unwrap();

    // A graceful platform stop stops its gateways too.
    let status = platform.stop().unwrap();
    assert!(status.success(), "platform exit: {status}");
    wait_until_dead(bob_pid).await;

    let platform = Platform::start_binary(options).unwrap();
    let operator = Operator::new(&platform);
    let bob = operator.wait_running("bob").await;
    assert_eq!(bob["desiredState"], "running");
    assert_eq!(
        std::fs::read_to_string(
            platform
                .instance_dir("bob")
                .join("state")
                .join("marker.txt")
        )
        .unwrap(),
        "bob's data"
    );
    // A stopped instance stays stopped.
    let carol = operator.get("/api/instances/carol").await.json();
    assert_eq!(carol["phase"], "stopped");
    assert!(platform.gateway_pid("carol").is_none());

    // After a crash of the platform itself, the orphaned gateway is replaced, not duplicated.
    let orphan = platform.gateway_pid("bob").unwrap();
    kill(Pid::from_raw(platform.pid() as i32), Signal::SIGKILL).unwrap();
    let options = platform.options.clone();
    std::mem::forget(operator);
    // The crashed platform's Drop would kill the orphan; keep it alive to test adoption.
    std::mem::forget(platform);
    assert!(process_alive(orphan));
    let platform = Platform::start_binary(options).unwrap();
    let operator = Operator::new(&platform);
    operator.wait_running("bob").await;
    wait_until_dead(orphan).await;
    assert_ne!(platform.gateway_pid("bob"), Some(orphan));
}
