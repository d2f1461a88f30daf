//! The Landlock ruleset of a tenant (docs/product/local-confinement.md#landlock):
//!
//! - files: read, write and create only under its own folders; read and execute the
//!   toolchain and the system's folders; a few device files; nothing else (the
//!   platform's data dir, other instances, the platform user's home);
//! - TCP: bind only its own ports, connect to any port but other instances';
//! - scoping: no abstract unix socket (an X server's `@/tmp/.X11-unix/X<n>`) and no
//!   signal outside its own Landlock domain; ptrace outside it is refused by Landlock
//!   itself.
//!
//! The access rights asked for are those of ABI 6; with [`Policy::Required`] a kernel
//! without them makes the tenant's process refuse to start.

use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, RestrictionStatus, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr,
    RulesetError, RulesetStatus, Scope,
};

use super::{Confinement, Policy};

/// The Landlock ABI whose rights a tenant's confinement asks for: filesystem (1–3, 5),
/// TCP bind and connect (4), abstract unix socket and signal scoping (6).
pub const TARGET_ABI: ABI = ABI::V6;

/// System folders a tenant reads and executes from; missing ones are skipped.
pub const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys",
];

/// Device files a tenant reads and writes; `/dev` itself (and `/dev/shm`, shared by
/// every user of the machine) is not granted.
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
];

/// Why a tenant's process was not confined (and so must not run).
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("could not switch to the tenant's uid/gid: {0}")]
    Identity(nix::Error),
    #[error("could not set the tenant's process limits: {0}")]
    Limits(nix::Error),
    #[error("landlock: {0}")]
    Landlock(#[from] RulesetError),
    #[error("{path} (a folder of the tenant) cannot be opened: {source}")]
    MissingFolder {
        path: String,
        source: landlock::PathFdError,
    },
    #[error(
        "the kernel does not enforce the whole confinement ({0}); set \
         CLAWFLEET_LOCAL_CONFINEMENT=best-effort to run with what it enforces"
    )]
    NotEnforced(String),
}

/// What the kernel enforces, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforced {
    /// `fully`, `partially` or `not` enforced.
    pub landlock: &'static str,
    /// The kernel's Landlock support as the crate sees it.
    pub abi: String,
    pub no_new_privs: bool,
    pub uid: u32,
}

/// Builds the ruleset and restricts the calling thread with it (no_new_privs first).
pub fn restrict_self(confinement: &Confinement) -> Result<Enforced, ConfineError> {
    let status = build(confinement)?.restrict_self()?;
    let enforced = describe(&status);
    let complete = status.ruleset == RulesetStatus::FullyEnforced && status.no_new_privs;
    if !complete && confinement.policy == Policy::Required {
        return Err(ConfineError::NotEnforced(format!("{enforced:?}")));
    }
    Ok(enforced)
}

fn compat_level(policy: Policy) -> CompatLevel {
    match policy {
        Policy::Required => CompatLevel::HardRequirement,
        Policy::BestEffort => CompatLevel::BestEffort,
    }
}

fn build(confinement: &Confinement) -> Result<RulesetCreated, ConfineError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(compat_level(confinement.policy))
        .handle_access(AccessFs::from_all(TARGET_ABI))?
        .handle_access(AccessNet::BindTcp)?;
    if !confinement.connect_denied.is_empty() {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp)?;
    }
    let mut created = ruleset
        .scope(Scope::from_all(TARGET_ABI))?
        .create()?
        .no_new_privs(true);

    let read_only = AccessFs::from_read(TARGET_ABI);
    for path in SYSTEM_READ_ONLY.iter().map(Path::new) {
        created = add_path(created, path, read_only, false)?;
    }
    for path in &confinement.read_only {
        created = add_path(created, path, read_only, false)?;
    }
    for path in DEVICES.iter().map(Path::new) {
        created = add_path(created, path, AccessFs::from_file(TARGET_ABI), false)?;
    }
    // /dev/pts is a folder: its terminals are files beneath it.
    created = add_path(
        created,
        Path::new("/dev/pts"),
        AccessFs::from_read(TARGET_ABI) | AccessFs::from_file(TARGET_ABI),
        false,
    )?;
    for path in &confinement.read_write {
        created = add_path(created, path, AccessFs::from_all(TARGET_ABI), true)?;
    }

    created = created.add_rule(NetPort::new(0, AccessNet::BindTcp))?;
    for port in &confinement.bind_ports {
        created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp))?;
    }
    if !confinement.connect_denied.is_empty() {
        for port in connect_allowed(confinement) {
            created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
        }
    }
    Ok(created)
}

/// Landlock only allows (rules are grants): every port outside the denied ranges.
pub(crate) fn connect_allowed(confinement: &Confinement) -> impl Iterator<Item = u16> + '_ {
    (0..=u16::MAX).filter(|port| {
        !confinement
            .connect_denied
            .iter()
            .any(|range| range.contains(port))
    })
}

/// Grants `access` beneath `path`; a missing path is skipped unless `required`.
fn add_path(
    created: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
    required: bool,
) -> Result<RulesetCreated, ConfineError> {
    match PathFd::new(path) {
        // A file gets only the rights that apply to files.
        Ok(fd) => {
            let access = if path.is_dir() {
                access
            } else {
                access & AccessFs::from_file(TARGET_ABI)
            };
            Ok(created.add_rule(PathBeneath::new(fd, access))?)
        }
        Err(source) if required => Err(ConfineError::MissingFolder {
            path: path.display().to_string(),
            source,
        }),
        Err(_) => Ok(created),
    }
}

fn describe(status: &RestrictionStatus) -> Enforced {
    Enforced {
        landlock: match status.ruleset {
            RulesetStatus::FullyEnforced => "fully",
            RulesetStatus::PartiallyEnforced => "partially",
            RulesetStatus::NotEnforced => "not",
        },
        abi: format!("{:?}", status.landlock),
        no_new_privs: status.no_new_privs,
        uid: nix::unistd::Uid::effective().as_raw(),
    }
}
