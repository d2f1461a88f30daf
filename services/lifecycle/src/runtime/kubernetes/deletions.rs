//! Deleting an instance while something else writes it.
//!
//! The periodic reconcile reads a record, then applies it; the service deletes in the
//! runtime first and removes the record after. A reconcile that read the record just
//! before a purge would re-create every object after it, an empty PVC included, and the
//! next reconcile removes the workloads as orphans but keeps that PVC for ever. So:
//!
//! - every write of an instance (apply, drift repair, delete) holds the instance's
//!   [`Gate`]: a delete waits for a write in flight, and no write starts mid-delete;
//! - a delete leaves a tombstone with a digest of the deleted incarnation's gateway
//!   token, and an apply of that same incarnation (a stale read) is refused. Creating
//!   the id again always generates a new token, so the new incarnation is let through
//!   and clears the tombstone. Tombstones expire: only a read taken just before the
//!   delete can be that stale.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;

use crate::instance_id::InstanceId;

/// Longer than any reconcile pass takes between reading a record and applying it.
const TOMBSTONE_LIFETIME: Duration = Duration::from_secs(600);

type Digest32 = [u8; 32];

#[derive(Default)]
pub struct Deletions {
    gates: Mutex<HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>>,
    tombstones: Mutex<HashMap<InstanceId, (Digest32, Instant)>>,
}

/// Held while writing one instance; other writers of the same instance wait.
pub struct Gate<'a> {
    deletions: &'a Deletions,
    id: InstanceId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Deletions {
    /// Waits until no one else writes `id`.
    pub async fn gate(&self, id: &InstanceId) -> Gate<'_> {
        let mutex = lock(&self.gates).entry(id.clone()).or_default().clone();
        Gate {
            deletions: self,
            id: id.clone(),
            guard: Some(mutex.lock_owned().await),
        }
    }

    /// Records that the incarnation of `id` with `gateway_token` was deleted.
    /// `token_digest` is SHA-256 of the token ([`super::lean::token_digest_of`]): the
    /// cache keeps no Secret data, only that digest.
    pub fn bury(&self, id: &InstanceId, token_digest: Digest32) {
        let now = Instant::now();
        let mut tombstones = lock(&self.tombstones);
        tombstones.retain(|_, (_, at)| now.duration_since(*at) < TOMBSTONE_LIFETIME);
        tombstones.insert(id.clone(), (token_digest, now));
    }

    /// Whether applying `id` with `gateway_token` would bring a deleted incarnation back.
    /// Any other token is a new incarnation, which clears the tombstone.
    pub fn is_buried(&self, id: &InstanceId, gateway_token: &str) -> bool {
        let mut tombstones = lock(&self.tombstones);
        let Some((buried, at)) = tombstones.get(id) else {
            return false;
        };
        if *buried == digest(gateway_token) && at.elapsed() < TOMBSTONE_LIFETIME {
            return true;
        }
        tombstones.remove(id);
        false
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Forget the gate once nobody holds or awaits it (waiters clone it under this
        // same lock, so none can appear in between).
        let mut gates = lock(&self.deletions.gates);
        if gates
            .get(&self.id)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            gates.remove(&self.id);
        }
    }
}

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_deleted_incarnation_is_refused_and_a_new_one_clears_the_tombstone() {
        let deletions = Deletions::default();
        let id = InstanceId::parse("alice").unwrap();
        assert!(!deletions.is_buried(&id, "old"));
        deletions.bury(&id, digest("old"));
        assert!(deletions.is_buried(&id, "old"));
        assert!(!deletions.is_buried(&id, "new"));
        assert!(!deletions.is_buried(&id, "old"), "the new incarnation won");
    }

    #[tokio::test]
    async fn writers_of_one_instance_take_turns_and_idle_gates_are_forgotten() {
        let deletions = Deletions::default();
        let alice = InstanceId::parse("alice").unwrap();
        let bob = InstanceId::parse("bob").unwrap();
        let first = deletions.gate(&alice).await;
        let _other = deletions.gate(&bob).await;
        let second = deletions.gate(&alice);
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut second)
                .await
                .is_err(),
            "a second writer of alice waits"
        );
        drop(first);
        drop(second.await);
        assert!(!lock(&deletions.gates).contains_key(&alice));
    }
}
