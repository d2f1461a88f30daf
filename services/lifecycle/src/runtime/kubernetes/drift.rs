//! Drift repair: instances whose objects the watchers found missing or different are
//! re-applied, at once the first time and with growing spacing while the drift keeps
//! coming back (someone fighting the platform must not turn into a write storm).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::Core;
use crate::instance_id::InstanceId;

/// Repairs in flight at once.
const CONCURRENCY: usize = 8;
/// Repairs of one instance this close together count as a streak.
const STREAK_WINDOW: Duration = Duration::from_secs(30);
const MAX_SPACING: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Limiter {
    /// Last repair and how many repairs in a row came within the streak window.
    last: HashMap<InstanceId, (Instant, u32)>,
}

impl Limiter {
    /// How long to wait before repairing `id` again.
    fn wait(&self, id: &InstanceId, now: Instant) -> Duration {
        let Some((at, streak)) = self.last.get(id) else {
            return Duration::ZERO;
        };
        let spacing = Duration::from_secs(1)
            .saturating_mul(1 << (*streak).min(6))
            .min(MAX_SPACING);
        (*at + spacing).saturating_duration_since(now)
    }

    fn record(&mut self, id: &InstanceId, now: Instant) {
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
    mut queue: mpsc::UnboundedReceiver<InstanceId>,
    requeue: mpsc::UnboundedSender<InstanceId>,
    stop: CancellationToken,
) {
    let mut limiter = Limiter::default();
    let mut delayed: HashSet<InstanceId> = HashSet::new();
    let (delay_done, mut delays) = mpsc::unbounded_channel::<InstanceId>();
    loop {
        let first = tokio::select! {
            id = queue.recv() => id,
            Some(id) = delays.recv() => {
                delayed.remove(&id);
                Some(id)
            }
            _ = stop.cancelled() => return,
        };
        let Some(first) = first else { return };
        // Take everything queued meanwhile; each instance once.
        let mut batch: HashSet<InstanceId> = HashSet::from([first]);
        while let Ok(id) = queue.try_recv() {
            batch.insert(id);
        }
        let now = Instant::now();
        let mut due = Vec::new();
        for id in batch {
            let wait = limiter.wait(&id, now);
            if wait.is_zero() {
                limiter.record(&id, now);
                due.push(id);
            } else if delayed.insert(id.clone()) {
                let delay_done = delay_done.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = delay_done.send(id);
                });
            }
        }
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |id| {
                let core = core.clone();
                let requeue = requeue.clone();
                async move {
                    let Some(desired) = core.state.desired(&id) else {
                        return;
                    };
                    match core.apply_desired(&desired).await {
                        Ok(written) => {
                            tracing::info!(instance = %id, written, "drift repaired");
                        }
                        Err(error) => {
                            tracing::warn!(instance = %id, %error, "drift repair failed; will retry");
                            let _ = requeue.send(id);
                        }
                    }
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_repairs_are_spaced_out() {
        let id = InstanceId::parse("alice").unwrap();
        let mut limiter = Limiter::default();
        let start = Instant::now();
        assert_eq!(limiter.wait(&id, start), Duration::ZERO);
        limiter.record(&id, start);
        assert_eq!(limiter.wait(&id, start), Duration::from_secs(1));
        let later = start + Duration::from_secs(1);
        limiter.record(&id, later);
        assert_eq!(limiter.wait(&id, later), Duration::from_secs(2));
        // After a quiet period the next drift is repaired at once again.
        let much_later = later + Duration::from_secs(120);
        assert_eq!(limiter.wait(&id, much_later), Duration::ZERO);
    }
}
