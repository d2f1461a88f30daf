//! `clawfleet instance run` (docs/product/runtimes.md#one-entrypoint): the one way a
//! gateway is started, as a pod's entrypoint and by the local runtime's supervisor.
//!
//! In order: prepare the state dir ([`crate::state_dir`]); start the virtual display
//! beside the gateway when its tools are installed ([`crate::display`]); run `openclaw
//! gateway run`; run the sidecar task (the pairing approver) while the gateway runs. On
//! SIGTERM the sidecar stops, the gateway gets SIGTERM and drains, and is killed if it
//! outlasts the grace period. When the gateway exits, for whatever reason, everything
//! else is stopped, every child is reaped, and the runner exits with the gateway's exit
//! status, so whoever supervises it (the kubelet, or the local supervisor) restarts it
//! and counts the restart.

mod gateway;
#[cfg(test)]
mod tests;

use std::{path::PathBuf, process::ExitStatus, sync::Arc, time::Duration};

use futures_util::future::BoxFuture;
use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;

pub use self::gateway::{ConfinedBy, GatewayCommand, GatewayDisplay};
use crate::{
    children::{Children, describe_exit, exit_code},
    display::{DisplayKeeper, DisplayNumber, DisplaySettings},
    state_dir::{PlatformConfig, prepare_state_dir},
};

/// The exit status when the state dir cannot be prepared.
pub const EXIT_STATE_DIR_FAILED: u8 = 78;
/// The exit status when the gateway cannot be started (the shell's "cannot execute").
pub const EXIT_GATEWAY_NOT_STARTED: u8 = 126;
/// How long the display and leftover processes get to stop once the gateway is gone.
const CLEANUP_GRACE: Duration = Duration::from_secs(3);
/// How long the sidecar gets to finish once cancelled.
const SIDECAR_GRACE: Duration = Duration::from_secs(2);

/// Everything one run needs.
pub struct RunnerConfig {
    /// `OPENCLAW_STATE_DIR`.
    pub state_dir: PathBuf,
    pub platform: PlatformConfig,
    pub gateway: GatewayCommand,
    /// `None` runs the gateway without a display.
    pub display: Option<DisplaySettings>,
    /// How long the gateway may drain after SIGTERM before it is killed.
    pub grace: Duration,
    /// Where a failure of the runner itself is described for the supervisor
    /// (`/dev/termination-log` in a pod); `None` writes it only to stderr.
    pub termination_log: Option<PathBuf>,
}

/// A task that runs beside the gateway until cancelled: the pairing approver.
pub type Sidecar = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// Runs one gateway to its end; returns the exit status for the runner's process.
/// `terminate` is cancelled on SIGTERM (or SIGINT).
pub async fn run(
    config: RunnerConfig,
    children: Arc<Children>,
    sidecar: Option<Sidecar>,
    terminate: CancellationToken,
) -> u8 {
    let state_dir = config.state_dir.clone();
    let platform = config.platform;
    let prepared =
        tokio::task::spawn_blocking(move || prepare_state_dir(&state_dir, &platform)).await;
    match prepared {
        Ok(Ok(prepared)) => {
            if let Some(aside) = prepared.set_aside {
                tracing::warn!(moved_to = %aside.display(), "the gateway config was not a json object; it was moved aside");
            }
        }
        Ok(Err(error)) => {
            return fail(
                config.termination_log.as_ref(),
                &format!(
                    "could not prepare the state directory {} ({error})",
                    config.state_dir.display()
                ),
                EXIT_STATE_DIR_FAILED,
            );
        }
        Err(error) => {
            return fail(
                config.termination_log.as_ref(),
                &format!("could not prepare the state directory ({error})"),
                EXIT_STATE_DIR_FAILED,
            );
        }
    }

    let display = config
        .display
        .and_then(|settings| start_display(children.clone(), settings));
    let mut command = config
        .gateway
        .command(display.as_ref().map(|display| GatewayDisplay {
            name: display.display_name(),
            xauthority: display.xauthority(),
        }));
    let gateway = match children.spawn("gateway", &mut command) {
        Ok(gateway) => gateway,
        Err(error) => {
            if let Some(display) = display {
                display.stop().await;
            }
            return fail(
                config.termination_log.as_ref(),
                &format!(
                    "could not start the gateway ({error}; openclaw at {})",
                    config.gateway.program.display()
                ),
                EXIT_GATEWAY_NOT_STARTED,
            );
        }
    };
    tracing::info!(pid = gateway.pid(), port = config.gateway.port, bind = %config.gateway.bind, "gateway started");

    let sidecar_stop = CancellationToken::new();
    let sidecar_task = sidecar.map(|sidecar| tokio::spawn(sidecar(sidecar_stop.clone())));

    let status: ExitStatus = tokio::select! {
        status = gateway.wait() => status,
        () = terminate.cancelled() => {
            tracing::info!(grace_seconds = config.grace.as_secs(), "asked to stop; the gateway drains");
            // A connection of the sidecar's must not hold the gateway's drain open.
            sidecar_stop.cancel();
            gateway.signal(Signal::SIGTERM);
            match tokio::time::timeout(config.grace, gateway.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    tracing::warn!("the gateway did not stop within the grace period; killing it");
                    gateway.signal(Signal::SIGKILL);
                    gateway.wait().await
                }
            }
        }
    };
    let description = describe_exit(status);
    tracing::info!(gateway = %description, "the gateway ended; stopping the rest");

    sidecar_stop.cancel();
    if let Some(task) = sidecar_task
        && tokio::time::timeout(SIDECAR_GRACE, task).await.is_err()
    {
        tracing::warn!("the sidecar did not stop in time");
    }
    if let Some(display) = display {
        display.stop().await;
    }
    children.end_all(CLEANUP_GRACE).await;
    drop(gateway);
    exit_code(status)
}

fn start_display(children: Arc<Children>, settings: DisplaySettings) -> Option<DisplayKeeper> {
    let Some(number) = DisplayNumber::reserve() else {
        tracing::warn!("found no free x display number; the gateway runs without a display");
        return None;
    };
    Some(DisplayKeeper::spawn(children, settings, number))
}

/// Says why the runner could not run the gateway, on stderr and in the termination log,
/// and returns `code`.
fn fail(termination_log: Option<&PathBuf>, message: &str, code: u8) -> u8 {
    tracing::error!("{message}");
    eprintln!("clawfleet instance run: {message}");
    if let Some(path) = termination_log
        && let Err(error) = std::fs::write(path, message)
    {
        tracing::debug!(path = %path.display(), %error, "could not write the termination log");
    }
    code
}
