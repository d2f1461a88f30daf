//! The lifecycle domain: what an instance should be (its record and spec) and what
//! it is (its observed phase).

use std::collections::BTreeMap;

use clawfleet_contracts::common::v1 as common;

use crate::instance_id::InstanceId;

pub use clawfleet_kit::plan::Plan;

/// What the platform converges an instance towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
        }
    }

    pub fn from_name(name: &str) -> Option<DesiredState> {
        match name {
            "running" => Some(DesiredState::Running),
            "stopped" => Some(DesiredState::Stopped),
            _ => None,
        }
    }

    pub fn to_proto(self) -> common::DesiredState {
        match self {
            DesiredState::Running => common::DesiredState::Running,
            DesiredState::Stopped => common::DesiredState::Stopped,
        }
    }
}

/// Summary state shown to people; see docs/product/instances.md#phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Starting,
    Running,
    Error,
    Stopped,
    Unknown,
    /// A delete was accepted and the runtime is tearing the instance down.
    Deleting,
}

impl Phase {
    pub fn to_proto(self) -> common::Phase {
        match self {
            Phase::Pending => common::Phase::Pending,
            Phase::Starting => common::Phase::Starting,
            Phase::Running => common::Phase::Running,
            Phase::Error => common::Phase::Error,
            Phase::Stopped => common::Phase::Stopped,
            Phase::Unknown => common::Phase::Unknown,
            Phase::Deleting => common::Phase::Deleting,
        }
    }
}

/// Provider secrets passed to the gateway as environment variables.
pub type Secrets = BTreeMap<String, String>;

/// The stored desired state of one instance.
#[derive(Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub owner: String,
    pub plan: Plan,
    pub desired_state: DesiredState,
    pub model: String,
    pub gateway_token: String,
    pub secrets: Secrets,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Set once a delete is accepted: the record stays until the runtime's teardown is
    /// done, so a crash, a retry or the reconciler finishes the delete instead of undoing it.
    pub deleting: Option<Deletion>,
    /// Counts the stored row's changes; a replica keeps the copy with the higher one, so
    /// a late change notification never brings back older state.
    pub generation: i64,
    /// The [`crate::revision`] of the record's last change in this process (not stored).
    pub revision: u64,
}

/// An accepted delete that the runtime has not finished yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    pub since_ms: i64,
    /// Whether the instance's data outlives it (see the runtimes' data retention).
    pub preserve_data: bool,
}

impl std::fmt::Debug for InstanceRecord {
    // Tokens and secret values never reach logs.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("InstanceRecord")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("plan", &self.plan)
            .field("desired_state", &self.desired_state)
            .field("model", &self.model)
            .field("deleting", &self.deleting)
            .field("generation", &self.generation)
            .field("secret_names", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl InstanceRecord {
    /// What the runtime needs to realise this record.
    pub fn spec(&self) -> InstanceSpec {
        InstanceSpec {
            id: self.id.clone(),
            plan: self.plan,
            desired_state: self.desired_state,
            model: self.model.clone(),
            gateway_token: self.gateway_token.clone(),
            secrets: self.secrets.clone(),
        }
    }
}

/// What a runtime is asked to make true for one instance.
#[derive(Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub id: InstanceId,
    pub plan: Plan,
    pub desired_state: DesiredState,
    pub model: String,
    pub gateway_token: String,
    pub secrets: Secrets,
}

impl std::fmt::Debug for InstanceSpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("InstanceSpec")
            .field("id", &self.id)
            .field("plan", &self.plan)
            .field("desired_state", &self.desired_state)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// A protobuf timestamp for milliseconds since the epoch.
pub fn timestamp_from_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}
