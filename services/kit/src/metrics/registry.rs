//! The process's one registry. Families are registered once, when the component that
//! owns them first starts (a `LazyLock` in that component), so a process that runs
//! several services (`clawfleet up`, or tests starting several meshes) never registers
//! a name twice; counters then sum over every instance of the component in the process.

use std::sync::{LazyLock, Mutex, MutexGuard};

use prometheus_client::{
    collector::Collector,
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Metric, Registry},
};

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(super::process::ProcessCollector));
    Mutex::new(registry)
});

/// The registry, for encoding a scrape.
pub(crate) fn lock() -> MutexGuard<'static, Registry> {
    // A panic while registering leaves nothing half-written worth refusing to read.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers `metric` under `name` (a counter's `_total` is added by the encoder).
pub fn register(name: &str, help: &str, metric: impl Metric) {
    lock().register(name, help, metric);
}

/// Registers a collector asked for its values at each scrape.
pub fn register_collector(collector: Box<dyn Collector>) {
    lock().register_collector(collector);
}

/// A counter family registered under `name` (without `_total`).
pub fn counter<L>(name: &str, help: &str) -> Family<L, Counter>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::default();
    register(name, help, family.clone());
    family
}

/// A gauge family registered under `name`.
pub fn gauge<L>(name: &str, help: &str) -> Family<L, Gauge>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::default();
    register(name, help, family.clone());
    family
}

/// The constructor of a histogram family: a plain `fn` naming its buckets.
pub type MakeHistogram = fn() -> Histogram;

/// A histogram family registered under `name`, its children made by `make`.
pub fn histogram<L>(
    name: &str,
    help: &str,
    make: MakeHistogram,
) -> Family<L, Histogram, MakeHistogram>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::new_with_constructor(make);
    register(name, help, family.clone());
    family
}
