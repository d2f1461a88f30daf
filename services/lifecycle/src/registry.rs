//! The in-memory view of the store: every record, kept in step with the database on
//! each write, so reads (Get, List, Watch) never wait on SQLite.

use std::{collections::BTreeMap, sync::RwLock};

use crate::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, now_ms},
    revision,
    store::{InstanceStore, StoreError},
};

pub struct Registry {
    store: InstanceStore,
    records: RwLock<BTreeMap<InstanceId, InstanceRecord>>,
    /// Serialises writes so the database and the map change in the same order.
    write_lock: tokio::sync::Mutex<()>,
}

impl Registry {
    pub async fn load(store: InstanceStore) -> Result<Self, StoreError> {
        let records = store
            .load_all()
            .await?
            .into_iter()
            .map(|mut record| {
                record.revision = revision::next();
                (record.id.clone(), record)
            })
            .collect();
        Ok(Self {
            store,
            records: RwLock::new(records),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn get(&self, id: &InstanceId) -> Option<InstanceRecord> {
        self.read().get(id).cloned()
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

    pub async fn insert(&self, record: InstanceRecord) -> Result<(), StoreError> {
        self.insert_within_quota(record, None).await
    }

    /// Inserts `record` unless its owner already has `quota` instances; counting and
    /// inserting under one lock, so racing creates cannot both slip under the quota.
    pub async fn insert_within_quota(
        &self,
        record: InstanceRecord,
        quota: Option<usize>,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        if self.read().contains_key(&record.id) {
            return Err(StoreError::AlreadyExists(record.id));
        }
        if let Some(quota) = quota {
            let owned = self
                .read()
                .values()
                .filter(|existing| existing.owner == record.owner)
                .count();
            if owned >= quota {
                return Err(StoreError::QuotaExceeded { owned, quota });
            }
        }
        self.store.insert(&record).await?;
        let mut record = record;
        record.revision = revision::next();
        self.write().insert(record.id.clone(), record);
        Ok(())
    }

    /// Returns the updated record, or `None` when it does not exist.
    pub async fn set_desired_state(
        &self,
        id: &InstanceId,
        desired_state: DesiredState,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let _guard = self.write_lock.lock().await;
        let updated_at_ms = now_ms();
        if !self
            .store
            .set_desired_state(id, desired_state, updated_at_ms)
            .await?
        {
            return Ok(None);
        }
        let mut records = self.write();
        Ok(records.get_mut(id).map(|record| {
            record.desired_state = desired_state;
            record.updated_at_ms = updated_at_ms;
            record.revision = revision::next();
            record.clone()
        }))
    }

    /// Replaces the gateway token; returns the updated record, or `None` when it does not exist.
    pub async fn set_gateway_token(
        &self,
        id: &InstanceId,
        gateway_token: String,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let _guard = self.write_lock.lock().await;
        let updated_at_ms = now_ms();
        if !self
            .store
            .set_gateway_token(id, &gateway_token, updated_at_ms)
            .await?
        {
            return Ok(None);
        }
        let mut records = self.write();
        Ok(records.get_mut(id).map(|record| {
            record.gateway_token = gateway_token;
            record.updated_at_ms = updated_at_ms;
            record.revision = revision::next();
            record.clone()
        }))
    }

    /// Returns the removed record, or `None` when it did not exist.
    pub async fn remove(&self, id: &InstanceId) -> Result<Option<InstanceRecord>, StoreError> {
        let _guard = self.write_lock.lock().await;
        self.store.delete(id).await?;
        Ok(self.write().remove(id))
    }

    pub async fn close(&self) {
        self.store.close().await;
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
