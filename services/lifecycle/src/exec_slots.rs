//! A bound on commands running inside one instance at a time. Each ExecInInstance
//! starts a process in the instance (on Kubernetes a pods/exec session through the API
//! server; locally a Node CLI of its own), so uncapped calls let one tenant's
//! `pairing/list` loop spend the instance's memory and the platform's API budget. Over
//! the cap the call is refused at once with RESOURCE_EXHAUSTED and a retry hint.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use clawfleet_kit::error::{ErrorCode, ServiceError};

use crate::instance_id::InstanceId;

/// Commands one instance may run at a time.
pub const EXEC_SLOTS_PER_INSTANCE: usize = 2;

/// Running commands per instance; an instance with none holds no entry.
#[derive(Debug)]
pub struct ExecSlots {
    limit: usize,
    running: Arc<Mutex<HashMap<InstanceId, usize>>>,
}

impl Default for ExecSlots {
    fn default() -> Self {
        Self::new(EXEC_SLOTS_PER_INSTANCE)
    }
}

impl ExecSlots {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            running: Arc::default(),
        }
    }

    /// A slot for one command in `id`, held until the guard drops.
    pub fn take(&self, id: &InstanceId) -> Result<ExecSlot, ServiceError> {
        let mut running = lock(&self.running);
        let count = running.entry(id.clone()).or_default();
        if *count >= self.limit {
            let mut error = ServiceError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "instance {id} is already running {} commands (the most it may run at once); retry when one finishes",
                    self.limit
                ),
            );
            error.retry_after_seconds = Some(1);
            return Err(error);
        }
        *count += 1;
        Ok(ExecSlot {
            running: self.running.clone(),
            id: id.clone(),
        })
    }
}

fn lock(
    running: &Mutex<HashMap<InstanceId, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<InstanceId, usize>> {
    running
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One running command; dropping it (even when the call is cancelled) frees the slot.
#[derive(Debug)]
pub struct ExecSlot {
    running: Arc<Mutex<HashMap<InstanceId, usize>>>,
    id: InstanceId,
}

impl Drop for ExecSlot {
    fn drop(&mut self) {
        let mut running = lock(&self.running);
        if let Some(count) = running.get_mut(&self.id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> InstanceId {
        InstanceId::parse(text).unwrap()
    }

    #[test]
    fn commands_are_capped_per_instance_with_a_clear_error() {
        let slots = ExecSlots::new(2);
        let first = slots.take(&id("alice")).unwrap();
        let _second = slots.take(&id("alice")).unwrap();
        let refused = slots.take(&id("alice")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::ResourceExhausted);
        assert_eq!(refused.retry_after_seconds, Some(1));
        assert!(
            refused.message.contains("already running 2 commands"),
            "{}",
            refused.message
        );
        // Another instance is not affected.
        assert!(slots.take(&id("bob")).is_ok());
        drop(first);
        assert!(slots.take(&id("alice")).is_ok());
    }

    #[test]
    fn idle_instances_hold_no_entry() {
        let slots = ExecSlots::default();
        drop(slots.take(&id("alice")).unwrap());
        assert!(lock(&slots.running).is_empty());
    }
}
