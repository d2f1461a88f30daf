//! A replica of every instance's state, fed by the lifecycle service's watch stream,
//! so `GET /api/instances/:id` is answered from memory: one network hop instead of
//! two. Only the watch stream fills it. A mutation through the edge drops the entry
//! it touched (the next read asks the lifecycle service until the change's event
//! arrives), so a caller always reads its own writes. While the stream is down the
//! replica is empty and every read goes to the lifecycle service.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use clawfleet_contracts::lifecycle::v1::{Instance, watch_instances_response::Kind};
use clawfleet_kit::{identity::Caller, shutdown::ShutdownToken};

use crate::lifecycle::LifecycleClient;

/// Pause before reopening a broken watch.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

#[derive(Default, Debug)]
pub struct InstanceCache {
    entries: RwLock<HashMap<String, Arc<Instance>>>,
}

impl InstanceCache {
    pub fn get(&self, id: &str) -> Option<Arc<Instance>> {
        self.read().get(id).cloned()
    }

    /// Forgets one instance, so the next read asks the lifecycle service.
    pub fn forget(&self, id: &str) {
        self.write().remove(id);
    }

    fn apply(&self, kind: i32, instance: Instance) {
        let mut entries = self.write();
        if kind == Kind::Deleted as i32 {
            entries.remove(&instance.id);
        } else {
            entries.insert(instance.id.clone(), Arc::new(instance));
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Instance>>> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Instance>>> {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        cache.forget("b");
        assert!(cache.get("b").is_none());
    }
}
