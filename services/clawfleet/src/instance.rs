//! `clawfleet instance run`: the gateway container's entrypoint and the command the local
//! runtime starts every instance with (docs/product/runtimes.md#one-entrypoint). This
//! module reads its settings; `clawfleet_instance::runner` does the work.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::{Args, Subcommand};
use clawfleet_instance::{
    children::Children,
    confine::{CONFINEMENT_ENV, Confinement},
    display::{DisplaySettings, VncTools},
    runner::{self, ConfinedBy, GatewayCommand, RunnerConfig, Sidecar},
    state_dir::{PlatformConfig, platform_keys},
};
use clawfleet_kit::{
    config::{self, ConfigError, EnvSource, keys},
    shutdown::token_cancelled_on_signal,
    telemetry,
};
use serde_json::Value;

use crate::toolchain;

/// The gateway port when `OPENCLAW_GATEWAY_PORT` is unset.
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;
/// Where websockify serves NoVNC in a pod.
pub const DEFAULT_WEBSOCKET_LISTEN: &str = "0.0.0.0:6080";
/// The gateway drains for up to 315 s after SIGTERM; the pod's grace period is 330 s.
pub const DEFAULT_GRACE_SECONDS: u64 = 320;

#[derive(Subcommand)]
pub enum InstanceCommand {
    /// Prepare the state dir, start the virtual display, run the gateway (and the
    /// pairing approver) until it exits; exits with the gateway's status.
    Run(RunArgs),
    /// Confine this process as a local tenant and execute a command in its place
    /// (started by the local runtime; docs/product/local-confinement.md).
    Confine(crate::confine::ConfineArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// `lan` listens on every interface (a pod), `loopback` on 127.0.0.1 only.
    #[arg(long, default_value = "lan")]
    bind: String,
    /// The gateway port.
    #[arg(long, env = keys::OPENCLAW_GATEWAY_PORT, default_value_t = DEFAULT_GATEWAY_PORT)]
    port: u16,
    /// The openclaw executable; default: the toolchain installed in
    /// CLAWFLEET_TOOLCHAIN_DIR, else `openclaw` on PATH.
    #[arg(long, env = keys::OPENCLAW_BIN)]
    openclaw: Option<PathBuf>,
    /// A plugin package the gateway loads (repeatable); default: the installed
    /// toolchain's WhatsApp plugin.
    #[arg(long = "plugin")]
    plugins: Vec<PathBuf>,
    /// Where websockify serves the NoVNC WebSocket.
    #[arg(long, default_value = DEFAULT_WEBSOCKET_LISTEN)]
    websocket_listen: SocketAddr,
    /// Run the gateway without a virtual display even when Xvfb, x11vnc and websockify
    /// are installed.
    #[arg(long)]
    no_display: bool,
    /// Where the display's processes write; default: this process's stderr.
    #[arg(long)]
    display_log: Option<PathBuf>,
    /// Seconds the gateway may drain after SIGTERM before it is killed.
    #[arg(long, default_value_t = DEFAULT_GRACE_SECONDS)]
    grace_seconds: u64,
    /// Where a failure of the runner itself is written for its supervisor.
    #[arg(long, default_value = "/dev/termination-log")]
    termination_log: PathBuf,
}

/// Runs `clawfleet instance <command>`; returns the process's exit status.
pub async fn run(command: InstanceCommand, env: &dyn EnvSource) -> anyhow::Result<u8> {
    let args = match command {
        InstanceCommand::Run(args) => args,
        // `main` confines and executes before the async runtime starts.
        InstanceCommand::Confine(args) => return Ok(crate::confine::confine_and_exec(args)),
    };
    let _telemetry = telemetry::init("clawfleet-instance", env);
    // Before the reaper starts: looking up the toolchain may run `node`.
    let installed = if args.openclaw.is_none() || args.plugins.is_empty() {
        toolchain::installed_openclaw(env)
    } else {
        None
    };
    let settings = settings(args, env, installed)?;
    // In a pod HOME is a folder on the instance's volume (/data/home) that nothing else
    // creates; the local supervisor has made it already.
    if let Some(home) = std::env::var_os("HOME") {
        std::fs::create_dir_all(home)?;
    }
    let children = Arc::new(Children::adopting_orphans()?);
    let terminate = token_cancelled_on_signal();
    Ok(runner::run(settings.config, children, settings.sidecar, terminate).await)
}

/// What one run is given, and the folder of the display's socket (removed when dropped).
struct Settings {
    config: RunnerConfig,
    sidecar: Option<Sidecar>,
    _socket_dir: Option<tempfile::TempDir>,
}

fn settings(
    args: RunArgs,
    env: &dyn EnvSource,
    installed: Option<clawfleet_lifecycle::runtime::local::OpenclawCommand>,
) -> anyhow::Result<Settings> {
    let (display, socket_dir) = match display_settings(&args)? {
        Some((display, dir)) => (Some(display), Some(dir)),
        None => (None, None),
    };
    let state_dir = PathBuf::from(config::required(env, keys::OPENCLAW_STATE_DIR)?);
    let gateway_token = config::required(env, keys::OPENCLAW_GATEWAY_TOKEN)?;
    let base = match config::optional(env, keys::CLAWFLEET_BASE_CONFIG) {
        Some(path) => read_base_config(&path)?,
        None => platform_keys("", &[]),
    };
    let program = args
        .openclaw
        .or_else(|| installed.as_ref().map(|command| command.program.clone()))
        .unwrap_or_else(|| PathBuf::from("openclaw"));
    let plugin_paths = if args.plugins.is_empty() {
        installed
            .map(|command| command.plugin_paths)
            .unwrap_or_default()
    } else {
        args.plugins
    };
    let sidecar = config::optional(env, keys::CLAWFLEET_PLATFORM_DEVICE_ID)
        .map(|platform_device_id| pairing_approver(args.port, &gateway_token, platform_device_id));
    Ok(Settings {
        config: RunnerConfig {
            state_dir,
            platform: PlatformConfig {
                base,
                gateway_token: gateway_token.into(),
                plugin_paths,
            },
            gateway: GatewayCommand {
                program,
                bind: args.bind,
                port: args.port,
                confined_by: confined_by(env)?,
            },
            display,
            grace: Duration::from_secs(args.grace_seconds),
            termination_log: Some(args.termination_log),
        },
        sidecar,
        _socket_dir: socket_dir,
    })
}

/// Started by the local runtime with a confinement (`CLAWFLEET_CONFINEMENT`): the
/// gateway runs through `clawfleet instance confine` (this same executable).
fn confined_by(env: &dyn EnvSource) -> anyhow::Result<Option<ConfinedBy>> {
    let Some(spec) = config::optional(env, CONFINEMENT_ENV) else {
        return Ok(None);
    };
    Confinement::from_json(&spec).map_err(|error| ConfigError::Invalid {
        key: CONFINEMENT_ENV,
        reason: error.to_string(),
    })?;
    Ok(Some(ConfinedBy {
        executable: std::env::current_exe()?,
        spec,
    }))
}

/// The platform's keys from `CLAWFLEET_BASE_CONFIG`: a JSON object, or the runner stops.
fn read_base_config(path: &str) -> anyhow::Result<Value> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: keys::CLAWFLEET_BASE_CONFIG,
        reason,
    };
    let text =
        std::fs::read_to_string(path).map_err(|error| invalid(format!("{path}: {error}")))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(invalid(format!("{path} is not a json object")).into()),
        Err(error) => Err(invalid(format!("{path}: {error}")).into()),
    }
}

