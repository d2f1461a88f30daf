//! A replica of every instance's state, fed by the lifecycle service's watch stream,
//! so `GET /api/instances/:id` is answered from memory: one network hop instead of
//! two. Every state carries the lifecycle's revision and the replica only moves
//! forward: an update older than what it holds is dropped, and a deletion leaves a
//! short-lived tombstone so a late update cannot bring the instance back. A mutation
//! through the edge records the state the lifecycle answered with, so a caller always
//! reads its own writes. While the stream is down the replica is empty and every read
//! goes to the lifecycle service.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use clawfleet_contracts::lifecycle::v1::{Instance, watch_instances_response::Kind};
use clawfleet_kit::{identity::Caller, shutdown::ShutdownToken};

use crate::lifecycle::LifecycleClient;

/// Pause before reopening a broken watch.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// How long a deletion is remembered against late updates.
const TOMBSTONE_LIFETIME: Duration = Duration::from_secs(60);
/// Tombstones kept before expired ones are swept.
const TOMBSTONE_SWEEP_THRESHOLD: usize = 1024;

#[derive(Debug)]
enum Entry {
    Present(Arc<Instance>),
    Deleted { revision: u64, at: Instant },
}

impl Entry {
    fn revision(&self) -> u64 {
        match self {
            Entry::Present(instance) => instance.revision,
            Entry::Deleted { revision, .. } => *revision,
        }
    }
}

#[derive(Default, Debug)]
pub struct InstanceCache {
    entries: RwLock<HashMap<String, Entry>>,
}

impl InstanceCache {
    pub fn get(&self, id: &str) -> Option<Arc<Instance>> {
        match self.read().get(id) {
            Some(Entry::Present(instance)) => Some(Arc::clone(instance)),
            _ => None,
        }
    }

    /// Records the state a write through the edge produced, so the caller's next read
    /// sees it (or something newer), whatever the watch stream delivers late.
    pub fn remember(&self, instance: &Instance) {
        self.apply(Kind::Updated as i32, instance.clone());
    }

    /// Records a deletion through the edge at `revision`.
    pub fn remember_deleted(&self, id: &str, revision: u64) {
        let instance = Instance {
            id: id.to_owned(),
            revision,
            ..Instance::default()
        };
        self.apply(Kind::Deleted as i32, instance);
    }

    fn apply(&self, kind: i32, instance: Instance) {
        let mut entries = self.write();
        // Ties go to the later arrival: a deletion shares its revision with nothing.
        if entries
            .get(&instance.id)
            .is_some_and(|held| held.revision() > instance.revision)
        {
            return;
        }
        if kind == Kind::Deleted as i32 {
            let tombstone = Entry::Deleted {
                revision: instance.revision,
                at: Instant::now(),
            };
            entries.insert(instance.id, tombstone);
            sweep_tombstones(&mut entries);
        } else {
            entries.insert(instance.id.clone(), Entry::Present(Arc::new(instance)));
        }
    }

    fn clear(&self) {
        self.write().clear();
    }

    /// Follows the lifecycle watch until `shutdown`, resubscribing when it breaks.
    pub fn spawn_follower(self: Arc<Self>, lifecycle: LifecycleClient, shutdown: ShutdownToken) {
        // The replica holds every instance; readers filter by ownership.
        let caller = Caller::service("edge");
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                if let Ok(mut stream) = lifecycle.watch(&caller, String::new()).await {
                    loop {
                        let message = tokio::select! {
                            message = stream.message() => message,
                            _ = shutdown.cancelled() => return,
                        };
                        match message {
                            Ok(Some(message)) => {
                                if let Some(instance) = message.instance {
                                    self.apply(message.kind, instance);
                                }
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                // Whatever was missed while the stream was down must not be served.
                self.clear();
                tokio::select! {
                    _ = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Drops tombstones past their lifetime once there are many of them.
fn sweep_tombstones(entries: &mut HashMap<String, Entry>) {
    let tombstones = entries
        .values()
        .filter(|entry| matches!(entry, Entry::Deleted { .. }))
        .count();
    if tombstones > TOMBSTONE_SWEEP_THRESHOLD {
        entries.retain(|_, entry| match entry {
            Entry::Deleted { at, .. } => at.elapsed() < TOMBSTONE_LIFETIME,
            Entry::Present(_) => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, revision: u64) -> Instance {
        Instance {
            id: id.into(),
            revision,
            ..Instance::default()
        }
    }

    #[test]
    fn events_fill_and_empty_the_replica() {
        let cache = InstanceCache::default();
        cache.apply(Kind::Snapshot as i32, instance("a", 1));
        cache.apply(Kind::Updated as i32, instance("a", 2));
        assert_eq!(cache.get("a").unwrap().revision, 2);
        cache.apply(Kind::Deleted as i32, instance("a", 2));
        assert!(cache.get("a").is_none());
        cache.apply(Kind::Updated as i32, instance("b", 3));
        cache.remember_deleted("b", 4);
        assert!(cache.get("b").is_none());
    }

    #[test]
    fn a_late_update_never_brings_back_older_state() {
        let cache = InstanceCache::default();
        cache.apply(Kind::Snapshot as i32, instance("a", 5));
        // The caller's own write (a stop answered at revision 9) ...
        cache.remember(&instance("a", 9));
        // ... is not undone by the stream's older event arriving after it.
        cache.apply(Kind::Updated as i32, instance("a", 7));
        assert_eq!(cache.get("a").unwrap().revision, 9);
        cache.apply(Kind::Updated as i32, instance("a", 11));
        assert_eq!(cache.get("a").unwrap().revision, 11);
    }

    #[test]
    fn a_deleted_instance_stays_deleted_until_a_newer_create() {
        let cache = InstanceCache::default();
        cache.apply(Kind::Snapshot as i32, instance("a", 5));
        cache.remember_deleted("a", 8);
        cache.apply(Kind::Updated as i32, instance("a", 6));
        assert!(cache.get("a").is_none());
        cache.apply(Kind::Updated as i32, instance("a", 12));
        assert_eq!(cache.get("a").unwrap().revision, 12);
    }
}
