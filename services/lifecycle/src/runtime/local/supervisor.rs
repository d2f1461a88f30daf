//! One task per local instance, the local runtime's kubelet
//! (docs/decisions/0003-local-runtime-supervises-like-a-kubelet.md): starts the instance
//! through `clawfleet instance run` (which prepares the state dir, starts the display and
//! runs the gateway, as in a pod), watches the gateway's readiness, restarts the runner
//! with backoff when it exits, and stops it on request.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clawfleet_contracts::lifecycle::v1::{Pod, PodConditions, PodState};
use clawfleet_instance::{
    confine::TenantIdentity,
    state_dir::{PlatformConfig, platform_keys, prepare_state_dir},
};
use clawfleet_kit::{backoff::Backoff, private_file::write_private};
use tokio::{net::TcpStream, process::Child, sync::watch};
use tokio_util::sync::CancellationToken;

use super::{
    LocalSettings,
    layout::InstanceLayout,
    ports::WEBSOCKET_PORT_OFFSET,
    process::{self, RunnerSettings},
    readiness,
    readiness::Readiness,
    tenancy::{self, confinement_for},
};
use crate::{
    instance_id::InstanceId,
    model::{InstanceSpec, Phase, now_ms, timestamp_from_ms},
    runtime::{Observed, status_board::StatusBoard},
};

/// What the supervisor should make true.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Run(InstanceSpec),
    Stop(InstanceSpec),
}

/// The port of the running gateway, readable by the runtime.
pub type LivePort = Arc<Mutex<Option<u16>>>;

/// The NoVNC URL of a running instance's display, readable by the runtime.
pub type LiveVncUrl = Arc<Mutex<Option<String>>>;

/// How often readiness is probed while the gateway starts, and once it is ready.
const PROBE_WHILE_STARTING: Duration = Duration::from_millis(250);
const PROBE_WHILE_READY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A gateway that stayed up this long has recovered: the next crash starts backoff over.
const HEALTHY_RUN_RESETS_BACKOFF: Duration = Duration::from_secs(60);
const RESTART_DELAY_FLOOR: Duration = Duration::from_secs(1);
const RESTART_DELAY_CAP: Duration = Duration::from_secs(60);
/// What the runner keeps of the supervisor's grace to stop the display and exit itself.
const RUNNER_CLEANUP: Duration = Duration::from_secs(3);

pub struct Supervisor {
    pub id: InstanceId,
    pub layout: InstanceLayout,
    /// The tenant's uid and gid, when tenants get their own.
    pub identity: Option<TenantIdentity>,
    pub settings: Arc<LocalSettings>,
    pub board: StatusBoard,
    pub live_port: LivePort,
    /// The NoVNC URL while the gateway's virtual display is up.
    pub live_vnc: LiveVncUrl,
    pub target: watch::Receiver<Target>,
    /// Cancelled when the platform shuts down or the instance is deleted.
    pub stop: CancellationToken,
}

/// Why one run of the gateway ended.
enum RunEnd {
    Exited {
        description: String,
        exit_code: i32,
        ran_for: Duration,
    },
    TargetChanged,
    Stopped,
}

/// The pod-like record of the gateway that observers see.
struct PodView {
    name: String,
    created_at_ms: i64,
    restart_count: u32,
}