/// The display, when wanted and its tools are installed; x11vnc's socket goes into a
/// new owner-only folder under /tmp (a unix socket path must stay short).
fn display_settings(
    args: &RunArgs,
) -> std::io::Result<Option<(DisplaySettings, tempfile::TempDir)>> {
    if args.no_display {
        return Ok(None);
    }
    let Some(tools) = VncTools::detect() else {
        tracing::info!("no virtual display: Xvfb, x11vnc or websockify is not installed");
        return Ok(None);
    };
    let socket_dir = tempfile::Builder::new()
        .prefix("clawfleet-vnc-")
        .tempdir_in("/tmp")?;
    // The gateway reads the cookie from its home (the instance's folder); without a home
    // it stays beside the socket.
    let xauthority = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| socket_dir.path().to_owned())
        .join(".Xauthority");
    Ok(Some((
        DisplaySettings {
            tools,
            websocket: args.websocket_listen,
            vnc_socket: socket_dir.path().join("rfb.sock"),
            xauthority,
            log_file: args.display_log.clone(),
        },
        socket_dir,
    )))
}

/// Approves the platform bridge's device (and only it) on the gateway beside it
/// (docs/product/gateways.md#device-identity-and-pairing-approval).
fn pairing_approver(port: u16, gateway_token: &str, platform_device_id: String) -> Sidecar {
    use clawfleet_gateway_bridge::pairing_approver::{ApproverConfig, run};
    let config = ApproverConfig {
        gateway_url: format!("ws://127.0.0.1:{port}"),
        gateway_token: gateway_token.to_owned().into(),
        platform_device_id,
    };
    Box::new(move |stop| Box::pin(run(config, stop)))
}
