//! The seam between the lifecycle service and what actually runs gateways.
//!
//! Everything the service needs from a backend goes through [`Runtime`]: apply a spec
//! (create, start, stop), delete with or without data, observe and watch, resolve
//! the gateway endpoint, and exec inside the instance. The `local` runtime runs real
//! `openclaw gateway run` processes; the `kubernetes` runtime runs them as Deployments.

pub mod kubernetes;
pub mod local;
pub mod status_board;
pub mod traced;

use std::{sync::Arc, time::Duration};

use clawfleet_contracts::lifecycle::v1::Pod;
use tokio::sync::broadcast;

use crate::{
    instance_id::InstanceId,
    model::{InstanceSpec, Phase},
};

/// Whether deleting an instance keeps its data (state dir or PVC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRetention {
    Keep,
    Purge,
}

/// What a runtime observes of one instance right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub phase: Phase,
    /// A human reason for the phase.
    pub reason: String,
    pub ready: bool,
    pub pods: Vec<Pod>,
    /// Increases with every change the runtime observes (process-wide order).
    pub revision: u64,
}

impl Observed {
    /// Nothing is known of the instance.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            phase: Phase::Unknown,
            reason: reason.into(),
            ready: false,
            pods: Vec::new(),
            revision: 0,
        }
    }
}

/// Where and how to reach an instance's gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayEndpoint {
    pub gateway_url: String,
    pub gateway_token: String,
    /// Empty when the instance has no NoVNC endpoint.
    pub vnc_url: String,
    /// True when connections reach the gateway from loopback (no device pairing).
    pub loopback: bool,
}

impl std::fmt::Debug for GatewayEndpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GatewayEndpoint")
            .field("gateway_url", &self.gateway_url)
            .field("vnc_url", &self.vnc_url)
            .field("loopback", &self.loopback)
            .finish_non_exhaustive()
    }
}

impl GatewayEndpoint {
    /// A short digest that changes whenever the gateway URL or token changes (what a
    /// gateway connection depends on), without revealing the token.
    pub fn revision(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for part in [&self.gateway_url, &self.gateway_token] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let digest = hasher.finalize();
        digest[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// A command to run inside an instance.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    /// Output beyond this many bytes per stream is dropped and `truncated` set.
    pub output_limit_bytes: usize,
}

/// What a command run inside an instance produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
    pub timed_out: bool,
}

/// Runtime failures.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("instance {0} is not known to the runtime")]
    NotFound(InstanceId),
    #[error("instance {id} is not running: {reason}")]
    NotRunning { id: InstanceId, reason: String },
    #[error("invalid exec request: {0}")]
    InvalidExec(String),
    #[error("runtime i/o failed: {0}")]
    Io(#[from] std::io::Error),
    /// The backend cannot serve the request now (an outage, overload, a broken connection,
    /// a write that lost a race); the same request may succeed later. The message is safe
    /// to show: it names what failed, never object contents.
    #[error("{0}")]
    Unavailable(String),
    /// The backend refuses what the platform needs (a permission its Role lacks, a missing
    /// namespace, a setting it rejects): the operator must fix the deployment, and
    /// retrying does not help. The message names what to fix and holds no secret.
    #[error("{0}")]
    Misconfigured(String),
    #[error("runtime is shutting down")]
    ShuttingDown,
}

/// A backend that runs gateway instances.
#[tonic::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The runtime's name as configured (`local`, `kubernetes`).
    fn name(&self) -> &'static str;

    /// Makes the instance match `spec`: creates what is missing, starts or stops it.
    /// Idempotent: applying an unchanged spec changes nothing.
    async fn apply(&self, spec: &InstanceSpec) -> Result<(), RuntimeError>;

    /// Accepts `spec` for `owner` and makes the instance match it, now or in the
    /// background: a runtime whose writes queue behind a shared control plane (Kubernetes)
    /// returns once the desired state is recorded and shows the instance pending until
    /// it is applied (docs/capacity.md#accept-then-apply); by default it applies at once.
    async fn submit(&self, spec: &InstanceSpec, owner: &str) -> Result<(), RuntimeError> {
        let _ = owner;
        self.apply(spec).await
    }

    /// Whether [`Self::submit`] returns before the instance is applied: callers then
    /// answer once the desired state is durable instead of waiting on the runtime
    /// (DeleteInstance does not wait for the teardown either).
    fn applies_in_background(&self) -> bool {
        false
    }

    /// Removes the instance's workloads, and its data unless `retention` keeps it.
    /// Removing an instance the runtime does not know still purges leftover data.
    async fn delete(&self, id: &InstanceId, retention: DataRetention) -> Result<(), RuntimeError>;

    /// The instance's observed state; [`Phase::Unknown`] when nothing runs.
    fn observe(&self, id: &InstanceId) -> Observed;

    /// Ids of instances whose observed state changed, as they change.
    fn subscribe(&self) -> broadcast::Receiver<InstanceId>;

    /// Where the bridge reaches the instance's gateway. `gateway_token` is the record's:
    /// a runtime that keeps no copy of it (the Kubernetes cache holds only a digest of
    /// what its Secret says) hands it out once the instance holds it.
    async fn gateway_endpoint(
        &self,
        id: &InstanceId,
        gateway_token: &str,
    ) -> Result<GatewayEndpoint, RuntimeError>;

    /// Runs a command inside the instance (same state, same environment).
    async fn exec(&self, id: &InstanceId, request: ExecRequest)
    -> Result<ExecOutput, RuntimeError>;

    /// Instances the runtime holds workloads for (not just kept data), whether or not
    /// the store knows them: after a crash in the middle of a create or delete, the
    /// reconciler removes those the store does not know.
    fn known_instances(&self) -> Vec<InstanceId>;

    /// The directory holding the instance's gateway state, read and replaced by backups
    /// and restores while the instance is stopped (docs/product/backups.md#runtimes).
    fn state_dir(&self, _id: &InstanceId) -> Result<std::path::PathBuf, RuntimeError> {
        Err(RuntimeError::Misconfigured(format!(
            "backups are not supported on the {} runtime yet",
            self.name()
        )))
    }

    /// The gateway (openclaw) version this runtime runs, recorded in backups;
    /// `unknown` when it cannot tell.
    fn gateway_version(&self) -> String {
        "unknown".to_owned()
    }

    /// Whether this replica is the one that writes on its own initiative (drift repair).
    /// Only the Kubernetes runtime runs replicated; a runtime leads unless told not to.
    fn set_leading(&self, _leading: bool) {}

    /// Stops supervising; local gateways are terminated (their desired state is kept,
    /// so they come back when the platform starts again).
    async fn shutdown(&self);
}

/// A shared runtime.
pub type SharedRuntime = Arc<dyn Runtime>;
