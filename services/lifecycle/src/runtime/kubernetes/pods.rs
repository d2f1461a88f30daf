//! Kubernetes pods as callers see them: the same `Pod` summary the local runtime fills
//! (name, phase, ready, restarts, the gateway container's state, conditions, age).

use clawfleet_contracts::lifecycle::v1::{Pod as PodSummary, PodConditions, PodState};
use k8s_openapi::{
    api::core::v1::{ContainerState, ContainerStatus, Pod},
    apimachinery::pkg::apis::meta::v1::Time,
};

use super::manifests::GATEWAY_CONTAINER;
use crate::model::timestamp_from_ms;

pub fn time_ms(time: &Time) -> i64 {
    time.0.as_millisecond()
}

/// Whether the pod's condition of `kind` is `True`.
pub fn condition(pod: &Pod, kind: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == kind && condition.status == "True")
        })
}

/// The status of the gateway container, once the kubelet reports one.
pub fn gateway_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|status| status.name == GATEWAY_CONTAINER)
}

/// `running`, `waiting` or `terminated`, with when, why and how.
pub fn container_state(state: Option<&ContainerState>) -> PodState {
    let Some(state) = state else {
        return PodState {
            status: "waiting".into(),
            ..PodState::default()
        };
    };
    if let Some(running) = &state.running {
        return PodState {
            status: "running".into(),
            started_at: running
                .started_at
                .as_ref()
                .map(|at| timestamp_from_ms(time_ms(at))),
            ..PodState::default()
        };
    }
    if let Some(terminated) = &state.terminated {
        return PodState {
            status: "terminated".into(),
            started_at: terminated
                .started_at
                .as_ref()
                .map(|at| timestamp_from_ms(time_ms(at))),
            reason: terminated.reason.clone().unwrap_or_default(),
            message: terminated.message.clone().unwrap_or_default(),
            exit_code: terminated.exit_code,
        };
    }
    let waiting = state.waiting.as_ref();
    PodState {
        status: "waiting".into(),
        reason: waiting.and_then(|w| w.reason.clone()).unwrap_or_default(),
        message: waiting.and_then(|w| w.message.clone()).unwrap_or_default(),
        ..PodState::default()
    }
}

pub fn summarize(pod: &Pod) -> PodSummary {
    let gateway = gateway_status(pod);
    PodSummary {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: pod
            .status
            .as_ref()
            .and_then(|status| status.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        ready: condition(pod, "Ready"),
        restart_count: gateway
            .map(|status| u32::try_from(status.restart_count).unwrap_or(0))
            .unwrap_or(0),
        state: Some(container_state(
            gateway.and_then(|status| status.state.as_ref()),
        )),
        conditions: Some(PodConditions {
            scheduled: condition(pod, "PodScheduled"),
            initialized: condition(pod, "Initialized"),
            containers_ready: condition(pod, "ContainersReady"),
            ready: condition(pod, "Ready"),
        }),
        created_at: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|at| timestamp_from_ms(time_ms(at))),
    }
}
