//! Phase derivation (docs/product/instances.md#phases) from what the cluster reports: the instance's Deployment
//! and its pods, as the kubelet and the scheduler fill their status.
//!
//! - `stopped`: the Deployment wants 0 replicas;
//! - `unknown`: no Deployment, or no pod for it;
//! - `pending`: not scheduled (the scheduler's reason), init containers running, the
//!   container being created, or the previous pod still terminating;
//! - `error`: a waiting reason that needs a person (CrashLoopBackOff, ImagePullBackOff,
//!   ErrImagePull, CreateContainerConfigError, …), an OOM kill, a failed pod, or a
//!   gateway that passed its startup probe but keeps failing `/readyz` past a grace
//!   period (a broken bot token fails readiness; it must not read as "starting");
//! - `starting`: the gateway container runs but is not ready yet;
//! - `running`: the gateway container is ready, i.e. `/readyz` passes.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ContainerState, ContainerStatus, Pod},
};

use super::pods::{condition, gateway_status, summarize, time_ms};
use crate::{model::Phase, runtime::Observed};

/// Waiting reasons that will not resolve without someone changing something.
pub const ERROR_REASONS: [&str; 10] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "PreCreateHookError",
    "PostStartHookError",
];

/// Derives the observed state at `now_ms` (milliseconds since the epoch).
pub fn derive(
    deployment: Option<&Deployment>,
    pods: &[&Pod],
    now_ms: i64,
    ready_grace: Duration,
) -> Observed {
    let mut pods: Vec<&Pod> = pods.to_vec();
    // Newest first; the name breaks ties so the order is stable.
    pods.sort_by(|a, b| {
        let created = |pod: &Pod| pod.metadata.creation_timestamp.as_ref().map(time_ms);
        created(b)
            .cmp(&created(a))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let summaries = pods.iter().map(|pod| summarize(pod)).collect();
    let (phase, reason) = phase_of(deployment, &pods, now_ms, ready_grace);
    Observed {
        phase,
        reason,
        ready: phase == Phase::Running,
        pods: summaries,
        revision: 0,
    }
}

fn phase_of(
    deployment: Option<&Deployment>,
    pods: &[&Pod],
    now_ms: i64,
    ready_grace: Duration,
) -> (Phase, String) {
    let Some(deployment) = deployment else {
        return if pods.is_empty() {
            (Phase::Unknown, "no deployment".into())
        } else {
            (
                Phase::Unknown,
                "deployment deleted; its pods are terminating".into(),
            )
        };
    };
    if deployment.metadata.deletion_timestamp.is_some() {
        return (Phase::Unknown, "deployment is being deleted".into());
    }
    let replicas = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    if replicas == 0 {
        return match pods.first() {
            None => (Phase::Stopped, "stopped (scaled to zero)".into()),
            Some(pod) => (
                Phase::Stopped,
                format!("stopping: pod {} is terminating", name(pod)),
            ),
        };
    }
    let Some(pod) = pods
        .iter()
        .find(|pod| pod.metadata.deletion_timestamp.is_none())
    else {
        if let Some(pod) = pods.first() {
            return (
                Phase::Pending,
                format!("waiting for the previous pod {} to terminate", name(pod)),
            );
        }
        if let Some(failure) = replica_failure(deployment) {
            return (Phase::Error, failure);
        }
        return (Phase::Unknown, "no pod yet".into());
    };
    pod_phase(pod, now_ms, ready_grace)
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// `ReplicaFailure` (quota exceeded, forbidden by admission): no pod can be created.
fn replica_failure(deployment: &Deployment) -> Option<String> {
    let condition = deployment
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|condition| condition.type_ == "ReplicaFailure" && condition.status == "True")?;
    Some(reason_text(
        condition.reason.as_deref().unwrap_or("ReplicaFailure"),
        condition.message.as_deref(),
    ))
}

fn reason_text(reason: &str, message: Option<&str>) -> String {
    match message.filter(|message| !message.is_empty()) {
        Some(message) => format!("{reason}: {message}"),
        None => reason.to_owned(),
    }
}

fn pod_phase(pod: &Pod, now_ms: i64, ready_grace: Duration) -> (Phase, String) {
    let status = pod.status.as_ref();
    let pod_phase = status
        .and_then(|status| status.phase.as_deref())
        .unwrap_or("Pending");
    if matches!(pod_phase, "Failed" | "Succeeded") {
        let reason = status.and_then(|status| status.reason.as_deref());
        let message = status.and_then(|status| status.message.as_deref());
        return (
            Phase::Error,
            reason_text(
                reason.unwrap_or("PodFailed"),
                message.or(Some("the pod ended")),
            ),
        );
    }
    if let Some(unscheduled) = status
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|condition| condition.type_ == "PodScheduled" && condition.status != "True")
        })
    {
        return (
            Phase::Pending,
            reason_text(
                unscheduled.reason.as_deref().unwrap_or("Unschedulable"),
                unscheduled.message.as_deref(),
            ),
        );
    }
    if !condition(pod, "PodScheduled") {
        return (Phase::Pending, "waiting for the scheduler".into());
    }
    if let Some(init) = status
        .and_then(|status| status.init_container_statuses.as_ref())
        .and_then(|statuses| statuses.iter().find(|status| !init_done(status)))
    {
        if let Some(error) = container_error(init) {
            return (
                Phase::Error,
                format!("init container {}: {error}", init.name),
            );
        }
        return (
            Phase::Pending,
            format!(
                "PodInitializing: init container {} is preparing the state dir",
                init.name
            ),
        );
    }
    let Some(gateway) = gateway_status(pod) else {
        return (
            Phase::Pending,
            reason_text(
                "ContainerCreating",
                status.and_then(|status| status.message.as_deref()),
            ),
        );
    };
    if let Some(error) = container_error(gateway) {
        return (Phase::Error, error);
    }
    let state = gateway.state.as_ref();
    if let Some(waiting) = state.and_then(|state| state.waiting.as_ref()) {
        return (
            Phase::Pending,
            reason_text(
                waiting.reason.as_deref().unwrap_or("ContainerCreating"),
                waiting.message.as_deref(),
            ),
        );
    }
    if state.and_then(|state| state.running.as_ref()).is_none() {
        return (Phase::Pending, "ContainerCreating".into());
    }
    if gateway.ready {
        return (Phase::Running, "gateway ready".into());
    }
    if let Some(last) = last_termination(gateway) {
        return (
            Phase::Starting,
            format!(
                "gateway restarting after {} (exit code {}, {} restarts)",
                last.reason.as_deref().unwrap_or("Error"),
                last.exit_code,
                gateway.restart_count
            ),
        );
    }
    if gateway.started == Some(true) {
        let running_since = state
            .and_then(|state| state.running.as_ref())
            .and_then(|running| running.started_at.as_ref())
            .map(time_ms);
        let grace_ms = i64::try_from(ready_grace.as_millis()).unwrap_or(i64::MAX);
        if running_since.is_some_and(|since| now_ms.saturating_sub(since) > grace_ms) {
            return (
                Phase::Error,
                "NotReady: the gateway is up but /readyz keeps failing \
                 (a configured channel fails its checks, e.g. a broken bot token)"
                    .into(),
            );
        }
        return (Phase::Starting, "gateway is up; waiting for /readyz".into());
    }
    (
        Phase::Starting,
        "gateway is starting; waiting for /startupz".into(),
    )
}

