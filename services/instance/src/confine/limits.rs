//! Process limits of a tenant (docs/product/local-confinement.md#process-limits): no core
//! dumps, since a gateway's memory holds its token and the user's provider keys; a cap on
//! open files; and, when the tenant runs as a uid of its own, a cap on its processes and
//! threads, so a fork bomb in the agent's shell stops at that tenant instead of taking
//! the machine. With the platform's shared uid a process cap would count the platform's
//! own processes too, so it is left off there.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::{Deserialize, Serialize};

/// The limits every process of a tenant runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLimits {
    /// Processes and threads of the tenant's uid together (the kernel counts both):
    /// room for the gateway, its plugins, a browser and the agent's commands.
    pub max_processes: u64,
    /// Open files per process (lowered to the hard limit the platform itself has).
    pub max_open_files: u64,
}

impl Default for ProcessLimits {
    fn default() -> Self {
        Self {
            max_processes: 1024,
            max_open_files: 8192,
        }
    }
}

impl ProcessLimits {
    /// Sets the limits on the calling process, for it and everything it starts; call it
    /// before the switch to the tenant's uid (raising a hard limit needs root).
    pub fn apply(&self, own_uid: bool) -> nix::Result<()> {
        setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
        let (_, hard_files) = getrlimit(Resource::RLIMIT_NOFILE)?;
        let files = self.max_open_files.min(hard_files);
        setrlimit(Resource::RLIMIT_NOFILE, files, files)?;
        if own_uid {
            setrlimit(
                Resource::RLIMIT_NPROC,
                self.max_processes,
                self.max_processes,
            )?;
        }
        Ok(())
    }
}
