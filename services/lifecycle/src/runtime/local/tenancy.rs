//! Each local instance as a tenant of its own (docs/product/local-confinement.md): its
//! uid and gid when the platform runs as root, its folders and their owners and modes,
//! and the [`Confinement`] its gateway and every in-instance command run under.
//!
//! Layout and ownership with separate uids: the data dir and `instances/` are 0711
//! (enter, not list), the instance's folder is `root:<tenant gid>` 0710 (the tenant can
//! enter but not add, rename or replace anything: the platform's files there stay the
//! platform's), and `state/`, `home/`, `tmp/` are the tenant's own, 0700. Without
//! separate uids every folder is 0700 and Landlock alone keeps tenants apart.

use std::{
    fs::{self, Permissions},
    io,
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt, chown},
    path::{Path, PathBuf},
};

use clawfleet_instance::confine::{Confinement, Policy, ProcessLimits, TenantIdentity, identity};
use clawfleet_kit::private_file::create_private_dir;

use super::{
    layout::InstanceLayout,
    ports::{PORT_STRIDE, PortAllocator},
    process::OpenclawCommand,
};

/// Default first uid (and gid) handed to a tenant: far above the system's and the
/// users' ids and the usual subordinate id ranges.
pub const DEFAULT_TENANT_UID_BASE: u32 = 1_500_000_000;
/// How many tenant uids the allocator may hand out.
const TENANT_UID_COUNT: u32 = 1_000_000;

/// How the local runtime confines its tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalConfinement {
    /// `None`: not confined (only for trusted single-user setups).
    pub policy: Option<Policy>,
    /// First tenant uid when the platform runs as root.
    pub tenant_uid_base: u32,
}

impl Default for LocalConfinement {
    fn default() -> Self {
        Self {
            policy: Some(Policy::Required),
            tenant_uid_base: DEFAULT_TENANT_UID_BASE,
        }
    }
}

impl LocalConfinement {
    /// Tenants get uids of their own only when the platform can give them.
    pub fn separate_uids(&self) -> bool {
        self.policy.is_some() && identity::can_switch_identity()
    }
}

/// Makes the data dir and `instances/` enterable by tenants only as far as they must.
pub fn prepare_data_dir(data_dir: &Path, confinement: &LocalConfinement) -> io::Result<()> {
    let instances = data_dir.join("instances");
    create_private_dir(&instances)?;
    if confinement.separate_uids() {
        check_ancestors_passable(data_dir)?;
        // Tenants pass through to their own folder; they cannot list either.
        fs::set_permissions(data_dir, Permissions::from_mode(0o711))?;
        fs::set_permissions(&instances, Permissions::from_mode(0o711))?;
    }
    Ok(())
}

/// Tenants run as users of their own and reach their folders by path, so every folder
/// above the data dir must let other users pass (execute for others). One that does not
/// (a home folder, a `mktemp -d`) would fail every instance later with "permission
/// denied"; the runtime refuses to start instead, naming it and the ways out.
fn check_ancestors_passable(data_dir: &Path) -> io::Result<()> {
    let absolute = fs::canonicalize(data_dir)?;
    for ancestor in absolute.ancestors().skip(1) {
        let mode = fs::metadata(ancestor)?.mode();
        if mode & 0o001 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} (above the data dir) does not let other users pass (mode {:o}), and \
                     tenants run as users of their own: allow passing (chmod o+x {}), choose \
                     a CLAWFLEET_DATA_DIR elsewhere, or set CLAWFLEET_LOCAL_CONFINEMENT=off",
                    ancestor.display(),
                    mode & 0o7777,
                    ancestor.display(),
                ),
            ));
        }
    }
    Ok(())
}

