//! The in-memory view of the store: every record, kept in step with the database on
//! each write of this replica and on each change another replica announces (see
//! [`crate::replication`]), so reads (Get, List, Watch) never wait on the database.
//!
//! Writes go to the store first, which decides (conditional statements, see
//! [`crate::store`]); the map then keeps whichever copy of a row has the higher
//! generation, so a late notification never brings back older state.

use std::{collections::BTreeMap, sync::RwLock};

use crate::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Plan, now_ms},
    revision,
    store::{InstanceStore, StoreError, Update},
};

/// A change to the map that callers (watchers, the reconciler) must hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The record is new or newer than what the map held.
    Upserted(InstanceRecord),
    /// The record is gone from the store; this was its last state.
    Removed(InstanceRecord),
}

/// Which copy [`Registry::merge`] kept.
enum Merged {
    /// The given record, now in the map.
    Replaced(InstanceRecord),
    /// The map's own copy, the same or newer.
    Kept(InstanceRecord),
}

pub struct Registry {
    store: InstanceStore,
    records: RwLock<BTreeMap<InstanceId, InstanceRecord>>,
    /// Ids whose stored row could not be read at the last full reload (reported and
    /// skipped); their workloads are not orphans.
    unreadable: RwLock<std::collections::HashSet<InstanceId>>,
}

impl Registry {
    pub async fn load(store: InstanceStore) -> Result<Self, StoreError> {
        let registry = Self {
            store,
            records: RwLock::new(BTreeMap::new()),
            unreadable: RwLock::default(),
        };
        registry.resync().await?;
        Ok(registry)
    }

    /// Whether `id`'s stored row could not be read at the last full reload.
    pub fn is_unreadable(&self, id: &InstanceId) -> bool {
        self.unreadable
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(id)
    }

    pub fn store(&self) -> &InstanceStore {
        &self.store
    }

    pub fn get(&self, id: &InstanceId) -> Option<InstanceRecord> {
        self.read().get(id).cloned()
    }

    /// The record from the map, or else from the store (a row another replica wrote
    /// whose notification has not arrived yet).
    pub async fn get_or_load(&self, id: &InstanceId) -> Result<Option<InstanceRecord>, StoreError> {
        if let Some(record) = self.get(id) {
            return Ok(Some(record));
        }
        Ok(self
            .store
            .get(id)
            .await?
            .map(|record| self.keep_newest(record)))
    }

    /// Records after `after` (exclusive) in id order, at most `limit`, that `keep` accepts.
    pub fn page(
        &self,
        after: Option<&InstanceId>,
        limit: usize,
        keep: impl Fn(&InstanceRecord) -> bool,
    ) -> (Vec<InstanceRecord>, bool) {
        let records = self.read();
        let range = match after {
            Some(after) => records.range::<InstanceId, _>((
                std::ops::Bound::Excluded(after),
                std::ops::Bound::Unbounded,
            )),
            None => records.range::<InstanceId, _>(..),
        };
        let mut page = Vec::with_capacity(limit.min(128));
        let mut more = false;
        for record in range
            .map(|(_, record)| record)
            .filter(|record| keep(record))
        {
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(record.clone());
        }
        (page, more)
    }

    pub fn all(&self) -> Vec<InstanceRecord> {
        self.read().values().cloned().collect()
    }

    pub async fn insert(&self, record: InstanceRecord) -> Result<InstanceRecord, StoreError> {
        self.insert_within_quota(record, None).await
    }

    /// Inserts `record` unless its owner already has `quota` instances (the store counts
    /// and inserts atomically, across replicas). Returns the stored record.
    pub async fn insert_within_quota(
        &self,
        record: InstanceRecord,
        quota: Option<usize>,
    ) -> Result<InstanceRecord, StoreError> {
        let stored = self.store.insert_within_quota(&record, quota).await?;
        Ok(self.keep_newest(stored))
    }

    pub async fn set_desired_state(
        &self,
        id: &InstanceId,
        desired_state: DesiredState,
    ) -> Result<Update, StoreError> {
        let update = self
            .store
            .set_desired_state(id, desired_state, now_ms())
            .await?;
        Ok(self.absorb(id, update))
    }

    pub async fn set_gateway_token(
        &self,
        id: &InstanceId,
        gateway_token: &str,
    ) -> Result<Update, StoreError> {
        let update = self
            .store
            .set_gateway_token(id, gateway_token, now_ms())
            .await?;
        Ok(self.absorb(id, update))
    }

    pub async fn set_plan(&self, id: &InstanceId, plan: Plan) -> Result<Update, StoreError> {
        let update = self.store.set_plan(id, plan, now_ms()).await?;
        Ok(self.absorb(id, update))
    }

