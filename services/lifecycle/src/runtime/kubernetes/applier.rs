//! Accept, then apply (docs/capacity.md#accept-then-apply): a create, start or stop is
//! answered once its desired state is recorded, and these workers write it to the
//! cluster in the background, a bounded number at once
//! ([`super::config::KubernetesConfig::apply_concurrency`]), owners taking turns
//! ([`super::queue`]). The apiserver's 429s and their `Retry-After` are honoured by the
//! client's retry policy; an apply that still fails is retried with a growing delay per
//! instance, and its reason shows in the instance's phase until it succeeds.

use std::{sync::Arc, time::Duration};

use clawfleet_kit::backoff::Backoff;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Core, failure};
use crate::{instance_id::InstanceId, runtime::RuntimeError};

/// Delays between retries of one instance's failing apply.
const RETRY_FLOOR: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(300);

/// One worker: takes the next instance whose turn it is and applies it.
pub async fn run(core: Arc<Core>, stop: CancellationToken) {
    loop {
        let Some((id, owner)) = core.state.next_to_apply(&stop).await else {
            return;
        };
        if !core.state.is_leading() {
            // Followers do not write; the next leader reconciles everything.
            core.state.applied(&id);
            continue;
        }
        let span = tracing::info_span!(
            parent: None,
            "apply",
            otel.name = "apply instance",
            clawfleet.instance.id = %id,
        );
        let result = core.repair(&id).instrument(span).await;
        match result {
            Ok(written) => {
                core.state.applied(&id);
                if written > 0 {
                    tracing::debug!(instance = %id, written, "instance applied");
                }
            }
            Err(error) => retry_later(&core, id, owner, &error, &stop),
        }
    }
}

/// Records why `id` could not be applied and queues it again after its backoff.
fn retry_later(
    core: &Arc<Core>,
    id: InstanceId,
    owner: String,
    error: &RuntimeError,
    stop: &CancellationToken,
) {
    let class = failure::class_of(error);
    crate::metrics::apply_failure(class);
    let delay = core
        .state
        .apply_failed(&id, error, |backoff: &mut Option<Backoff>| {
            backoff
                .get_or_insert_with(|| Backoff::new(RETRY_FLOOR, RETRY_CAP))
                .next_delay()
        });
    tracing::warn!(instance = %id, %error, class, ?delay, "could not apply; will retry");
    let core = core.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(delay) => core.state.enqueue(&owner, &id),
            () = stop.cancelled() => {}
        }
    });
}
