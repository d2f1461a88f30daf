//! The runtime's view of the cluster, fed by the watchers: every object of this
//! platform in the namespace, indexed by instance. Get, List, Watch, the gateway
//! endpoint and exec's pod choice are answered from here; the apiserver is only
//! asked to change things.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

use clawfleet_kit::config::keys;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use serde_json::Value;

use super::{kinds::ObjectKind, manifests::DesiredObject, subset::is_subset};
use crate::instance_id::InstanceId;

/// What the cluster holds of one instance.
#[derive(Debug, Clone, Default)]
pub struct InstanceObjects {
    /// The instance's own objects by kind, as JSON (pods are not here).
    pub owned: BTreeMap<ObjectKind, Arc<Value>>,
    /// The Deployment, typed (phase derivation).
    pub deployment: Option<Arc<Deployment>>,
    /// Its pods by name.
    pub pods: BTreeMap<String, Arc<Pod>>,
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
            .is_some_and(|live| is_subset(&desired.body, live))
    }

    /// A value of the instance Secret, decoded.
    pub fn secret_value(&self, key: &str) -> Option<String> {
        use base64::Engine;
        let encoded = self.owned.get(&ObjectKind::Secret)?["data"][key].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    }

    pub fn gateway_token(&self) -> Option<String> {
        self.secret_value(keys::OPENCLAW_GATEWAY_TOKEN)
    }
}

#[derive(Default)]
pub struct ClusterCache {
    instances: RwLock<HashMap<InstanceId, InstanceObjects>>,
}

impl ClusterCache {
    /// Records an object as it now is. Objects of an instance's kind under another name
    /// than the instance's (not the platform's doing) are ignored.
    pub fn upsert(&self, kind: ObjectKind, id: &InstanceId, name: &str, object: Value) {
        if kind != ObjectKind::Pod && name != kind.object_name(id) {
            return;
        }
        let typed_pod = match kind {
            ObjectKind::Pod => match serde_json::from_value::<Pod>(object.clone()) {
                Ok(pod) => Some(Arc::new(pod)),
                Err(error) => {
                    tracing::warn!(pod = name, %error, "unreadable pod; ignored");
                    return;
                }
            },
            _ => None,
        };
        let typed_deployment = match kind {
            ObjectKind::Deployment => match serde_json::from_value::<Deployment>(object.clone()) {
                Ok(deployment) => Some(Arc::new(deployment)),
                Err(error) => {
                    tracing::warn!(deployment = name, %error, "unreadable deployment; ignored");
                    return;
                }
            },
            _ => None,
        };
        let mut instances = self.write();
        let entry = instances.entry(id.clone()).or_default();
        match kind {
            ObjectKind::Pod => {
                if let Some(pod) = typed_pod {
                    entry.pods.insert(name.to_owned(), pod);
                }
            }
            _ => {
                if typed_deployment.is_some() {
                    entry.deployment = typed_deployment;
                }
                entry.owned.insert(kind, Arc::new(object));
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
            }
            _ => {}
        }
        if entry.is_empty() {
            instances.remove(id);
        }
    }

    /// A snapshot of one instance's objects (cheap: shared values).
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