/// Creates the instance's folders with their owners and modes and returns the tenant's
/// identity: the owner of its `state/` folder when it has one (a uid once given stays
/// with the instance, across platform restarts), else the lowest free uid from the base.
/// Call it under the runtime's lock, so two new instances never get the same uid.
pub fn prepare_instance(
    data_dir: &Path,
    layout: &InstanceLayout,
    confinement: &LocalConfinement,
) -> io::Result<Option<TenantIdentity>> {
    create_private_dir(&layout.root)?;
    if !confinement.separate_uids() {
        for dir in [layout.state_dir(), layout.home_dir(), layout.tmp_dir()] {
            create_private_dir(&dir)?;
        }
        return Ok(None);
    }
    let uid = match owner_at_or_above(&layout.state_dir(), confinement.tenant_uid_base) {
        Some(uid) => uid,
        None => free_uid(data_dir, confinement.tenant_uid_base)?,
    };
    let identity = TenantIdentity { uid, gid: uid };
    chown(&layout.root, Some(0), Some(identity.gid))?;
    fs::set_permissions(&layout.root, Permissions::from_mode(0o710))?;
    for dir in [layout.state_dir(), layout.home_dir(), layout.tmp_dir()] {
        create_private_dir(&dir)?;
        chown(&dir, Some(identity.uid), Some(identity.gid))?;
    }
    Ok(Some(identity))
}

/// The folder openclaw keeps its state locks in: `/tmp/openclaw-state-locks-<uid>`,
/// whatever `TMPDIR` says. It is created for the tenant (a folder of another owner, or
/// a link, there is refused) and granted to it; without separate uids every tenant
/// shares the platform's.
pub fn openclaw_lock_dir(identity: Option<TenantIdentity>) -> PathBuf {
    let uid = identity.map_or_else(|| nix::unistd::Uid::effective().as_raw(), |id| id.uid);
    PathBuf::from(format!("/tmp/openclaw-state-locks-{uid}"))
}

