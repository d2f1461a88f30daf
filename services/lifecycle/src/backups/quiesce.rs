//! Stopping a gateway so its state can be copied or replaced consistently, and starting
//! it again (docs/product/backups.md#consistency-the-gateway-is-quiesced). The runtime is
//! told directly; the store's desired state is not touched, so watchers see a stop and a
//! start but the instance stays what its owner asked for.

use std::time::Duration;

use super::OperationError;
use crate::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Phase},
    service::Lifecycle,
};

/// How long a gateway may take to stop (its drain is bounded by the runtime's grace).
const STOP_DEADLINE: Duration = Duration::from_secs(360);
const POLL: Duration = Duration::from_millis(200);

/// Stops the gateway and waits until nothing runs.
pub(super) async fn stop(
    lifecycle: &Lifecycle,
    record: &InstanceRecord,
) -> Result<(), OperationError> {
    let mut spec = record.spec();
    spec.desired_state = DesiredState::Stopped;
    lifecycle.runtime.apply(&spec).await?;
    let deadline = tokio::time::Instant::now() + STOP_DEADLINE;
    loop {
        let observed = lifecycle.runtime.observe(&record.id);
        if matches!(observed.phase, Phase::Stopped | Phase::Unknown) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(OperationError::Quiesce(format!(
                "instance {} did not stop within {} s ({})",
                record.id,
                STOP_DEADLINE.as_secs(),
                observed.reason
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Applies what the store wants now (the record may have changed meanwhile).
pub(super) async fn resume(lifecycle: &Lifecycle, id: &InstanceId) {
    let Some(record) = lifecycle.registry.get(id) else {
        return;
    };
    if record.deleting.is_some() {
        return;
    }
    if let Err(error) = lifecycle.runtime.apply(&record.spec()).await {
        tracing::warn!(instance = %id, %error, "could not start the instance again after a backup; the reconciler retries");
    }
}

/// Whether the store wants the instance running.
pub(super) fn wants_running(lifecycle: &Lifecycle, id: &InstanceId) -> bool {
    lifecycle
        .registry
        .get(id)
        .is_some_and(|record| record.desired_state == DesiredState::Running)
}

/// Waits until the gateway is ready (its readiness answered by the gateway itself), or
/// says why not.
pub(super) async fn wait_ready(
    lifecycle: &Lifecycle,
    id: &InstanceId,
    within: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let observed = lifecycle.runtime.observe(id);
        if observed.phase == Phase::Running && observed.ready {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "not ready within {} s: {}",
                within.as_secs(),
                observed.reason
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
