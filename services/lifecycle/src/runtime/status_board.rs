//! Observed state of every instance a runtime manages, with change notifications.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast;

use super::Observed;
use crate::instance_id::InstanceId;

/// How many change notifications a slow subscriber may fall behind before it must
/// resynchronise from a snapshot.
const CHANGE_BUFFER: usize = 4096;

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<Inner>,
}

struct Inner {
    observed: Mutex<HashMap<InstanceId, Observed>>,
    changes: broadcast::Sender<InstanceId>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        Self {
            inner: Arc::new(Inner {
                observed: Mutex::new(HashMap::new()),
                changes,
            }),
        }
    }
}

impl StatusBoard {
    /// Records a new observation and notifies subscribers, unless nothing changed.
    pub fn publish(&self, id: &InstanceId, mut observed: Observed) {
        {
            let mut map = self.lock();
            if let Some(previous) = map.get(id) {
                observed.revision = previous.revision;
                if *previous == observed {
                    return;
                }
            }
            observed.revision = crate::revision::next();
            map.insert(id.clone(), observed);
        }
        // No subscriber is not an error.
        let _ = self.inner.changes.send(id.clone());
    }

    /// Forgets an instance and notifies subscribers.
    pub fn remove(&self, id: &InstanceId) {
        if self.lock().remove(id).is_some() {
            let _ = self.inner.changes.send(id.clone());
        }
    }

    pub fn get(&self, id: &InstanceId) -> Option<Observed> {
        self.lock().get(id).cloned()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<InstanceId> {
        self.inner.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Observed>> {
        // A panic while holding the lock cannot leave the map half-written (single
        // inserts and removes), so a poisoned lock is still safe to use.
        self.inner
            .observed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    fn observed(phase: Phase) -> Observed {
        Observed {
            phase,
            reason: String::new(),
            ready: false,
            pods: vec![],
            revision: 0,
        }
    }

    #[test]
    fn changes_are_announced_once_and_carry_increasing_revisions() {
        let board = StatusBoard::default();
        let mut changes = board.subscribe();
        let id = InstanceId::parse("alice").unwrap();
        board.publish(&id, observed(Phase::Pending));
        board.publish(&id, observed(Phase::Pending));
        board.publish(&id, observed(Phase::Starting));
        assert_eq!(changes.try_recv().unwrap(), id);
        assert_eq!(changes.try_recv().unwrap(), id);
        assert!(changes.try_recv().is_err());
        let revision = board.get(&id).unwrap().revision;
        board.publish(&id, observed(Phase::Running));
        assert!(board.get(&id).unwrap().revision > revision);
        assert_eq!(changes.try_recv().unwrap(), id);
        board.remove(&id);
        assert!(board.get(&id).is_none());
        assert_eq!(changes.try_recv().unwrap(), id);
    }
}
