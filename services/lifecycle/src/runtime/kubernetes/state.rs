//! The runtime's shared state: what it was asked for (desired objects per instance),
//! what the watchers see (the cache), what callers are shown (the status board), and
//! the queue of instances whose objects drifted.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use clawfleet_kit::backoff::Backoff;
use tokio::sync::mpsc;

use super::{
    cache::ClusterCache,
    config::KubernetesConfig,
    deletions::Deletions,
    kinds::ObjectKind,
    manifests::{DesiredObject, Digest, desired_objects},
    phase,
    queue::FairQueue,
};
use crate::{
    instance_id::InstanceId,
    model::{InstanceSpec, Phase, now_ms},
    runtime::{Observed, status_board::StatusBoard},
};

/// What the runtime was last asked an instance to be: the spec, and the digest of each
/// object it makes. The bodies (several KB each) are built again when needed, not kept
/// (docs/capacity.md#what-the-lifecycle-keeps).
#[derive(Debug)]
pub struct DesiredInstance {
    pub spec: InstanceSpec,
    pub digests: Vec<(ObjectKind, Digest)>,
}

impl DesiredInstance {
    fn new(config: &KubernetesConfig, spec: &InstanceSpec) -> Self {
        Self {
            spec: spec.clone(),
            digests: desired_objects(config, spec)
                .into_iter()
                .map(|object| (object.kind, object.digest))
                .collect(),
        }
    }

    /// The objects to apply.
    pub fn objects(&self, config: &KubernetesConfig) -> Vec<DesiredObject> {
        desired_objects(config, &self.spec)
    }