fn init_done(status: &ContainerStatus) -> bool {
    status
        .state
        .as_ref()
        .and_then(|state| state.terminated.as_ref())
        .is_some_and(|terminated| terminated.exit_code == 0)
}

/// The last termination of a container that is running again (an OOM kill that
/// recovered reads as a restart, not an error).
fn last_termination(
    status: &ContainerStatus,
) -> Option<&k8s_openapi::api::core::v1::ContainerStateTerminated> {
    if status.restart_count == 0 {
        return None;
    }
    status.last_state.as_ref()?.terminated.as_ref()
}

/// Why a container is in error, when it is: an error waiting reason (with the reason
/// of its last exit for a crash loop), an OOM kill, or a failed exit not yet restarted.
fn container_error(status: &ContainerStatus) -> Option<String> {
    let state: Option<&ContainerState> = status.state.as_ref();
    if let Some(waiting) = state.and_then(|state| state.waiting.as_ref()) {
        let reason = waiting.reason.as_deref().unwrap_or("");
        if !ERROR_REASONS.contains(&reason) {
            return None;
        }
        let last = status
            .last_state
            .as_ref()
            .and_then(|last| last.terminated.as_ref());
        if reason == "CrashLoopBackOff"
            && let Some(last) = last
        {
            let last_reason = last.reason.as_deref().unwrap_or("Error");
            if last_reason == "OOMKilled" {
                return Some(format!(
                    "OOMKilled: the {} container ran out of memory (exit code {}, {} restarts); {}",
                    status.name,
                    last.exit_code,
                    status.restart_count,
                    reason_text(reason, waiting.message.as_deref())
                ));
            }
            return Some(format!(
                "{}; last exit: {} (exit code {}, {} restarts)",
                reason_text(reason, waiting.message.as_deref()),
                reason_text(last_reason, last.message.as_deref()),
                last.exit_code,
                status.restart_count
            ));
        }
        return Some(reason_text(reason, waiting.message.as_deref()));
    }
    let terminated = state.and_then(|state| state.terminated.as_ref())?;
    if terminated.exit_code == 0 && terminated.reason.as_deref() != Some("OOMKilled") {
        return None;
    }
    let reason = terminated.reason.as_deref().unwrap_or("Error");
    Some(format!(
        "{} (exit code {})",
        reason_text(reason, terminated.message.as_deref()),
        terminated.exit_code
    ))
}
