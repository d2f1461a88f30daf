//! Choosing the one lifecycle replica that writes to the cluster: a
//! `coordination.k8s.io/v1` Lease in the instances' namespace, taken and renewed with
//! resourceVersion preconditions, so of two replicas racing for it exactly one wins.
//! See docs/product/runtimes.md#leader.
//!
//! Expiry is judged on this replica's own clock: another holder's Lease counts as
//! expired once it has not changed for its duration since this replica first saw that
//! version, so clock skew between nodes cannot hand the Lease over early. A leader that
//! cannot renew within [`LeaseTiming::renew_deadline`] (shorter than the duration)
//! stops leading before anyone else may take over. A graceful stop releases the Lease
//! at once.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::api::{Api, PostParams};
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use super::rbac::{self, Verb};

/// The Lease's name in the instances' namespace.
pub const LEASE_NAME: &str = "clawfleet-lifecycle-leader";

/// How the Lease is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a Lease nobody renews stays with its holder.
    pub duration: Duration,
    /// A leader that has not renewed for this long stops leading (less than `duration`).
    pub renew_deadline: Duration,
    /// How often the holder renews and the others look.
    pub retry: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry: Duration::from_secs(2),
        }
    }
}

/// Takes part in the election under one identity.
pub struct LeaseElector {
    api: Api<Lease>,
    identity: String,
    timing: LeaseTiming,
    /// The other holder's Lease version this replica last saw, and when it first did.
    observed: Option<(String, Instant)>,
}

impl LeaseElector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        identity: String,
        timing: LeaseTiming,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            identity,
            timing,
            observed: None,
        }
    }

    /// Makes one attempt at once (so a sole replica leads as soon as it starts), then
    /// keeps renewing or watching for expiry until `stop`, when the Lease is released.
    /// The receiver says whether this replica leads.
    pub async fn start(
        mut self,
        stop: CancellationToken,
    ) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let first = self.attempt().await.unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot reach the leader Lease yet; following");
            false
        });
        let (leading, receiver) = watch::channel(first);
        announce(&self.identity, first);
        let task = tokio::spawn(async move { self.run(leading, stop).await });
        (receiver, task)
    }

    async fn run(mut self, leading: watch::Sender<bool>, stop: CancellationToken) {
        let mut last_renewed = (*leading.borrow()).then(Instant::now);
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.timing.retry) => {}
                () = stop.cancelled() => break,
            }
            let now_leading = match self.attempt().await {
                Ok(true) => {
                    last_renewed = Some(Instant::now());
                    true
                }
                Ok(false) => false,
                Err(error) => {
                    // Keep leading only while the last renewal is recent enough that
                    // nobody else can have taken over.
                    let still =
                        last_renewed.is_some_and(|at| at.elapsed() < self.timing.renew_deadline);
                    tracing::warn!(%error, leading = still, "cannot renew or read the leader Lease");
                    still
                }
            };
            if !now_leading {
                last_renewed = None;
            }
            leading.send_if_modified(|was| {
                let changed = *was != now_leading;
                if changed {
                    announce(&self.identity, now_leading);
                }
                *was = now_leading;
                changed
            });
        }
        if *leading.borrow() {
            leading.send_replace(false);
            match self.release().await {
                Ok(()) => tracing::info!(identity = %self.identity, "released the leader Lease"),
                Err(error) => {
                    tracing::warn!(%error, "could not release the leader Lease; it expires by itself")
                }
            }
        }
    }

    /// Takes, renews or leaves the Lease; returns whether this replica holds it now.
    async fn attempt(&mut self) -> Result<bool, kube::Error> {
        debug_assert!(rbac::allows(LEASE_GROUP, LEASE_PLURAL, Verb::Get));
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            return self.create().await;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let now = MicroTime(Timestamp::now());
        if holder == self.identity {
            spec.renew_time = Some(now);
            spec.lease_duration_seconds = Some(seconds(self.timing.duration));
            return self.replace(&lease).await;
        }
        if !holder.is_empty() && !self.expired(&lease) {
            return Ok(false);
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.identity.clone());
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(seconds(self.timing.duration));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        let taken = self.replace(&lease).await?;
        if taken {
            tracing::info!(previous = %holder, identity = %self.identity, "took over the leader Lease");
        }
        Ok(taken)
    }

    /// Whether another holder's `lease` has gone unrenewed for its duration, as seen
    /// from here.
    fn expired(&mut self, lease: &Lease) -> bool {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let duration = lease
            .spec
            .as_ref()
            .and_then(|spec| spec.lease_duration_seconds)
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(self.timing.duration, Duration::from_secs);
        match &self.observed {
            Some((seen, since)) if *seen == version => since.elapsed() >= duration,
            _ => {
                self.observed = Some((version, Instant::now()));
                false
            }
        }
    }

    async fn create(&self) -> Result<bool, kube::Error> {
        debug_assert!(rbac::allows(LEASE_GROUP, LEASE_PLURAL, Verb::Create));
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_duration_seconds: Some(seconds(self.timing.duration)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            // Another replica created it first.
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Writes `lease` if nobody changed it since it was read (its resourceVersion is
    /// the precondition); false when somebody did.
    async fn replace(&self, lease: &Lease) -> Result<bool, kube::Error> {
        debug_assert!(rbac::allows(LEASE_GROUP, LEASE_PLURAL, Verb::Update));
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Hands the Lease back: no holder, so the next replica to look takes it.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.replace(&lease).await.map(|_| ())
    }
}

/// The Lease's API group and resource, as the RBAC table names them.
pub const LEASE_GROUP: &str = "coordination.k8s.io";
pub const LEASE_PLURAL: &str = "leases";

/// This replica's name in the election: its host name (the pod's name on Kubernetes),
/// its process id (which tells processes on one host apart) and a random suffix, so a
/// restarted pod never mistakes its predecessor's Lease for its own.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "lifecycle".to_owned()
    } else {
        host
    };
    format!(
        "{host}-{}-{}",
        std::process::id(),
        clawfleet_kit::secret::random_token(6)
    )
}

fn announce(identity: &str, leading: bool) {
    if leading {
        tracing::info!(%identity, "leading: this replica applies, repairs and deletes");
    } else {
        tracing::info!(%identity, "following: another replica leads");
    }
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}
