//! The runtime's view of the cluster, fed by the watchers: what it needs of every object
//! of this platform in the namespace, indexed by instance. Get, List, Watch, the gateway
//! endpoint and exec's pod choice are answered from here; the apiserver is only asked to
//! change things.
//!
//! Lean by design (docs/capacity.md#what-the-lifecycle-keeps): an instance's own objects
//! are kept as a uid and a digest, the Deployment and its pods as the few typed fields
//! phases are derived from ([`super::lean`] strips the rest as events arrive), and of the
//! Secret only a digest of the gateway token: no Secret data is held.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};

use super::{
    kinds::ObjectKind,
    manifests::{DesiredObject, Digest},
};
use crate::instance_id::InstanceId;

/// What the runtime keeps of one of an instance's own objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveObject {
    /// Deletes of leftovers name it, so a look-alike made since is not removed.
    pub uid: String,
    /// The digest of the desired object this one says everything of: checked against
    /// the desired object when the event arrived, or, before the runtime knew what the
    /// instance should be (a restart), the digest stamped on it when it was applied.
    pub in_sync_with: Option<Digest>,
    /// `metadata.generation` (Deployments): a status-only event keeps it, so the
    /// comparison with the desired object need not be made again.
    pub generation: Option<i64>,
    /// The digest stamped on it when it was applied.
    pub stamped: Option<Digest>,
    /// A Service that still has a cluster IP of its own (one from before Services were
    /// headless): the field is immutable, so it is replaced, not patched.
    pub has_cluster_ip: bool,
}

/// What the cluster holds of one instance.
#[derive(Debug, Clone, Default)]
pub struct InstanceObjects {
    /// The instance's own objects by kind (pods are not here).
    pub owned: BTreeMap<ObjectKind, LiveObject>,
    /// The Deployment, reduced to what phases are derived from.
    pub deployment: Option<Arc<Deployment>>,
    /// Its pods by name, reduced likewise.
    pub pods: BTreeMap<String, Arc<Pod>>,
    /// SHA-256 of the gateway token the Secret holds (a deleted incarnation is told
    /// apart by it; the token itself is not kept).
    pub gateway_token_digest: Option<[u8; 32]>,
}

/// One object as the cache keeps it.
#[derive(Debug, Clone)]
pub enum Cached {
    Pod(Arc<Pod>),
    Owned {
        live: LiveObject,
        /// Only for the Deployment.
        deployment: Option<Arc<Deployment>>,
        /// Only for the Secret.
        gateway_token_digest: Option<[u8; 32]>,
    },
}

impl InstanceObjects {
    fn is_empty(&self) -> bool {
        self.owned.is_empty() && self.pods.is_empty()
    }

    /// Whether the instance has anything besides its data volume.
    pub fn has_workload(&self) -> bool {
        !self.pods.is_empty()
            || self
                .owned
                .keys()
                .any(|kind| *kind != ObjectKind::PersistentVolumeClaim)
    }

    /// Whether the live object already says everything `desired` says.
    pub fn matches(&self, desired: &DesiredObject) -> bool {
        self.owned
            .get(&desired.kind)
            .is_some_and(|live| live.in_sync_with == Some(desired.digest))
    }
}

#[derive(Default)]
pub struct ClusterCache {
    instances: RwLock<HashMap<InstanceId, InstanceObjects>>,
}

impl ClusterCache {
    /// Records an object as it now is. Objects of an instance's kind under another name
    /// than the instance's (not the platform's doing) are ignored.
    pub fn upsert(&self, kind: ObjectKind, id: &InstanceId, name: &str, object: Cached) {
        if kind != ObjectKind::Pod && name != kind.object_name(id) {
            return;
        }
        let mut instances = self.write();
        let entry = instances.entry(id.clone()).or_default();
        match object {
            Cached::Pod(pod) => {
                entry.pods.insert(name.to_owned(), pod);
            }
            Cached::Owned {
                live,
                deployment,
                gateway_token_digest,
            } => {
                if kind == ObjectKind::Deployment {
                    entry.deployment = deployment;
                }
                if kind == ObjectKind::Secret {
                    entry.gateway_token_digest = gateway_token_digest;
                }
                entry.owned.insert(kind, live);
            }
        }
    }

    /// Forgets an object that is gone.
    pub fn remove(&self, kind: ObjectKind, id: &InstanceId, name: &str) {
        let mut instances = self.write();
        let Some(entry) = instances.get_mut(id) else {
            return;
        };
        match kind {
            ObjectKind::Pod => {
                entry.pods.remove(name);
            }
            _ if name == kind.object_name(id) => {
                entry.owned.remove(&kind);
                if kind == ObjectKind::Deployment {
                    entry.deployment = None;
                }
                if kind == ObjectKind::Secret {
                    entry.gateway_token_digest = None;
                }
            }
            _ => {}
        }
        if entry.is_empty() {
            instances.remove(id);
        }
    }

    /// What is kept of one of `id`'s own objects.
    pub fn live(&self, id: &InstanceId, kind: ObjectKind) -> Option<LiveObject> {
        self.read().get(id)?.owned.get(&kind).cloned()
    }

    /// A snapshot of one instance's objects (cheap: small values and shared ones).
    pub fn get(&self, id: &InstanceId) -> InstanceObjects {
        self.read().get(id).cloned().unwrap_or_default()
    }

    /// Ids of every instance that has workload objects (not just a kept PVC).
    pub fn instances_with_workloads(&self) -> Vec<InstanceId> {
        self.read()
            .iter()
            .filter(|(_, objects)| objects.has_workload())
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<InstanceId, InstanceObjects>> {
        self.instances
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<InstanceId, InstanceObjects>> {
        self.instances
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
