//! Builds the `Instance` message that callers see from the stored record and what the
//! runtime observes.

use clawfleet_contracts::lifecycle::v1::Instance;

use crate::{
    model::{DesiredState, InstanceRecord, Phase, timestamp_from_ms},
    runtime::Observed,
};

/// The caller-facing state of one instance. Never carries the gateway token or
/// secret values.
pub fn instance_view(record: &InstanceRecord, observed: Observed) -> Instance {
    let (phase, reason) = match (observed.phase, record.desired_state) {
        // Whatever still runs is on its way out.
        _ if record.deleting.is_some() => (
            Phase::Deleting,
            "deleting: the runtime is tearing the gateway down".to_owned(),
        ),
        // Nothing observed yet: the reconciler has not applied it, or it stopped.
        (Phase::Unknown, DesiredState::Stopped) => {
            (Phase::Stopped, "stopped by request".to_owned())
        }
        (Phase::Unknown, DesiredState::Running) => (
            Phase::Pending,
            "waiting for the runtime to start the gateway".to_owned(),
        ),
        (phase, _) => (phase, observed.reason),
    };
    Instance {
        id: record.id.to_string(),
        owner: record.owner.clone(),
        plan: record.plan.to_proto() as i32,
        desired_state: record.desired_state.to_proto() as i32,
        phase: phase.to_proto() as i32,
        reason,
        ready: observed.ready && phase == Phase::Running,
        pods: observed.pods,
        created_at: Some(timestamp_from_ms(record.created_at_ms)),
        model: record.model.clone(),
        secret_names: record.secrets.keys().cloned().collect(),
        // Record and observation draw from one clock: the later change wins.
        revision: record.revision.max(observed.revision),
    }
}
