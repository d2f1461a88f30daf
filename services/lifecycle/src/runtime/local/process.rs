//! Starting and stopping gateway processes.
//!
//! Each gateway runs in its own process group so that stopping it reaches every
//! worker it spawned. Its environment is built from scratch: platform credentials
//! in the platform's own environment never leak into a user's gateway.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::process::{Child, Command};

use super::layout::InstanceLayout;
use crate::model::InstanceSpec;

/// How to run the `openclaw` CLI.
#[derive(Debug, Clone)]
pub struct OpenclawCommand {
    /// The `openclaw` executable.
    pub program: PathBuf,
    /// Directories put first on `PATH` (the installed Node, so `#!/usr/bin/env node` finds it).
    pub path_prefix: Vec<PathBuf>,
    /// Plugin package directories installed once with this openclaw (the WhatsApp channel)
    /// that every gateway loads through `plugins.load.paths` in its config.
    pub plugin_paths: Vec<PathBuf>,
}

/// Variables passed through from the platform's environment when set.
const PASSED_THROUGH: &[&str] = &["LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR"];

impl OpenclawCommand {
    /// A command running `openclaw <args>` for the instance, with its environment.
    pub fn command(&self, layout: &InstanceLayout, spec: &InstanceSpec, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command.args(args);
        self.apply_environment(&mut command, layout, spec);
        command
    }

    /// Clears the environment and sets what a gateway (or a CLI command inside the
    /// instance) needs: PATH, HOME, state dir, token, and the provider secrets.
    pub fn apply_environment(
        &self,
        command: &mut Command,
        layout: &InstanceLayout,
        spec: &InstanceSpec,
    ) {
        command.env_clear();
        command.current_dir(&layout.root);
        command.env("PATH", self.search_path());
        command.env("HOME", layout.home_dir());
        command.env("OPENCLAW_STATE_DIR", layout.state_dir());
        // The token lives in the state dir's config (gateway.auth.token), where the gateway
        // prefers it and hot-applies a rotation; an env copy would go stale.
        // No mDNS advertising from a multi-tenant host.
        command.env("OPENCLAW_DISABLE_BONJOUR", "1");
        command.env("TMPDIR", layout.tmp_dir());
        for name in PASSED_THROUGH {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        for (name, value) in &spec.secrets {
            command.env(name, value);
        }
    }

    fn search_path(&self) -> OsString {
        let system =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        let mut paths: Vec<PathBuf> = self.path_prefix.clone();
        paths.extend(std::env::split_paths(&system));
        std::env::join_paths(paths).unwrap_or(system)
    }
}

/// Spawns `openclaw gateway run` on `port`, output appended to the instance's log file.
/// With `display` (`:<n>`), browsers the gateway starts draw on that X display.
pub fn spawn_gateway(
    openclaw: &OpenclawCommand,
    layout: &InstanceLayout,
    spec: &InstanceSpec,
    port: u16,
    display: Option<&str>,
) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(layout.log_file())?;
    let port_text = port.to_string();
    let mut command = openclaw.command(
        layout,
        spec,
        &["gateway", "run", "--bind", "loopback", "--port", &port_text],
    );
    if let Some(display) = display {
        command.env("DISPLAY", display);
    }
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn()?;
    if let Some(pid) = child.id() {
        std::fs::write(layout.pid_file(), pid.to_string())?;
    }
    Ok(child)
}

/// Kills whatever is left of a gateway's process group after its main process
/// exited on its own, so no survivor keeps holding the state database or a port.
pub fn kill_group(pid: u32) {
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// Asks a child's process group (a gateway's, or a virtual display part's) to stop,
/// then kills it after `grace`. Returns once the child has exited.
pub async fn terminate(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else {
        return;
    };
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(pid, "process group did not stop in time; killing it");
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Workers that outlived their parent in the group.
    let _ = killpg(group, Signal::SIGKILL);
}

/// Kills every process still working in the instance's directory: workers a crashed
/// gateway detached into their own process groups, or CLI commands that outlived it.
/// They would hold the state database and keep the next gateway from starting. Call it
/// only while no gateway of the instance runs.
pub fn kill_stragglers(layout: &InstanceLayout) -> usize {
    let Ok(root) = std::fs::canonicalize(&layout.root) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let own_pid = std::process::id() as i32;
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own_pid {
            continue;
        }
        let in_instance =
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&root));
        if in_instance && nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            killed += 1;
        }
    }
    killed
}

/// Stops a gateway left running by an earlier platform process that died without
/// stopping it, so its port and state dir are free again. Only a process whose
/// working directory is this instance's root is touched.
pub async fn stop_orphan(layout: &InstanceLayout, grace: Duration) {
    let pid_file = layout.pid_file();
    let Ok(text) = tokio::fs::read_to_string(&pid_file).await else {
        return;
    };
    let _ = tokio::fs::remove_file(&pid_file).await;
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    if !is_instance_process(pid, &layout.root) {
        return;
    }
    tracing::info!(pid, root = %layout.root.display(), "stopping a gateway left by an earlier run");
    let group = Pid::from_raw(pid);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline && is_instance_process(pid, &layout.root) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
}

fn is_instance_process(pid: i32, root: &Path) -> bool {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
    match (cwd, std::fs::canonicalize(root)) {
        (Ok(cwd), Ok(root)) => cwd == root,
        _ => false,
    }
}
