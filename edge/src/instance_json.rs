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
        Ok(Phase::Deleting) => "deleting",
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
#[path = "instance_json_tests.rs"]
mod tests;
