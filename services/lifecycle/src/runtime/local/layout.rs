//! Where an instance's files live under the data dir.

use std::path::{Path, PathBuf};

use crate::instance_id::InstanceId;

/// Paths of one local instance: `<data>/instances/<id>/{state,home,tmp,gateway.pid,gateway.log,
/// display.log,base-config.json,termination.log}`.
#[derive(Debug, Clone)]
pub struct InstanceLayout {
    pub root: PathBuf,
}

impl InstanceLayout {
    pub fn new(data_dir: &Path, id: &InstanceId) -> Self {
        Self {
            root: data_dir.join("instances").join(id.as_str()),
        }
    }

    /// The gateway's `OPENCLAW_STATE_DIR` (the PVC on Kubernetes).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// `HOME` of the gateway, so nothing it writes lands in the platform user's home.
    pub fn home_dir(&self) -> PathBuf {
        self.root.join("home")
    }

    /// `TMPDIR` of the gateway and of commands run inside the instance.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The pid of the instance's runner (`clawfleet instance run`), to find it again
    /// after a platform crash.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("gateway.pid")
    }

    /// The runner's and the gateway's stdout and stderr.
    pub fn log_file(&self) -> PathBuf {
        self.root.join("gateway.log")
    }

    /// The virtual display processes' stdout and stderr.
    pub fn display_log_file(&self) -> PathBuf {
        self.root.join("display.log")
    }

    /// The platform's keys for the gateway's config (`CLAWFLEET_BASE_CONFIG`), the
    /// counterpart of a pod's ConfigMap.
    pub fn base_config_file(&self) -> PathBuf {
        self.root.join("base-config.json")
    }

    /// Where `clawfleet instance run` says why it could not run the gateway, the
    /// counterpart of a container's termination log.
    pub fn termination_log(&self) -> PathBuf {
        self.root.join("termination.log")
    }
}
