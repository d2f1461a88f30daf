//! Drift repair: instances whose objects the watchers found missing or different are
//! re-applied, at once the first time and with growing spacing while the same object
//! keeps drifting (someone fighting the platform must not turn into a write storm).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Core, kinds::ObjectKind};
use crate::instance_id::InstanceId;

/// An object of an instance that differs from what it should be.
pub type Drift = (InstanceId, ObjectKind);

/// Repairs in flight at once.
const CONCURRENCY: usize = 8;
/// Repairs of one instance this close together count as a streak.
const STREAK_WINDOW: Duration = Duration::from_secs(30);
const MAX_SPACING: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Limiter {
    /// Last repair and how many repairs in a row came within the streak window.
    last: HashMap<Drift, (Instant, u32)>,
}

impl Limiter {
    /// How long to wait before repairing `id` again.
    fn wait(&self, id: &Drift, now: Instant) -> Duration {
        let Some((at, streak)) = self.last.get(id) else {
            return Duration::ZERO;
        };
        let spacing = Duration::from_secs(1)
            .saturating_mul(1 << (*streak).min(6))
            .min(MAX_SPACING);
        (*at + spacing).saturating_duration_since(now)
    }

    fn record(&mut self, id: &Drift, now: Instant) {
        let streak = match self.last.get(id) {
            Some((at, streak)) if now.duration_since(*at) < STREAK_WINDOW => streak + 1,
            _ => 0,
        };
        self.last.insert(id.clone(), (now, streak));
        self.last
            .retain(|_, (at, _)| now.duration_since(*at) < STREAK_WINDOW.max(MAX_SPACING));
    }
}

pub async fn run(
    core: Arc<Core>,
    mut queue: mpsc::UnboundedReceiver<Drift>,
    requeue: mpsc::UnboundedSender<Drift>,
    stop: CancellationToken,
) {
    let mut limiter = Limiter::default();
    let mut delayed: HashSet<Drift> = HashSet::new();
    let (delay_done, mut delays) = mpsc::unbounded_channel::<Drift>();
    loop {
        let first = tokio::select! {
            drift = queue.recv() => drift,
            Some(drift) = delays.recv() => {
                delayed.remove(&drift);
                Some(drift)
            }
            _ = stop.cancelled() => return,
        };
        let Some(first) = first else { return };
        if !core.state.is_leading() {
            // The leader repairs; a replica that becomes leader reconciles everything.
            while queue.try_recv().is_ok() {}
            continue;
        }
        // Take everything queued meanwhile; each drift once.
        let mut batch: HashSet<Drift> = HashSet::from([first]);
        while let Ok(drift) = queue.try_recv() {
            batch.insert(drift);
        }
        let now = Instant::now();
        let mut due: HashMap<InstanceId, Vec<ObjectKind>> = HashMap::new();
        for drift in batch {
            let wait = limiter.wait(&drift, now);
            if wait.is_zero() {
                limiter.record(&drift, now);
                due.entry(drift.0).or_default().push(drift.1);
            } else if delayed.insert(drift.clone()) {
                let delay_done = delay_done.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = delay_done.send(drift);
                });
            }
        }
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |(id, kinds)| {
                let core = core.clone();
                let requeue = requeue.clone();
                // Background work: each repair is a trace of its own.
                let span = tracing::info_span!(
                    parent: None,
                    "drift.repair",
                    otel.name = "drift repair",
                    clawfleet.instance.id = %id,
                );
                async move {
                    // The whole instance: apply writes only what differs; nothing when
                    // the instance was deleted since the drift was seen.
                    match core.repair(&id).await {
                        Ok(written) => {
                            crate::metrics::repaired("drift");
                            tracing::info!(instance = %id, ?kinds, written, "drift repaired");
                        }
                        Err(error) => {
                            crate::metrics::reconcile_failure("drift");
                            tracing::warn!(instance = %id, %error, "drift repair failed; will retry");
                            for kind in kinds {
                                let _ = requeue.send((id.clone(), kind));
                            }
                        }
                    }
                }
                .instrument(span)
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_repairs_are_spaced_out() {
        let id = (InstanceId::parse("alice").unwrap(), ObjectKind::Deployment);
        let mut limiter = Limiter::default();
        let start = Instant::now();
        assert_eq!(limiter.wait(&id, start), Duration::ZERO);
        limiter.record(&id, start);
        assert_eq!(limiter.wait(&id, start), Duration::from_secs(1));
        let later = start + Duration::from_secs(1);
        limiter.record(&id, later);
        assert_eq!(limiter.wait(&id, later), Duration::from_secs(2));
        // Another object of the same instance is repaired at once.
        let other = (id.0.clone(), ObjectKind::Service);
        assert_eq!(limiter.wait(&other, later), Duration::ZERO);
        // After a quiet period the next drift is repaired at once again.
        let much_later = later + Duration::from_secs(120);
        assert_eq!(limiter.wait(&id, much_later), Duration::ZERO);
    }
}
