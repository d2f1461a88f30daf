//! A separate uid and gid per tenant, so the kernel's ordinary permissions (DAC) keep
//! tenants apart as well as Landlock does: another tenant's folders (0700) and the
//! platform's files (0600, owned by root) are closed to it whatever Landlock enforces.

use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantIdentity {
    pub uid: u32,
    pub gid: u32,
}

impl TenantIdentity {
    /// Switches the calling process to the tenant's uid and gid for good, with no
    /// supplementary groups. A no-op when it already runs as that identity.
    pub fn become_tenant(self) -> nix::Result<()> {
        if Uid::current().as_raw() == self.uid
            && Uid::effective().as_raw() == self.uid
            && Gid::current().as_raw() == self.gid
        {
            return Ok(());
        }
        // The groups first, while the process may still change them.
        setgroups(&[])?;
        setgid(Gid::from_raw(self.gid))?;
        setuid(Uid::from_raw(self.uid))?;
        // setuid from root sets the real, effective and saved ids: no way back.
        if setuid(Uid::from_raw(0)).is_ok() && self.uid != 0 {
            return Err(nix::errno::Errno::EPERM);
        }
        Ok(())
    }
}

/// Whether this process can give its children another identity.
pub fn can_switch_identity() -> bool {
    Uid::effective().is_root()
}
