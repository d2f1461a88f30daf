//! Starting and stopping an instance's process: `clawfleet instance run`
//! (docs/product/runtimes.md#one-entrypoint), the same entrypoint a pod runs, which
//! prepares the state dir, starts the display and runs the gateway.
//!
//! Each instance runs in its own process group so that stopping it reaches every
//! process it started. Its environment is built from scratch: platform credentials in
//! the platform's own environment never leak into a user's gateway.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use std::os::unix::fs::OpenOptionsExt;

use clawfleet_instance::confine::{CONFINEMENT_ENV, Confinement};
use clawfleet_kit::{config::keys, private_file::write_private};
use nix::{
    sys::signal::{Signal, kill, killpg},
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

/// What the local runtime tells `clawfleet instance run` beyond the instance's own
/// environment.
pub struct RunnerSettings<'a> {
    /// The `clawfleet` executable.
    pub executable: &'a Path,
    pub port: u16,
    /// Where websockify serves NoVNC; `None` runs the gateway without a display.
    pub websocket_port: Option<u16>,
    /// How long the gateway may drain after SIGTERM (shorter than the supervisor's own
    /// grace, so the runner can stop the display and exit on its own).
    pub grace: Duration,
    /// The tenant's confinement; `None` runs it unconfined.
    pub confinement: Option<&'a Confinement>,
}

/// Spawns `clawfleet instance run` for the instance on loopback `port`, its output (and
/// the gateway's) appended to the instance's log file. The platform's keys are in the
/// base config file written beside the instance.
pub fn spawn_runner(
    openclaw: &OpenclawCommand,
    layout: &InstanceLayout,
    spec: &InstanceSpec,
    runner: &RunnerSettings<'_>,
) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(layout.log_file())?;
    let mut command = Command::new(runner.executable);
    command.args(["instance", "run", "--bind", "loopback"]);
    command.arg("--port").arg(runner.port.to_string());
    command.arg("--openclaw").arg(&openclaw.program);
    for plugin in &openclaw.plugin_paths {
        command.arg("--plugin").arg(plugin);
    }
    command
        .arg("--grace-seconds")
        .arg(runner.grace.as_secs().max(1).to_string());
    command
        .arg("--termination-log")
        .arg(layout.termination_log());
    match runner.websocket_port {
        Some(port) => {
            command
                .arg("--websocket-listen")
                .arg(format!("127.0.0.1:{port}"));
            command.arg("--display-log").arg(layout.display_log_file());
        }
        None => {
            command.arg("--no-display");
        }
    }
    openclaw.apply_environment(&mut command, layout, spec);
    command.env(keys::OPENCLAW_GATEWAY_TOKEN, &spec.gateway_token);
    command.env(keys::CLAWFLEET_BASE_CONFIG, layout.base_config_file());
    command.env(keys::CLAWFLEET_LOG_FORMAT, "text");
    if let Some(confinement) = runner.confinement {
        command.env(CONFINEMENT_ENV, confinement.to_json());
    }
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    let _ = std::fs::remove_file(layout.termination_log());
    let child = command.spawn()?;
    if let Some(pid) = child.id() {
        write_private(&layout.pid_file(), pid.to_string().as_bytes())?;
    }
    Ok(child)
}

/// Why the runner could not run the gateway, when it said so (its termination log).
pub fn termination_message(layout: &InstanceLayout) -> Option<String> {
    std::fs::read_to_string(layout.termination_log())
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// Kills whatever is left of a gateway's process group after its main process
/// exited on its own, so no survivor keeps holding the state database or a port.
pub fn kill_group(pid: u32) {
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// Asks the instance's runner to stop, as a kubelet asks a container: SIGTERM to the
/// runner alone (it forwards it to the gateway and stops the rest itself), then SIGKILL
/// to the whole process group after `grace`. Returns once the runner has exited.
pub async fn terminate(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else {
        return;
    };
    let group = Pid::from_raw(pid as i32);
    let _ = kill(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(
            pid,
            "instance did not stop in time; killing its process group"
        );
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Anything that outlived the runner in its group.
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

/// Stops an instance left running by an earlier platform process that died without
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