impl Supervisor {
    pub async fn run(mut self) {
        let mut pod = PodView {
            name: format!("{}-gateway", self.id),
            created_at_ms: now_ms(),
            restart_count: 0,
        };
        let mut backoff = Backoff::new(RESTART_DELAY_FLOOR, RESTART_DELAY_CAP);
        process::stop_orphan(&self.layout, self.settings.stop_grace).await;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let target = self.target.borrow_and_update().clone();
            let spec = match target {
                Target::Stop(_) => {
                    self.publish(Phase::Stopped, "stopped by request", false, Vec::new());
                    if !self.wait_for_target_change().await {
                        return;
                    }
                    continue;
                }
                Target::Run(spec) => spec,
            };
            match self.run_gateway_once(&spec, &mut pod).await {
                RunEnd::Stopped => return,
                RunEnd::TargetChanged => continue,
                RunEnd::Exited {
                    description,
                    exit_code,
                    ran_for,
                } => {
                    pod.restart_count += 1;
                    if ran_for >= HEALTHY_RUN_RESETS_BACKOFF {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    let reason = format!(
                        "gateway {description}; restarting in {}s (restart {})",
                        delay.as_secs().max(1),
                        pod.restart_count
                    );
                    // Background work: each restart is a trace of its own.
                    tracing::info_span!(
                        parent: None,
                        "gateway.restart",
                        otel.name = "gateway restart",
                        clawfleet.instance.id = %self.id,
                        clawfleet.gateway.exit_code = exit_code,
                        clawfleet.gateway.restarts = pod.restart_count,
                        clawfleet.gateway.backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    )
                    .in_scope(|| {
                        tracing::warn!(instance = %self.id, exit_code, restarts = pod.restart_count, "gateway exited; restarting");
                    });
                    let waiting = PodState {
                        status: "waiting".into(),
                        started_at: None,
                        reason: "CrashLoopBackOff".into(),
                        message: format!(
                            "back-off {}s restarting failed gateway (last exit code {exit_code})",
                            delay.as_secs().max(1)
                        ),
                        exit_code,
                    };
                    let pods = vec![self.pod(&pod, waiting, true, false)];
                    self.publish(Phase::Error, &reason, false, pods);
                    if !self.sleep_unless_interrupted(delay).await {
                        return;
                    }
                }
            }
        }
    }