    pub fn digest(&self, kind: ObjectKind) -> Option<Digest> {
        self.digests
            .iter()
            .find(|(wanted, _)| *wanted == kind)
            .map(|(_, digest)| *digest)
    }
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
    /// Instances accepted and waiting to be applied ([`super::applier`]).
    to_apply: Mutex<FairQueue>,
    to_apply_added: tokio::sync::Notify,
    /// Instances a worker is applying now.
    applying: Mutex<HashSet<InstanceId>>,
    /// Why an instance's last background apply failed, and its retry backoff.
    apply_failures: Mutex<HashMap<InstanceId, (String, Option<Backoff>)>>,
    /// The stamp of the shared NetworkPolicy as last seen or applied (see
    /// [`super::manifests::gateway_network_policy`]).
    shared_policy: Mutex<Option<Digest>>,
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
            shared_policy: Mutex::new(None),
            to_apply: Mutex::new(FairQueue::default()),
            to_apply_added: tokio::sync::Notify::new(),
            applying: Mutex::new(HashSet::new()),
            apply_failures: Mutex::new(HashMap::new()),
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
        if let Some(existing) = lock(&self.desired).get(&spec.id)
            && existing.spec == *spec
        {
            return existing.clone();
        }
        // Built outside the lock: every watch event and accept reads it.
        let instance = Arc::new(DesiredInstance::new(&self.config, spec));
        lock(&self.desired).insert(spec.id.clone(), instance.clone());
        instance
    }

    pub fn desired(&self, id: &InstanceId) -> Option<Arc<DesiredInstance>> {
        lock(&self.desired).get(id).cloned()
    }

    /// Queues `id` to be applied in the background and shows it waiting.
    pub fn enqueue(&self, owner: &str, id: &InstanceId) {
        if lock(&self.to_apply).push(owner, id.clone()) {
            self.to_apply_added.notify_one();
        }
        self.refresh(id);
    }

    /// The next instance to apply, once there is one; None when `stop` fires.
    pub async fn next_to_apply(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<(InstanceId, String)> {
        loop {
            let added = self.to_apply_added.notified();
            if stop.is_cancelled() {
                // What is still queued is in the store: the next start applies it.
                return None;
            }
            if let Some(next) = lock(&self.to_apply).pop() {
                lock(&self.applying).insert(next.0.clone());
                // Others may wait too: wake the next worker.
                self.to_apply_added.notify_one();
                return Some(next);
            }
            tokio::select! {
                () = added => {}
                () = stop.cancelled() => return None,
            }
        }
    }

    /// How many instances wait to be applied.
    pub fn waiting_to_apply(&self) -> usize {
        lock(&self.to_apply).len()
    }

    /// `id` was applied: its failure, if any, is over.
    pub fn applied(&self, id: &InstanceId) {
        lock(&self.applying).remove(id);
        lock(&self.apply_failures).remove(id);
        self.refresh(id);
    }

    /// Records why applying `id` failed; returns the delay before the next try, from
    /// the instance's backoff (`next_delay`).
    pub fn apply_failed(
        &self,
        id: &InstanceId,
        error: &crate::runtime::RuntimeError,
        next_delay: impl FnOnce(&mut Option<Backoff>) -> std::time::Duration,
    ) -> std::time::Duration {
        lock(&self.applying).remove(id);
        let delay = {
            let mut failures = lock(&self.apply_failures);
            let entry = failures
                .entry(id.clone())
                .or_insert_with(|| (String::new(), None));
            let delay = next_delay(&mut entry.1);
            entry.0 = format!("{error}; retrying in {}s", delay.as_secs().max(1));
            delay
        };
        self.refresh(id);
        delay
    }

    /// The shared NetworkPolicy was found in the cluster with this stamp.
    pub fn shared_policy_found(&self, digest: Option<Digest>) {
        *lock(&self.shared_policy) = digest;
    }

    /// Whether the shared NetworkPolicy is known to say `digest`.
    pub fn shared_policy_is(&self, digest: Digest) -> bool {
        *lock(&self.shared_policy) == Some(digest)
    }

    /// The desired object of `kind` for `id`, when the runtime knows what `id` should be.
    pub fn desired_object(&self, id: &InstanceId, kind: ObjectKind) -> Option<DesiredObject> {
        let desired = self.desired(id)?;
        desired.digest(kind)?;
        desired
            .objects(&self.config)
            .into_iter()
            .find(|object| object.kind == kind)
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
            && let Some(digest) = desired.digest(kind)
            && self
                .cache
                .get(id)
                .owned
                .get(&kind)
                .is_none_or(|live| live.in_sync_with != Some(digest))
        {
            tracing::info!(instance = %id, kind = kind.kind_name(), "drift detected; re-applying");
            let _ = self.repairs.send((id.clone(), kind));
        }
    }

    /// Re-derives and publishes the observed state of `id`.
    pub fn refresh(&self, id: &InstanceId) {
        let objects = self.cache.get(id);
        let pods: Vec<_> = objects.pods.values().map(|pod| pod.as_ref()).collect();
        let mut observed: Observed = phase::derive(
            objects.deployment.as_deref(),
            &pods,
            now_ms(),
            self.config.ready_grace,
        );
        let waiting = self.waiting_reason(id);
        if let Some(waiting) = &waiting {
            if objects.deployment.is_none() {
                // Accepted, not yet in the cluster.
                observed.phase = Phase::Pending;
                observed.reason = waiting.clone();
            } else {
                observed.reason = format!("{}; {waiting}", observed.reason);
            }
        }
        {
            let mut starting = lock(&self.starting);
            if observed.phase == Phase::Starting {
                starting.insert(id.clone());
            } else {
                starting.remove(id);
            }
        }
        if observed.phase == Phase::Unknown
            && objects.deployment.is_none()
            && pods.is_empty()
            && waiting.is_none()
        {
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

    /// What the applier adds to the observed state of `id`: that it waits for its turn,
    /// or why its last apply failed (docs/capacity.md#accept-then-apply).
    fn waiting_reason(&self, id: &InstanceId) -> Option<String> {
        if let Some(ahead) = lock(&self.to_apply).ahead_of(id) {
            return Some(format!("waiting for the cluster: {ahead} ahead"));
        }
        if lock(&self.applying).contains(id) {
            return Some("waiting for the cluster: being applied".to_owned());
        }
        lock(&self.apply_failures)
            .get(id)
            .map(|(reason, _)| format!("could not apply: {reason}"))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
