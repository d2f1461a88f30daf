//! One backup or restore per instance at a time, and while one runs the reconciler and
//! start/stop requests leave the runtime alone: the operation stops and starts the
//! gateway itself, and when it ends it applies whatever the store then wants.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use super::OperationError;
use crate::instance_id::InstanceId;

/// Instances held by a backup or restore.
#[derive(Debug, Default, Clone)]
pub struct Holds {
    held: Arc<Mutex<HashSet<InstanceId>>>,
}

/// An instance held until dropped.
#[derive(Debug)]
pub struct Hold {
    holds: Holds,
    id: InstanceId,
}

impl Holds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<InstanceId>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Holds `id`, or says it is busy.
    pub fn take(&self, id: &InstanceId) -> Result<Hold, OperationError> {
        if !self.lock().insert(id.clone()) {
            return Err(OperationError::Busy(id.clone()));
        }
        Ok(Hold {
            holds: self.clone(),
            id: id.clone(),
        })
    }

    /// Whether a backup or restore holds `id` now.
    pub fn is_held(&self, id: &InstanceId) -> bool {
        self.lock().contains(id)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.holds.lock().remove(&self.id);
    }
}
