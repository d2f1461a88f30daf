//! Object storage with one global resourceVersion counter (like etcd's revision), a bounded
//! history of changes for watches, and the server-assigned metadata (`uid`,
//! `creationTimestamp`, `resourceVersion`, `generation`). A write that changes nothing is not a
//! write: it keeps the resourceVersion, as the real apiserver does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::util::{new_uid, now, random_suffix};

/// (resource id, namespace — empty for cluster-scoped, name)
pub(crate) type Key = (String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed change, as watches replay it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub resource: String,
    pub namespace: String,
    pub kind: ChangeType,
    pub object: Value,
    /// The previous state, so selector-filtered watches can turn a label change into ADDED/DELETED.
    pub old: Option<Value>,
}

/// The backlog of changes after the requested version, and the live feed after it.
pub(crate) type Subscription = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

pub(crate) struct Store {
    inner: Mutex<Inner>,
}

pub(crate) struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches from a resourceVersion older than this get 410 Expired.
    compacted_rv: u64,
    next_cluster_ip: u32,
    changes: broadcast::Sender<Arc<Change>>,
    pub(crate) gc_wake: Arc<Notify>,
}

pub(crate) fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

impl Store {
    pub(crate) fn new(history_limit: usize) -> Self {
        let (changes, _) = broadcast::channel(4096);
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                compacted_rv: 0,
                next_cluster_ip: 10,
                changes,
                gc_wake: Arc::new(Notify::new()),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    pub(crate) fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(rt.id(), ns.to_string(), name.to_string()))
    }

    /// Objects of `rt`, in one namespace or (with `None`) all of them, ordered by namespace/name.
    pub(crate) fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<&Value> {
        let id = rt.id();
        self.objects
            .range((id.clone(), String::new(), String::new())..)
            .take_while(|((r, _, _), _)| *r == id)
            .filter(|((_, n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .collect()
    }

    pub(crate) fn get_key(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// All objects of any kind (for owner lookups).
    pub(crate) fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    fn commit(&mut self, key: &Key, kind: ChangeType, object: Value, old: Option<Value>) {
        let change = Arc::new(Change {
            rv: self.rv,
            resource: key.0.clone(),
            namespace: key.1.clone(),
            kind,
            object,
            old,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_rv = dropped.rv;
            }
        }
        let _ = self.changes.send(change);
    }

    /// Stores a new object, assigning the server-owned metadata.
    pub(crate) fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let meta = object["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata is required"))?;
        let name = match (
            meta.get("name").and_then(Value::as_str),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(name), _) if !name.is_empty() => name.to_string(),
            (_, Some(prefix)) => format!("{prefix}{}", random_suffix(5)),
            _ => {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    &[(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
        };
        let key = (rt.id(), ns.to_string(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        self.rv += 1;
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        for server_owned in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(server_owned);
        }
        if rt.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if rt.is("Service") {
            self.allocate_cluster_ip(&mut object);
        }
        self.objects.insert(key.clone(), object.clone());
        self.commit(&key, ChangeType::Added, object.clone(), None);
        Ok(object)
    }

    fn allocate_cluster_ip(&mut self, service: &mut Value) {
        let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        if spec.get("type").and_then(Value::as_str) == Some("ExternalName")
            || spec.contains_key("clusterIP")
        {
            return;
        }
        let n = self.next_cluster_ip;
        self.next_cluster_ip += 1;
        let ip = format!("10.96.{}.{}", n / 250, n % 250 + 1);
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }

    /// Replaces an existing object. Server-owned metadata is carried over; `generation` moves on
    /// spec changes; an identical object is returned unchanged (no new resourceVersion).
    pub(crate) fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&object, "name").unwrap_or_default().to_string();
        let key = (rt.id(), ns.to_string(), name.clone());
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, &name))?;
        // Optimistic concurrency: a write based on an older read loses.
        if let Some(rv) = meta_str(&object, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale_resource_version(rt, &name));
        }
        {
            let meta = object["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata is required"))?;
            for carried in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
            ] {
                match old["metadata"].get(carried) {
                    Some(v) => meta.insert(carried.into(), v.clone()),
                    None => meta.remove(carried),
                };
            }
            meta.insert(
                "resourceVersion".into(),
                old["metadata"]["resourceVersion"].clone(),
            );
        }
        if rt.is("Service") {
            for carried in ["clusterIP", "clusterIPs"] {
                if object["spec"].get(carried).is_none()
                    && let Some(v) = old["spec"].get(carried)
                {
                    object["spec"][carried] = v.clone();
                }
            }
        }
        if object == old {
            return Ok(old);
        }
        if rt.generation && spec_part(&object) != spec_part(&old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            object["metadata"]["generation"] = json!(generation);
        }
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let finalized = object["metadata"].get("deletionTimestamp").is_some()
            && object["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if finalized {
            self.objects.remove(&key);
            self.commit(&key, ChangeType::Deleted, object.clone(), Some(old));
            self.gc_wake.notify_one();
        } else {
            self.objects.insert(key.clone(), object.clone());
            self.commit(&key, ChangeType::Modified, object.clone(), Some(old));
        }
        Ok(object)
    }

    /// Removes an object now; the DELETED event carries the deletion's resourceVersion.
    pub(crate) fn remove_key(&mut self, key: &Key) -> Option<Value> {
        let old = self.objects.remove(key)?;
        self.rv += 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.commit(key, ChangeType::Deleted, gone.clone(), Some(old));
        self.gc_wake.notify_one();
        Some(gone)
    }

    /// Writes `object` under `key` as a metadata-only change (used by the garbage collector).
    pub(crate) fn put_key(&mut self, key: &Key, mut object: Value) {
        let Some(old) = self.objects.get(key).cloned() else {
            return;
        };
        if old == object {
            return;
        }
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), object.clone());
        self.commit(key, ChangeType::Modified, object, Some(old));
    }

    pub(crate) fn key_of(rt: &ResourceType, ns: &str, name: &str) -> Key {
        (rt.id(), ns.to_string(), name.to_string())
    }

    /// Subscribes to changes after `from` (or, with `None`, after now), atomically with reading
    /// the backlog so no change is missed or seen twice.
    pub(crate) fn subscribe(&self, from: Option<u64>) -> Result<Subscription, ApiError> {
        let receiver = self.changes.subscribe();
        let Some(from) = from else {
            return Ok((Vec::new(), receiver));
        };
        if from < self.compacted_rv {
            return Err(ApiError::expired(from, self.compacted_rv));
        }
        let backlog = self
            .history
            .iter()
            .filter(|c| c.rv > from)
            .cloned()
            .collect();
        Ok((backlog, receiver))
    }

    /// Forgets the change history up to now: any watch resuming from an older resourceVersion gets
    /// 410 Expired (what etcd compaction does to a real cluster).
    pub(crate) fn compact(&mut self) {
        self.compacted_rv = self.rv;
        self.history.clear();
    }

    pub(crate) fn history_floor(&self) -> u64 {
        self.compacted_rv
    }
}