    pub async fn set_secrets(
        &self,
        id: &InstanceId,
        secrets: &crate::model::Secrets,
    ) -> Result<Update, StoreError> {
        let update = self.store.set_secrets(id, secrets, now_ms()).await?;
        Ok(self.absorb(id, update))
    }

    /// Records an accepted delete (the first one wins; see [`InstanceStore::mark_deleting`]).
    pub async fn mark_deleting(
        &self,
        id: &InstanceId,
        preserve_data: bool,
    ) -> Result<Update, StoreError> {
        let update = self
            .store
            .mark_deleting(id, preserve_data, now_ms())
            .await?;
        Ok(self.absorb(id, update))
    }

    /// Removes the record of a finished delete; returns its last state when it was here.
    pub async fn remove_deleted(
        &self,
        id: &InstanceId,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        self.store.remove_deleted(id, now_ms()).await?;
        Ok(self.forget(id))
    }

    /// Reloads `id` from the store after another replica changed it.
    pub async fn refresh(&self, id: &InstanceId) -> Result<Option<Change>, StoreError> {
        let read_from = revision::next();
        Ok(match self.store.get(id).await? {
            Some(record) => self.upsert_if_newer(record).map(Change::Upserted),
            None => self.forget_unless_newer(id, read_from).map(Change::Removed),
        })
    }

    /// Reloads every record (at start, and whenever change notifications may have been
    /// missed); returns what changed.
    pub async fn resync(&self) -> Result<Vec<Change>, StoreError> {
        let read_from = revision::next();
        let (stored, unreadable) = self.store.load_all_reporting().await?;
        let unreadable: std::collections::HashSet<InstanceId> = unreadable
            .iter()
            .filter_map(|id| InstanceId::parse(id).ok())
            .collect();
        let mut changes = Vec::new();
        // An unreadable row is still there: its last good copy is not taken for a delete.
        let present: std::collections::HashSet<InstanceId> = stored
            .iter()
            .map(|record| record.id.clone())
            .chain(unreadable.iter().cloned())
            .collect();
        *self
            .unreadable
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = unreadable;
        for record in stored {
            changes.extend(self.upsert_if_newer(record).map(Change::Upserted));
        }
        let gone: Vec<InstanceId> = self
            .read()
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            changes.extend(
                self.forget_unless_newer(&id, read_from)
                    .map(Change::Removed),
            );
        }
        Ok(changes)
    }

    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Brings the map in line with what a conditional write found.
    fn absorb(&self, id: &InstanceId, update: Update) -> Update {
        match update {
            Update::Changed(record) => Update::Changed(self.keep_newest(record)),
            Update::Deleting(record) => Update::Deleting(self.keep_newest(record)),
            Update::Missing => {
                self.forget(id);
                Update::Missing
            }
        }
    }

    /// Stores `record` unless the map holds the same or a newer copy; returns the copy
    /// the map holds afterwards.
    fn keep_newest(&self, record: InstanceRecord) -> InstanceRecord {
        match self.merge(record) {
            Merged::Replaced(record) | Merged::Kept(record) => record,
        }
    }

    /// Stores `record` when it is newer than the map's copy; returns it (with a fresh
    /// revision) when it was.
    fn upsert_if_newer(&self, record: InstanceRecord) -> Option<InstanceRecord> {
        match self.merge(record) {
            Merged::Replaced(record) => Some(record),
            Merged::Kept(_) => None,
        }
    }

    /// Keeps the newer of `record` and the map's copy. A row deleted and created again
    /// restarts its generation, so incarnations are told apart by creation time first.
    fn merge(&self, mut record: InstanceRecord) -> Merged {
        let mut records = self.write();
        if let Some(held) = records.get(&record.id)
            && (held.created_at_ms, held.generation) >= (record.created_at_ms, record.generation)
        {
            return Merged::Kept(held.clone());
        }
        record.revision = revision::next();
        records.insert(record.id.clone(), record.clone());
        Merged::Replaced(record)
    }

    /// Forgets `id` unless the map's copy changed after `read_from`, the revision taken
    /// before a store read that did not find it: a create that landed after the read
    /// began is not a deletion.
    fn forget_unless_newer(&self, id: &InstanceId, read_from: u64) -> Option<InstanceRecord> {
        let mut records = self.write();
        match records.get(id) {
            Some(held) if held.revision > read_from => None,
            Some(_) => records.remove(id),
            None => None,
        }
    }

    fn forget(&self, id: &InstanceId) -> Option<InstanceRecord> {
        self.write().remove(id)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<InstanceId, InstanceRecord>> {
        self.records
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<InstanceId, InstanceRecord>> {
        self.records
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
