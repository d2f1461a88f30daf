//! Confining a local tenant (docs/product/local-confinement.md): what a gateway, and every
//! command run inside its instance, may touch on a machine shared with other tenants and
//! with the platform's own data.
//!
//! The local runtime describes the confinement once ([`Confinement`]) and hands it, as
//! JSON, to `clawfleet instance run` (which drops to the tenant's identity and starts the
//! gateway through `clawfleet instance confine`) and to `clawfleet instance confine` for
//! each in-instance command. Pods are not confined this way: the pod is their boundary.
//!
//! - [`identity`]: a separate uid/gid per tenant when the platform runs as root;
//! - [`landlock_rules`]: the Landlock ruleset (files, TCP bind and connect, scoping),
//!   with no_new_privs;
//! - [`limits`]: no core dumps, capped open files and (with a uid of its own) processes.

pub mod identity;
pub mod landlock_rules;
pub mod limits;
#[cfg(test)]
mod tests;

use std::{ops::RangeInclusive, path::PathBuf};

use serde::{Deserialize, Serialize};

pub use self::{
    identity::TenantIdentity,
    landlock_rules::{ConfineError, Enforced},
    limits::ProcessLimits,
};

/// The variable through which the local runtime hands a [`Confinement`] (JSON) to
/// `clawfleet instance run`.
pub const CONFINEMENT_ENV: &str = "CLAWFLEET_CONFINEMENT";

/// What to do when the kernel cannot enforce every part of the confinement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Refuse to run the tenant's process (the default): Landlock with filesystem rules,
    /// TCP bind and connect rules (ABI 4) and abstract-socket and signal scoping (ABI 6)
    /// must all be enforced.
    #[default]
    Required,
    /// Enforce what the kernel supports, and say in the log what is not enforced.
    BestEffort,
}

/// The confinement of one local instance's processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    pub policy: Policy,
    /// Folders the tenant may read, write, create in and execute from: its state dir,
    /// home and tmp.
    pub read_write: Vec<PathBuf>,
    /// Folders and files the tenant may read and execute: the toolchain, beside
    /// [`landlock_rules::SYSTEM_READ_ONLY`].
    pub read_only: Vec<PathBuf>,
    /// TCP ports the tenant may bind (its own port slot); port 0 (an ephemeral port) is
    /// always allowed.
    pub bind_ports: Vec<u16>,
    /// TCP ports the tenant may not connect to (other instances' gateways, relays and
    /// NoVNC endpoints); every other port is allowed.
    pub connect_denied: Vec<RangeInclusive<u16>>,
    /// The uid/gid the tenant runs as; `None` keeps the platform's own (an unprivileged
    /// platform cannot switch).
    pub identity: Option<TenantIdentity>,
    #[serde(default)]
    pub limits: ProcessLimits,
}

impl Confinement {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Confines the calling thread (and so everything it executes afterwards): the
    /// process limits, the tenant's identity, then no_new_privs and the Landlock ruleset. Call it from a
    /// single-threaded process right before `exec` (Landlock restricts the calling thread
    /// only; `clawfleet instance confine` calls it before its async runtime starts).
    pub fn apply(&self) -> Result<Enforced, ConfineError> {
        self.limits
            .apply(self.identity.is_some())
            .map_err(ConfineError::Limits)?;
        if let Some(identity) = self.identity {
            identity.become_tenant().map_err(ConfineError::Identity)?;
        }
        landlock_rules::restrict_self(self)
    }
}
