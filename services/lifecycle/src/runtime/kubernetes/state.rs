//! The runtime's shared state: what it was asked for (desired objects per instance),
//! what the watchers see (the cache), what callers are shown (the status board), and
//! the queue of instances whose objects drifted.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use tokio::sync::mpsc;

use super::{
    cache::ClusterCache,
    config::KubernetesConfig,
    deletions::Deletions,
    kinds::ObjectKind,
    manifests::{DesiredObject, desired_objects},
    phase,
};
use crate::{
    instance_id::InstanceId,
    model::{InstanceSpec, Phase, now_ms},
    runtime::{Observed, status_board::StatusBoard},
};

/// What the runtime last applied for an instance.
#[derive(Debug)]
pub struct DesiredInstance {
    pub spec: InstanceSpec,
    pub objects: Vec<DesiredObject>,
}

pub struct RuntimeState {
    pub config: KubernetesConfig,
    pub cache: ClusterCache,
    pub board: StatusBoard,
    pub deletions: Deletions,
    desired: Mutex<HashMap<InstanceId, Arc<DesiredInstance>>>,
    /// Instances shown as `starting`: re-derived on a timer, since "up but never ready"
    /// turns into an error by the clock, not by an event.
    starting: Mutex<HashSet<InstanceId>>,
    pub(super) repairs: mpsc::UnboundedSender<super::drift::Drift>,
    /// Whether this replica holds the leader Lease and so repairs drift (see
    /// [`super::lease`]); a runtime outside an election leads.
    leading: std::sync::atomic::AtomicBool,
}

impl RuntimeState {
    pub fn new(
        config: KubernetesConfig,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<super::drift::Drift>) {
        let (repairs, queue) = mpsc::unbounded_channel();
        let state = Arc::new(Self {
            config,
            cache: ClusterCache::default(),
            board: StatusBoard::default(),
            deletions: Deletions::default(),
            desired: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashSet::new()),
            repairs,
            leading: std::sync::atomic::AtomicBool::new(true),
        });
        (state, queue)
    }

    pub fn set_leading(&self, leading: bool) {
        self.leading
            .store(leading, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records `spec` as desired and returns its objects (built once per spec change).
    pub fn set_desired(&self, spec: &InstanceSpec) -> Arc<DesiredInstance> {
        let mut desired = lock(&self.desired);
        if let Some(existing) = desired.get(&spec.id)
            && existing.spec == *spec
        {
            return existing.clone();
        }
        let instance = Arc::new(DesiredInstance {
            spec: spec.clone(),
            objects: desired_objects(&self.config, spec),
        });
        desired.insert(spec.id.clone(), instance.clone());
        instance
    }

    pub fn desired(&self, id: &InstanceId) -> Option<Arc<DesiredInstance>> {
        lock(&self.desired).get(id).cloned()
    }

    pub fn forget(&self, id: &InstanceId) {
        lock(&self.desired).remove(id);
    }

    /// A watched object changed (or went away): refresh what callers see and, for the
    /// instance's own objects, compare with what it should be. Status updates of a
    /// Deployment and pod events never cause a write: only a real difference does.
    pub fn on_change(&self, kind: ObjectKind, id: &InstanceId) {
        if matches!(kind, ObjectKind::Deployment | ObjectKind::Pod) {
            self.refresh(id);
        }
        if kind != ObjectKind::Pod
            && let Some(desired) = self.desired(id)
            && let Some(object) = desired.objects.iter().find(|object| object.kind == kind)
            && !self.cache.get(id).matches(object)
        {
            tracing::info!(instance = %id, kind = kind.kind_name(), "drift detected; re-applying");
            let _ = self.repairs.send((id.clone(), kind));
        }
    }

    /// Re-derives and publishes the observed state of `id`.
    pub fn refresh(&self, id: &InstanceId) {
        let objects = self.cache.get(id);
        let pods: Vec<_> = objects.pods.values().map(|pod| pod.as_ref()).collect();
        let observed: Observed = phase::derive(
            objects.deployment.as_deref(),
            &pods,
            now_ms(),
            self.config.ready_grace,
        );
        {
            let mut starting = lock(&self.starting);
            if observed.phase == Phase::Starting {
                starting.insert(id.clone());
            } else {
                starting.remove(id);
            }
        }
        if observed.phase == Phase::Unknown && objects.deployment.is_none() && pods.is_empty() {
            self.board.remove(id);
        } else {
            self.board.publish(id, observed);
        }
    }

    /// Re-derives every instance shown as starting.
    pub fn refresh_starting(&self) {
        let ids: Vec<InstanceId> = lock(&self.starting).iter().cloned().collect();
        for id in ids {
            self.refresh(&id);
        }
    }

    pub fn observe(&self, id: &InstanceId) -> Observed {
        self.board
            .get(id)
            .unwrap_or_else(|| Observed::unknown("no deployment"))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
