//! `clawfleet_instances{phase,runtime}`: how many instances are in each phase, as
//! callers see it (the same rule as [`crate::view::instance_view`]), counted at each
//! scrape from the registry and the runtime of every lifecycle in the process, so the
//! gauge can never drift from the state it describes. Every phase is exported, zeros
//! included, so alerts on a phase see a series before the first instance reaches it.

use std::sync::{Arc, Mutex, Weak};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{MetricType, gauge::ConstGauge},
};

use crate::{model::Phase, service::Lifecycle, view::instance_view};

/// Phases and their label values.
pub const PHASES: [(Phase, &str); 7] = [
    (Phase::Pending, "pending"),
    (Phase::Starting, "starting"),
    (Phase::Running, "running"),
    (Phase::Error, "error"),
    (Phase::Stopped, "stopped"),
    (Phase::Unknown, "unknown"),
    (Phase::Deleting, "deleting"),
];

/// The lifecycles of this process (one, unless tests start several).
static SOURCES: Mutex<Vec<Weak<Lifecycle>>> = Mutex::new(Vec::new());

/// Registers the collector (once, from the lifecycle's metrics).
pub(super) fn register() {
    clawfleet_kit::metrics::register_collector(Box::new(InstancePhases));
}

/// Counts `lifecycle`'s instances at every scrape for as long as it lives.
pub fn watch(lifecycle: &Arc<Lifecycle>) {
    super::register();
    let mut sources = SOURCES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sources.retain(|source| source.strong_count() > 0);
    sources.push(Arc::downgrade(lifecycle));
}

/// Instances per `(runtime, phase index in PHASES)`.
pub fn count() -> Vec<(&'static str, [i64; PHASES.len()])> {
    let sources: Vec<Arc<Lifecycle>> = SOURCES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let mut counts: Vec<(&'static str, [i64; PHASES.len()])> = Vec::new();
    for lifecycle in sources {
        let runtime = lifecycle.runtime.name();
        let position = match counts.iter().position(|(name, _)| *name == runtime) {
            Some(position) => position,
            None => {
                counts.push((runtime, [0; PHASES.len()]));
                counts.len() - 1
            }
        };
        for record in lifecycle.registry.all() {
            let phase = instance_view(&record, lifecycle.runtime.observe(&record.id)).phase;
            if let Some(index) = PHASES
                .iter()
                .position(|(known, _)| known.to_proto() as i32 == phase)
            {
                counts[position].1[index] += 1;
            }
        }
    }
    counts
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
    runtime: &'static str,
}

#[derive(Debug)]
struct InstancePhases;

impl Collector for InstancePhases {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counts = count();
        if counts.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "clawfleet_instances",
            "Instances by phase (as callers see it) and runtime, counted at scrape time.",
            None,
            MetricType::Gauge,
        )?;
        for (runtime, phases) in counts {
            for ((_, phase), value) in PHASES.iter().zip(phases) {
                let labels = PhaseLabels { phase, runtime };
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