/// Creates [`openclaw_lock_dir`] for the tenant, or checks the one there is theirs.
pub fn prepare_openclaw_lock_dir(identity: Option<TenantIdentity>) -> io::Result<()> {
    let dir = openclaw_lock_dir(identity);
    let owner = identity.map_or_else(|| nix::unistd::Uid::effective().as_raw(), |id| id.uid);
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {
            if let Some(identity) = identity {
                chown(&dir, Some(identity.uid), Some(identity.gid))?;
            }
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let metadata = fs::symlink_metadata(&dir)?;
    if !metadata.is_dir() || metadata.uid() != owner {
        return Err(io::Error::other(format!(
            "{} is not a folder of uid {owner}",
            dir.display()
        )));
    }
    Ok(())
}

/// Files of the platform's in the instance folder that the tenant's runner writes (it
/// cannot create files there): created empty, 0600, owned by the tenant.
pub fn hand_over_files(
    layout: &InstanceLayout,
    identity: Option<TenantIdentity>,
) -> io::Result<()> {
    let Some(identity) = identity else {
        return Ok(());
    };
    for file in [
        layout.termination_log(),
        layout.display_log_file(),
        layout.base_config_file(),
    ] {
        if !file.exists() {
            clawfleet_kit::private_file::write_private(&file, b"")?;
        }
        chown(&file, Some(identity.uid), Some(identity.gid))?;
        fs::set_permissions(&file, Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Runs `work` on a thread of its own whose file accesses are the tenant's (Linux's
/// per-thread filesystem uid and gid, which also drop root's file capabilities), so the
/// platform never follows a link the tenant planted in its own folders as root.
pub fn as_tenant<T: Send + 'static>(
    identity: Option<TenantIdentity>,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let Some(identity) = identity else {
        return work();
    };
    std::thread::spawn(move || {
        nix::unistd::setfsgid(nix::unistd::Gid::from_raw(identity.gid));
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(identity.uid));
        if nix::unistd::setfsuid(nix::unistd::Uid::from_raw(identity.uid)).as_raw() != identity.uid
        {
            return Err(io::Error::other(
                "could not take the tenant's file identity",
            ));
        }
        work()
    })
    .join()
    .map_err(|_| io::Error::other("the tenant's file work panicked"))?
}

/// The confinement of the instance's processes; `port` is its gateway's port when it
/// has one (an in-instance command may bind nothing else than an ephemeral port then).
pub fn confinement_for(
    policy: Policy,
    layout: &InstanceLayout,
    openclaw: &OpenclawCommand,
    ports: &PortAllocator,
    port: Option<u16>,
    identity: Option<TenantIdentity>,
) -> Confinement {
    let first = ports.base();
    // Gateway slots live from the base up to the kernel's ephemeral ports; above them a
    // tenant may connect anywhere (a provider on a high port, a loopback stand-in).
    let slots_end = ephemeral_ports_start().saturating_sub(1).max(first);
    let connect_denied = match port {
        Some(port) => {
            let slot_end = port.saturating_add(PORT_STRIDE - 1);
            let mut ranges = Vec::new();
            if port > first {
                ranges.push(first..=port - 1);
            }
            if slot_end < slots_end {
                ranges.push(slot_end + 1..=slots_end);
            }
            ranges
        }
        None => vec![first..=slots_end],
    };
    Confinement {
        policy,
        read_write: vec![
            layout.state_dir(),
            layout.home_dir(),
            layout.tmp_dir(),
            openclaw_lock_dir(identity),
        ],
        read_only: toolchain_dirs(openclaw),
        bind_ports: port
            .map(|port| (port..port.saturating_add(PORT_STRIDE)).collect())
            .unwrap_or_default(),
        connect_denied,
        identity,
        limits: ProcessLimits::default(),
    }
}

/// Where the kernel's ephemeral ports begin (outgoing connections and `bind(0)`
/// listeners take their ports from there), 32768 when it cannot be read.
fn ephemeral_ports_start() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// The folders the toolchain lives in: for each of its paths, the folder holding its
/// `node_modules` (the package and everything it requires), else the path's folder.
fn toolchain_dirs(openclaw: &OpenclawCommand) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let paths = std::iter::once(&openclaw.program)
        .chain(&openclaw.path_prefix)
        .chain(&openclaw.plugin_paths);
    for path in paths {
        let Ok(path) = fs::canonicalize(path) else {
            continue;
        };
        // The outermost node_modules: the install's own root, not a nested package's.
        let root = path
            .ancestors()
            .filter(|ancestor| ancestor.file_name() == Some("node_modules".as_ref()))
            .last()
            .and_then(Path::parent)
            .or_else(|| path.parent())
            .map(Path::to_path_buf);
        if let Some(root) = root
            && !dirs.contains(&root)
        {
            dirs.push(root);
        }
    }
    dirs
}

fn owner_at_or_above(path: &Path, base: u32) -> Option<u32> {
    fs::symlink_metadata(path)
        .ok()
        .map(|metadata| metadata.uid())
        .filter(|uid| *uid >= base)
}

fn free_uid(data_dir: &Path, base: u32) -> io::Result<u32> {
    let mut taken = std::collections::BTreeSet::new();
    for entry in fs::read_dir(data_dir.join("instances"))?.flatten() {
        if let Some(uid) = owner_at_or_above(&entry.path().join("state"), base) {
            taken.insert(uid);
        }
    }
    (base..base.saturating_add(TENANT_UID_COUNT))
        .find(|uid| !taken.contains(uid))
        .ok_or_else(|| io::Error::other("no tenant uid left"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_above_the_data_dir_that_others_cannot_pass_is_named() {
        let outer = tempfile::tempdir().unwrap();
        let closed = outer.path().join("closed");
        let data_dir = closed.join("data");
        fs::create_dir_all(&data_dir).unwrap();
        fs::set_permissions(&closed, Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(outer.path(), Permissions::from_mode(0o711)).unwrap();
        let error = check_ancestors_passable(&data_dir).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            error.to_string().contains(&closed.display().to_string()),
            "{error}"
        );
        fs::set_permissions(&closed, Permissions::from_mode(0o711)).unwrap();
        check_ancestors_passable(&data_dir).unwrap();
    }
}
