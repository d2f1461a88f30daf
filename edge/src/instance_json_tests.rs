use clawfleet_contracts::common::v1::Plan;
use prost_types::Timestamp;
use serde_json::json;

use super::*;

/// 2026-02-13T05:29:50Z
const CREATED_SECONDS: i64 = 1_770_960_590;

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn crash_looping_instance() -> Instance {
    Instance {
        id: "alice".to_owned(),
        owner: "user-1".to_owned(),
        plan: Plan::Pro as i32,
        desired_state: DesiredState::Running as i32,
        phase: Phase::Error as i32,
        reason: "gateway exited with status 1; restarting in 4s".to_owned(),
        ready: false,
        pods: vec![
            Pod {
                name: "alice-openclaw-7d9f".to_owned(),
                phase: "Running".to_owned(),
                ready: false,
                restart_count: 3,
                state: Some(PodState {
                    status: "terminated".to_owned(),
                    started_at: at(CREATED_SECONDS + 10),
                    reason: "Error".to_owned(),
                    message: "exit status 1".to_owned(),
                    exit_code: 1,
                }),
                conditions: Some(PodConditions {
                    scheduled: true,
                    initialized: true,
                    containers_ready: false,
                    ready: false,
                }),
                created_at: at(CREATED_SECONDS),
            },
            Pod {
                name: "alice-openclaw-8a1c".to_owned(),
                phase: "Pending".to_owned(),
                ready: false,
                restart_count: 0,
                state: Some(PodState {
                    status: "waiting".to_owned(),
                    started_at: None,
                    reason: String::new(),
                    message: String::new(),
                    exit_code: 0,
                }),
                conditions: None,
                created_at: Some(Timestamp {
                    seconds: CREATED_SECONDS + 60,
                    nanos: 999_999_999,
                }),
            },
        ],
        created_at: at(CREATED_SECONDS),
        model: "anthropic/claude-sonnet-4-5".to_owned(),
        secret_names: vec!["ANTHROPIC_API_KEY".to_owned()],
        revision: 42,
    }
}

fn json_of(instance: &Instance) -> serde_json::Value {
    serde_json::to_value(InstanceView(instance)).unwrap()
}

#[test]
fn an_instance_with_pods_renders_the_exact_manager_shape() {
    assert_eq!(
        json_of(&crash_looping_instance()),
        json!({
            "userId": "alice",
            "owner": "user-1",
            "plan": "pro",
            "desiredState": "running",
            "ready": false,
            "phase": "error",
            "message": "gateway exited with status 1; restarting in 4s",
            "model": "anthropic/claude-sonnet-4-5",
            "secrets": ["ANTHROPIC_API_KEY"],
            "createdAt": "2026-02-13T05:29:50Z",
            "revision": 42,
            "pods": [
                {
                    "name": "alice-openclaw-7d9f",
                    "phase": "Running",
                    "ready": false,
                    "restartCount": 3,
                    "state": {
                        "status": "terminated",
                        "startedAt": "2026-02-13T05:30:00Z",
                        "reason": "Error",
                        "message": "exit status 1",
                        "exitCode": 1
                    },
                    "conditions": {
                        "scheduled": true,
                        "initialized": true,
                        "containersReady": false,
                        "ready": false
                    },
                    "createdAt": "2026-02-13T05:29:50Z"
                },
                {
                    "name": "alice-openclaw-8a1c",
                    "phase": "Pending",
                    "ready": false,
                    "restartCount": 0,
                    "state": {"status": "waiting"},
                    "conditions": {
                        "scheduled": false,
                        "initialized": false,
                        "containersReady": false,
                        "ready": false
                    },
                    "createdAt": "2026-02-13T05:30:50Z"
                }
            ]
        })
    );
}

#[test]
fn message_and_model_are_omitted_when_empty() {
    let instance = Instance {
        id: "bob".to_owned(),
        phase: Phase::Running as i32,
        ready: true,
        created_at: at(CREATED_SECONDS),
        ..Instance::default()
    };
    assert_eq!(
        json_of(&instance),
        json!({
            "userId": "bob",
            "owner": "",
            "plan": "free",
            "desiredState": "running",
            "ready": true,
            "phase": "running",
            "secrets": [],
            "createdAt": "2026-02-13T05:29:50Z",
            "revision": 0,
            "pods": []
        })
    );
}

#[test]
fn every_phase_has_its_lowercase_word() {
    let words: Vec<_> = (0..=8).map(phase_name).collect();
    assert_eq!(
        words,
        [
            "unknown", "pending", "starting", "running", "error", "stopped", "unknown", "deleting",
            "unknown"
        ]
    );
    assert_eq!(plan_name(Plan::Enterprise as i32), "enterprise");
    assert_eq!(desired_state_name(DesiredState::Stopped as i32), "stopped");
}

#[test]
fn missing_or_unwritable_timestamps_are_null() {
    let instance = Instance {
        created_at: at(i64::MAX),
        ..Instance::default()
    };
    assert_eq!(json_of(&instance)["createdAt"], serde_json::Value::Null);
    assert_eq!(
        json_of(&Instance::default())["createdAt"],
        serde_json::Value::Null
    );
}

#[test]
fn a_pod_without_state_reads_as_unknown() {
    let instance = Instance {
        pods: vec![Pod::default()],
        ..Instance::default()
    };
    assert_eq!(
        json_of(&instance)["pods"][0]["state"],
        json!({"status": "unknown"})
    );
}
