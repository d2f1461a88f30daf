//! The lifecycle's metrics: instances by phase and runtime (computed at each scrape
//! from the registry and the runtime, see [`phases`]), time from create to running,
//! and reconcile passes, failures and repairs. Kubernetes API calls are counted by the
//! kit's layer on the kube client ([`clawfleet_kit::metrics::kubernetes_api`]). No
//! label names an instance.

pub mod phases; // clawfleet_instances{phase,runtime}, read at scrape time

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use clawfleet_kit::metrics::{self, buckets};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};

use crate::instance_id::InstanceId;

/// A create not running within this long is no longer waited for: it is in error or
/// deleted, and the "stuck in starting" alert speaks for it.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Where a reconcile can fail.
const FAILURE_STAGES: [&str; 4] = ["reload", "apply", "orphan", "drift"];
/// What reconciling repairs.
const REPAIR_KINDS: [&str; 2] = ["drift", "orphan"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// How a background apply failed (see [`crate::runtime::kubernetes::failure::class_of`]).
pub const APPLY_FAILURE_CLASSES: [&str; 3] = ["unavailable", "refused", "other"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepairLabels {
    kind: &'static str,
}

struct LifecycleMetrics {
    time_to_running: Histogram,
    reconcile_passes: Counter,
    reconcile_failures: Family<StageLabels, Counter>,
    repairs: Family<RepairLabels, Counter>,
    apply_failures: Family<ClassLabels, Counter>,
    /// Instances created by this process and not yet seen running, with their create time.
    awaiting_running: Mutex<HashMap<InstanceId, Instant>>,
}

static METRICS: LazyLock<LifecycleMetrics> = LazyLock::new(|| {
    let time_to_running = Histogram::new(buckets::STARTUP_SECONDS.iter().copied());
    metrics::register(
        "clawfleet_instance_time_to_running_seconds",
        "Time from an instance's create to the first time it is seen running.",
        time_to_running.clone(),
    );
    let reconcile_passes = Counter::default();
    metrics::register(
        "clawfleet_reconcile_passes",
        "Full reconcile passes (store reload, every instance converged, orphans removed).",
        reconcile_passes.clone(),
    );
    phases::register();
    // Listed even on the local runtime, so the throttling alert's series is always known.
    metrics::kubernetes_api::register();
    let reconcile_failures: Family<StageLabels, Counter> = metrics::counter(
        "clawfleet_reconcile_failures",
        "Reconcile steps that failed and will be retried, by stage (reload, apply, orphan, drift).",
    );
    let repairs: Family<RepairLabels, Counter> = metrics::counter(
        "clawfleet_reconcile_drift_repairs",
        "Repairs made by reconciling, by kind (drift: objects rewritten, orphan: workloads without a record removed).",
    );
    // Zeros from the start: rate() and the alerts see the first failure as an increase.
    for stage in FAILURE_STAGES {
        reconcile_failures
            .get_or_create(&StageLabels { stage })
            .inc_by(0);
    }
    for kind in REPAIR_KINDS {
        repairs.get_or_create(&RepairLabels { kind }).inc_by(0);
    }
    let apply_failures: Family<ClassLabels, Counter> = metrics::counter(
        "clawfleet_kubernetes_apply_failures",
        "Background applies of an instance that failed and will be retried with backoff, by class \
         (unavailable: overload or outage; refused: quota, admission, a rejected object).",
    );
    for class in APPLY_FAILURE_CLASSES {
        apply_failures
            .get_or_create(&ClassLabels { class })
            .inc_by(0);
    }
    LifecycleMetrics {
        time_to_running,
        reconcile_passes,
        reconcile_failures,
        repairs,
        apply_failures,
        awaiting_running: Mutex::new(HashMap::new()),
    }
});

/// Registers the lifecycle's families so a scrape lists them before any event.
pub fn register() {
    LazyLock::force(&METRICS);
}

fn awaiting() -> std::sync::MutexGuard<'static, HashMap<InstanceId, Instant>> {
    METRICS
        .awaiting_running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An instance was created now: its first running phase is timed from here.
pub fn instance_created(id: &InstanceId) {
    let now = Instant::now();
    let mut awaiting = awaiting();
    awaiting.retain(|_, created| now.duration_since(*created) < FORGET_AFTER);
    awaiting.insert(id.clone(), now);
}

/// The instance was seen running: the first time after its create is timed.
pub fn instance_running(id: &InstanceId) {
    if let Some(created) = awaiting().remove(id) {
        METRICS
            .time_to_running
            .observe(created.elapsed().as_secs_f64());
    }
}

/// The instance is gone: it is no longer waited for.
pub fn instance_removed(id: &InstanceId) {
    awaiting().remove(id);
}

/// One full reconcile pass began.
pub fn reconcile_pass() {
    METRICS.reconcile_passes.inc();
}

/// A reconcile step failed at `stage` (`reload`, `apply`, `orphan`, `drift`).
pub fn reconcile_failure(stage: &'static str) {
    METRICS
        .reconcile_failures
        .get_or_create(&StageLabels { stage })
        .inc();
}

/// A background apply failed; `class` is one of [`APPLY_FAILURE_CLASSES`].
pub fn apply_failure(class: &'static str) {
    METRICS
        .apply_failures
        .get_or_create(&ClassLabels { class })
        .inc();
}

/// A repair of `kind` (`drift`, `orphan`) was made.
pub fn repaired(kind: &'static str) {
    METRICS.repairs.get_or_create(&RepairLabels { kind }).inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_create_seen_by_this_process_is_timed_and_only_once() {
        let created = InstanceId::parse("metrics-timed").unwrap();
        let restarted = InstanceId::parse("metrics-restarted").unwrap();
        let before = METRICS.time_to_running.count();
        instance_created(&created);
        instance_running(&created);
        instance_running(&created);
        // Running again after a platform restart: no create here, no sample.
        instance_running(&restarted);
        assert_eq!(METRICS.time_to_running.count(), before + 1);
    }
}
