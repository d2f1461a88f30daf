//! A replica of every instance's state, fed by the lifecycle service's watch stream,
//! so `GET /api/instances/:id` is answered from memory: one network hop instead of
//! two. Every state carries the lifecycle's revision and the replica only moves
//! forward: an update older than what it holds is dropped, and a deletion leaves a
//! short-lived tombstone so a late update cannot bring the instance back. A mutation
//! through the edge records the state the lifecycle answered with, so a caller always
//! reads its own writes.
//!
//! The lifecycle ends its opening snapshot with a bookmark and repeats bookmarks on a
//! quiet stream, so the replica knows when it last heard the truth. A stream silent for
//! half the staleness bound is dropped and reopened (its snapshot then replaces what
//! the replica holds); once the replica has heard nothing for the whole bound, reads
//! are answered 503 rather than with state that may be stale.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use clawfleet_contracts::lifecycle::v1::{
    Instance, WatchInstancesResponse, watch_instances_response::Kind,
};
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

/// What the replica can say about one instance.
#[derive(Debug)]
pub enum Lookup {
    /// Its current state.
    Hit(Arc<Instance>),
    /// Not held (never seen, deleted, or not heard yet): ask the lifecycle service.
    Miss,
    /// The replica has heard nothing from the lifecycle for this long.
    Stale(Duration),
}

#[derive(Debug)]
pub struct InstanceCache {
    entries: RwLock<HashMap<String, Entry>>,
    /// When the watch last proved the replica current; `None` until it first did.
    last_heard: Mutex<Option<Instant>>,
    staleness_bound: Duration,
}

impl Default for InstanceCache {
    fn default() -> Self {
        Self::new(crate::config::DEFAULT_INSTANCE_STALENESS)
    }
}

impl InstanceCache {
    pub fn new(staleness_bound: Duration) -> Self {
        Self {
            entries: RwLock::default(),
            last_heard: Mutex::new(None),
            staleness_bound,
        }
    }

    #[cfg(test)]
    pub fn get(&self, id: &str) -> Option<Arc<Instance>> {
        match self.lookup(id) {
            Lookup::Hit(instance) => Some(instance),
            Lookup::Miss | Lookup::Stale(_) => None,
        }
    }

    /// The instance's state, unless the replica may be stale.
    pub fn lookup(&self, id: &str) -> Lookup {
        if let Some(silence) = self.silence()
            && silence > self.staleness_bound
        {
            return Lookup::Stale(silence);
        }
        match self.read().get(id) {
            Some(Entry::Present(instance)) => Lookup::Hit(Arc::clone(instance)),
            _ => Lookup::Miss,
        }
    }

    /// Time since the watch last spoke, once it has spoken.
    fn silence(&self) -> Option<Duration> {
        let heard = *self
            .last_heard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        heard.map(|at| at.elapsed())
    }

    fn heard(&self) {
        *self
            .last_heard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }

    /// After a fresh snapshot: instances it did not list are gone (tombstones stay).
    fn keep_only(&self, listed: &HashSet<String>) {
        self.write().retain(|id, entry| match entry {
            Entry::Present(_) => listed.contains(id),
            Entry::Deleted { .. } => true,
        });
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

    /// Follows the lifecycle watch until `shutdown`, reopening it when it breaks or
    /// falls silent.
    pub fn spawn_follower(self: Arc<Self>, lifecycle: LifecycleClient, shutdown: ShutdownToken) {
        // The replica holds every instance; readers filter by ownership.
        let caller = Caller::service("edge");
        let silence_limit = self.staleness_bound / 2;
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                if let Ok(mut stream) = lifecycle.watch(&caller, String::new()).await {
                    let mut snapshot = Some(HashSet::new());
                    loop {
                        let message = tokio::select! {
                            message = stream.message() => message,
                            _ = tokio::time::sleep(silence_limit) => {
                                tracing::warn!(?silence_limit, "the lifecycle watch went silent; reopening it");
                                break;
                            }
                            _ = shutdown.cancelled() => return,
                        };
                        let Ok(Some(message)) = message else { break };
                        self.heard();
                        self.follow(message, &mut snapshot);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Applies one watch message; `snapshot` collects the ids of the opening snapshot
    /// until the bookmark that ends it.
    fn follow(&self, message: WatchInstancesResponse, snapshot: &mut Option<HashSet<String>>) {
        if message.kind == Kind::Bookmark as i32 {
            if let Some(listed) = snapshot.take() {
                self.keep_only(&listed);
            }
            return;
        }
        let Some(instance) = message.instance else {
            return;
        };
        if message.kind == Kind::Snapshot as i32
            && let Some(listed) = snapshot.as_mut()
        {
            listed.insert(instance.id.clone());
        }
        self.apply(message.kind, instance);
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

    fn message(kind: Kind, instance: Option<Instance>) -> WatchInstancesResponse {
        WatchInstancesResponse {
            kind: kind as i32,
            instance,
            usage_alert: None,
        }
    }

    #[test]
    fn a_fresh_snapshot_forgets_what_it_does_not_list() {
        let cache = InstanceCache::default();
        cache.apply(Kind::Snapshot as i32, instance("gone", 1));
        cache.apply(Kind::Snapshot as i32, instance("kept", 1));
        let mut snapshot = Some(HashSet::new());
        cache.follow(
            message(Kind::Snapshot, Some(instance("kept", 2))),
            &mut snapshot,
        );
        assert!(cache.get("gone").is_some(), "not before the snapshot ends");
        cache.follow(message(Kind::Bookmark, None), &mut snapshot);
        assert!(cache.get("gone").is_none());
        assert_eq!(cache.get("kept").unwrap().revision, 2);
        // Later bookmarks only say the stream is alive.
        cache.follow(
            message(Kind::Updated, Some(instance("new", 3))),
            &mut snapshot,
        );
        cache.follow(message(Kind::Bookmark, None), &mut snapshot);
        assert!(cache.get("new").is_some());
    }

    #[test]
    fn a_replica_that_heard_nothing_for_the_bound_is_stale() {
        let cache = InstanceCache::new(Duration::from_millis(50));
        cache.apply(Kind::Snapshot as i32, instance("a", 1));
        // Before the watch ever spoke, reads are not refused.
        assert!(matches!(cache.lookup("a"), Lookup::Hit(_)));
        cache.heard();
        assert!(matches!(cache.lookup("a"), Lookup::Hit(_)));
        std::thread::sleep(Duration::from_millis(80));
        assert!(matches!(cache.lookup("a"), Lookup::Stale(_)));
        assert!(matches!(cache.lookup("unknown"), Lookup::Stale(_)));
        cache.heard();
        assert!(matches!(cache.lookup("a"), Lookup::Hit(_)));
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
