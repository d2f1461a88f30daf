//! Waiting, briefly, for an instance that is on its way up. A call that reaches a gateway
//! just created or started would otherwise fail at once with "unreachable", although the
//! gateway is seconds from ready; waiting for the phase to settle answers with the
//! gateway instead, or with the real reason (error, stopped) when it does not come up.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::{
    instance_id::InstanceId,
    model::Phase,
    runtime::{Observed, Runtime},
};

/// Whether the phase may still turn into `running` by itself.
pub fn is_on_its_way_up(phase: Phase) -> bool {
    matches!(phase, Phase::Pending | Phase::Starting)
}

/// The instance's observed state once it is no longer pending or starting, or as it is
/// when `limit` has passed.
pub async fn settled(runtime: &dyn Runtime, id: &InstanceId, limit: Duration) -> Observed {
    // Subscribed before the first look, so a change between the two is not missed.
    let mut changes = runtime.subscribe();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let observed = runtime.observe(id);
        if !is_on_its_way_up(observed.phase) {
            return observed;
        }
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            // Out of time, or the runtime is gone: as it is now.
            Err(_) | Ok(Err(RecvError::Closed)) => return observed,
            // Any change (ours, another instance's, or too many to tell): look again.
            Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
        }
    }
}