    /// Prepares, spawns and watches the gateway until it exits, the target changes or
    /// the supervisor is stopped.
    async fn run_gateway_once(&mut self, spec: &InstanceSpec, pod: &mut PodView) -> RunEnd {
        let waiting = |reason: &str, message: String| PodState {
            status: "waiting".into(),
            started_at: None,
            reason: reason.into(),
            message,
            exit_code: 0,
        };
        self.publish(
            Phase::Pending,
            "preparing the gateway state directory",
            false,
            vec![self.pod(
                pod,
                waiting("ContainerCreating", String::new()),
                false,
                false,
            )],
        );
        let layout = self.layout.clone();
        let base = platform_keys(&spec.model, &[]);
        let identity = self.identity;
        let prepared = tokio::task::spawn_blocking(move || {
            write_private(
                &layout.base_config_file(),
                serde_json::to_string_pretty(&base)?.as_bytes(),
            )?;
            tenancy::hand_over_files(&layout, identity)?;
            tenancy::prepare_openclaw_lock_dir(identity)
        })
        .await;
        let prepare_error = match prepared {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(error) => Some(error.to_string()),
        };
        if let Some(error) = prepare_error {
            return RunEnd::Exited {
                description: format!("could not prepare its instance directory ({error})"),
                exit_code: -1,
                ran_for: Duration::ZERO,
            };
        }
        let Some(port) = self.settings.ports.allocate() else {
            return RunEnd::Exited {
                description: "found no free loopback port".into(),
                exit_code: -1,
                ran_for: Duration::ZERO,
            };
        };
        // Before the display starts: its processes work in the instance directory too.
        let stragglers = process::kill_stragglers(&self.layout);
        if stragglers > 0 {
            tracing::warn!(instance = %self.id, stragglers, "killed processes a previous gateway left behind");
        }
        let websocket_port = self
            .settings
            .display
            .then(|| port.checked_add(WEBSOCKET_PORT_OFFSET))
            .flatten();
        let confinement = self.settings.confinement.policy.map(|policy| {
            confinement_for(
                policy,
                &self.layout,
                &self.settings.openclaw,
                &self.settings.ports,
                Some(port),
                self.identity,
            )
        });
        let runner = RunnerSettings {
            executable: &self.settings.executable,
            port,
            websocket_port,
            confinement: confinement.as_ref(),
            grace: self
                .settings
                .stop_grace
                .saturating_sub(RUNNER_CLEANUP)
                .max(Duration::from_secs(1)),
        };
        let spawned = process::spawn_runner(&self.settings.openclaw, &self.layout, spec, &runner);
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                self.settings.ports.release(port);
                return RunEnd::Exited {
                    description: format!(
                        "could not start ({error}; clawfleet at {})",
                        self.settings.executable.display()
                    ),
                    exit_code: -1,
                    ran_for: Duration::ZERO,
                };
            }
        };
        tracing::info!(instance = %self.id, port, pid = child.id(), "instance started");
        let end = self
            .watch_gateway(&mut child, spec, pod, port, websocket_port)
            .await;
        *self
            .live_port
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        self.publish_vnc(None);
        let _ = std::fs::remove_file(self.layout.pid_file());
        self.settings.ports.release(port);
        end
    }

    async fn watch_gateway(
        &mut self,
        child: &mut Child,
        spec: &InstanceSpec,
        pod: &PodView,
        port: u16,
        websocket_port: Option<u16>,
    ) -> RunEnd {
        let started = Instant::now();
        let started_at_ms = now_ms();
        let running_state = || PodState {
            status: "running".into(),
            started_at: Some(timestamp_from_ms(started_at_ms)),
            reason: String::new(),
            message: String::new(),
            exit_code: 0,
        };
        self.publish(
            Phase::Starting,
            "gateway process started; waiting for it to answer /readyz",
            false,
            vec![self.pod(pod, running_state(), true, false)],
        );
        let gateway_pid = child.id();
        let mut current_spec = spec.clone();
        let mut ready = false;
        let mut next_probe = PROBE_WHILE_STARTING;
        loop {
            tokio::select! {
                status = child.wait() => {
                    if let Some(pid) = gateway_pid {
                        process::kill_group(pid);
                    }
                    let (mut description, exit_code) = match status {
                        Ok(status) => describe_exit(status),
                        Err(error) => (format!("could not be waited for ({error})"), -1),
                    };
                    if let Some(message) = process::termination_message(&self.layout) {
                        description = format!("{description}: {message}");
                    }
                    return RunEnd::Exited { description, exit_code, ran_for: started.elapsed() };
                }
                changed = self.target.changed() => {
                    let wanted = match (&changed, &*self.target.borrow()) {
                        (Ok(()), Target::Run(wanted)) => Some(wanted.clone()),
                        _ => None,
                    };
                    if wanted.as_ref() == Some(&current_spec) {
                        continue;
                    }
                    if let Some(wanted) = wanted.filter(|wanted| differs_only_in_token(&current_spec, wanted)) {
                        // The gateway hot-applies a new gateway.auth.token and drops
                        // connections made with the old one (4001): no restart needed.
                        match self.write_gateway_token(&wanted).await {
                            Ok(()) => {
                                tracing::info!(instance = %self.id, "gateway token rotated in place");
                                current_spec = wanted;
                                continue;
                            }
                            Err(error) => tracing::warn!(instance = %self.id, %error, "could not rotate the token in place; restarting the gateway"),
                        }
                    }
                    self.publish(Phase::Starting, "stopping the gateway", false, vec![self.pod(pod, running_state(), true, false)]);
                    process::terminate(child, self.settings.stop_grace).await;
                    return if changed.is_ok() { RunEnd::TargetChanged } else { RunEnd::Stopped };
                }
                _ = self.stop.cancelled() => {
                    process::terminate(child, self.settings.stop_grace).await;
                    return RunEnd::Stopped;
                }
                _ = tokio::time::sleep(next_probe) => {
                    if let Some(websocket_port) = websocket_port {
                        self.probe_display(websocket_port).await;
                    }
                    let readiness = readiness::probe(port, PROBE_TIMEOUT).await;
                    let late = started.elapsed() > self.settings.start_timeout;
                    match readiness {
                        Readiness::Ready => {
                            if !ready {
                                tracing::info!(instance = %self.id, port, seconds = started.elapsed().as_secs_f32(), "gateway ready");
                            }
                            ready = true;
                            *self.live_port.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(port);
                            self.publish(Phase::Running, "gateway is ready", true, vec![self.pod(pod, running_state(), true, true)]);
                        }
                        Readiness::NotReady { failing } => {
                            let (phase, reason) = if ready || late {
                                (Phase::Error, format!("gateway is not ready: failing checks: {}", failing.join(", ")))
                            } else {
                                (Phase::Starting, format!("gateway is starting: waiting on {}", failing.join(", ")))
                            };
                            *self.live_port.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(port);
                            self.publish(phase, &reason, false, vec![self.pod(pod, running_state(), true, false)]);
                        }
                        Readiness::NoAnswer { detail } => {
                            let (phase, reason) = if ready {
                                (Phase::Error, format!("gateway stopped answering /readyz ({detail})"))
                            } else if late {
                                let waited = started.elapsed().as_secs();
                                (Phase::Error, format!("gateway has not started listening after {waited}s ({detail})"))
                            } else {
                                (Phase::Starting, "gateway process started; waiting for it to listen".to_owned())
                            };
                            self.publish(phase, &reason, false, vec![self.pod(pod, running_state(), true, false)]);
                        }
                    }
                    next_probe = if ready { PROBE_WHILE_READY } else { PROBE_WHILE_STARTING };
                }
            }
        }
    }

    /// Publishes the NoVNC URL while websockify accepts connections: the display comes
    /// up beside the gateway and may restart on its own.
    async fn probe_display(&self, websocket_port: u16) {
        let up = tokio::time::timeout(
            PROBE_TIMEOUT,
            TcpStream::connect(("127.0.0.1", websocket_port)),
        )
        .await
        .is_ok_and(|connected| connected.is_ok());
        self.publish_vnc(up.then(|| format!("ws://127.0.0.1:{websocket_port}")));
    }

    fn publish_vnc(&self, url: Option<String>) {
        *self
            .live_vnc
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = url;
    }

    /// Writes the spec's gateway token into the running gateway's config file, the way
    /// the runner does at start, so the gateway hot-applies it.
    async fn write_gateway_token(&self, spec: &InstanceSpec) -> std::io::Result<()> {
        let state_dir = self.layout.state_dir();
        let platform = PlatformConfig {
            base: platform_keys(&spec.model, &[]),
            gateway_token: spec.gateway_token.clone().into(),
            plugin_paths: self.settings.openclaw.plugin_paths.clone(),
        };
        // As the tenant: the state dir is theirs, links in it included.
        let identity = self.identity;
        tokio::task::spawn_blocking(move || {
            tenancy::as_tenant(identity, move || {
                prepare_state_dir(&state_dir, &platform).map(|_| ())
            })
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Waits for a new target; false when the supervisor should end.
    async fn wait_for_target_change(&mut self) -> bool {
        tokio::select! {
            changed = self.target.changed() => changed.is_ok(),
            _ = self.stop.cancelled() => false,
        }
    }

    /// Sleeps for `delay` unless the target changes first; false when the supervisor should end.
    async fn sleep_unless_interrupted(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            changed = self.target.changed() => changed.is_ok(),
            _ = self.stop.cancelled() => false,
        }
    }

    fn pod(&self, view: &PodView, state: PodState, initialized: bool, ready: bool) -> Pod {
        Pod {
            name: view.name.clone(),
            phase: if state.status == "waiting" && !initialized {
                "Pending".into()
            } else {
                "Running".into()
            },
            ready,
            restart_count: view.restart_count,
            state: Some(state),
            conditions: Some(PodConditions {
                scheduled: true,
                initialized,
                containers_ready: ready,
                ready,
            }),
            created_at: Some(timestamp_from_ms(view.created_at_ms)),
        }
    }

    fn publish(&self, phase: Phase, reason: &str, ready: bool, pods: Vec<Pod>) {
        self.board.publish(
            &self.id,
            Observed {
                phase,
                reason: reason.to_owned(),
                ready,
                pods,
                revision: 0,
            },
        );
    }
}

/// True when `wanted` is `current` with another gateway token.
fn differs_only_in_token(current: &InstanceSpec, wanted: &InstanceSpec) -> bool {
    let mut same_token = wanted.clone();
    same_token.gateway_token.clone_from(&current.gateway_token);
    same_token == *current && wanted.gateway_token != current.gateway_token
}

fn describe_exit(status: std::process::ExitStatus) -> (String, i32) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return (format!("exited with status {code}"), code);
    }
    match status.signal() {
        Some(signal) => (format!("was killed by signal {signal}"), 128 + signal),
        None => ("exited".to_owned(), -1),
    }
}
