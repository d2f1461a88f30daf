//! Instances as the manager-compatible JSON (docs/product/manager-api.md#instance-json plus the extra fields the platform
//! knows), serialized straight from the protobuf message without copying it.

use clawfleet_contracts::{
    common::v1::{DesiredState, Phase},
    lifecycle::v1::{Instance, Pod, PodConditions, PodState},
};
use clawfleet_kit::plan::Plan as KitPlan;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

/// Serializes an [`Instance`] as the instance JSON.
#[derive(Debug, Clone, Copy)]
pub struct InstanceView<'a>(pub &'a Instance);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceJson<'a> {
    user_id: &'a str,
    owner: &'a str,
    plan: &'static str,
    desired_state: &'static str,
    ready: bool,
    phase: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    model: &'a str,
    secrets: &'a [String],
    created_at: Option<Rfc3339>,
    revision: u64,
    pods: PodsJson<'a>,
}

impl Serialize for InstanceView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let instance = self.0;
        InstanceJson {
            user_id: &instance.id,
            owner: &instance.owner,
            plan: plan_name(instance.plan),
            desired_state: desired_state_name(instance.desired_state),
            ready: instance.ready,
            phase: phase_name(instance.phase),
            message: &instance.reason,
            model: &instance.model,
            secrets: &instance.secret_names,
            created_at: Rfc3339::from_timestamp(instance.created_at.as_ref()),
            revision: instance.revision,
            pods: PodsJson(&instance.pods),
        }
        .serialize(serializer)
    }
}

/// The lowercase word for a phase; anything unrecognised reads as `unknown`.
pub fn phase_name(phase: i32) -> &'static str {
    match Phase::try_from(phase) {
        Ok(Phase::Pending) => "pending",
        Ok(Phase::Starting) => "starting",
        Ok(Phase::Running) => "running",
        Ok(Phase::Error) => "error",
        Ok(Phase::Stopped) => "stopped",
        Ok(Phase::Unknown | Phase::Unspecified) | Err(_) => "unknown",
    }
}

/// The plan name, read with the kit's one mapping (unset is the default plan). A number
/// only a newer lifecycle could send is shown as the default plan rather than failing
/// the whole response.
pub fn plan_name(plan: i32) -> &'static str {
    KitPlan::from_proto(plan)
        .unwrap_or(KitPlan::DEFAULT)
        .as_str()
}

/// The desired state; unset means running, the state every new instance starts in.
pub fn desired_state_name(desired_state: i32) -> &'static str {
    match DesiredState::try_from(desired_state) {
        Ok(DesiredState::Stopped) => "stopped",
        Ok(DesiredState::Running | DesiredState::Unspecified) | Err(_) => "running",
    }
}

struct PodsJson<'a>(&'a [Pod]);

impl Serialize for PodsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(PodJson::from))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodJson<'a> {
    name: &'a str,
    phase: &'a str,
    ready: bool,
    restart_count: u32,
    state: PodStateJson<'a>,
    conditions: ConditionsJson,
    created_at: Option<Rfc3339>,
}

impl<'a> From<&'a Pod> for PodJson<'a> {
    fn from(pod: &'a Pod) -> Self {
        Self {
            name: &pod.name,
            phase: &pod.phase,
            ready: pod.ready,
            restart_count: pod.restart_count,
            state: PodStateJson::from(pod.state.as_ref()),
            conditions: ConditionsJson::from(pod.conditions.as_ref()),
            created_at: Rfc3339::from_timestamp(pod.created_at.as_ref()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodStateJson<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Rfc3339>,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
}

impl<'a> From<Option<&'a PodState>> for PodStateJson<'a> {
    fn from(state: Option<&'a PodState>) -> Self {
        let Some(state) = state.filter(|state| !state.status.is_empty()) else {
            return Self {
                status: "unknown",
                started_at: None,
                reason: "",
                message: "",
                exit_code: None,
            };
        };
        Self {
            status: &state.status,
            started_at: Rfc3339::from_timestamp(state.started_at.as_ref()),
            reason: &state.reason,
            message: &state.message,
            exit_code: (state.status == "terminated").then_some(state.exit_code),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConditionsJson {
    scheduled: bool,
    initialized: bool,
    containers_ready: bool,
    ready: bool,
}

impl From<Option<&PodConditions>> for ConditionsJson {
    fn from(conditions: Option<&PodConditions>) -> Self {
        let conditions = conditions.copied().unwrap_or_default();
        Self {
            scheduled: conditions.scheduled,
            initialized: conditions.initialized,
            containers_ready: conditions.containers_ready,
            ready: conditions.ready,
        }
    }
}

/// A UTC instant written as RFC 3339 to the second, e.g. `2026-02-13T05:29:50Z`, the
/// form Kubernetes uses and the manager's clients parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rfc3339(OffsetDateTime);

impl Rfc3339 {
    /// `None` for a missing timestamp or one outside years 0000–9999, which RFC 3339
    /// cannot write.
    pub(crate) fn from_timestamp(timestamp: Option<&prost_types::Timestamp>) -> Option<Self> {
        let instant = OffsetDateTime::from_unix_timestamp(timestamp?.seconds).ok()?;
        (0..=9999)
            .contains(&instant.year())
            .then_some(Self(instant))
    }
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let instant = self.0;
        write!(
            formatter,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            instant.year(),
            u8::from(instant.month()),
            instant.day(),
            instant.hour(),
            instant.minute(),
            instant.second()
        )
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
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
        let words: Vec<_> = (0..=7).map(phase_name).collect();
        assert_eq!(
            words,
            [
                "unknown", "pending", "starting", "running", "error", "stopped", "unknown",
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
}
