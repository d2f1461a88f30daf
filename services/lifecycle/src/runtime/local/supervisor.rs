//! One task per local instance: prepares the state dir, runs the gateway, watches its
//! readiness, restarts it with backoff when it dies, and stops it on request.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clawfleet_contracts::lifecycle::v1::{Pod, PodConditions, PodState};
use tokio::{process::Child, sync::watch};
use tokio_util::sync::CancellationToken;

use super::{
    LocalSettings,
    layout::InstanceLayout,
    process, readiness,
    readiness::Readiness,
    state_dir::prepare_state_dir,
    vnc::{self, DisplayFiles, DisplayKeeper, DisplayNumber, DisplayPorts, LiveVncUrl},
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

/// How often readiness is probed while the gateway starts, and once it is ready.
const PROBE_WHILE_STARTING: Duration = Duration::from_millis(250);
const PROBE_WHILE_READY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A gateway that stayed up this long has recovered: the next crash starts backoff over.
const HEALTHY_RUN_RESETS_BACKOFF: Duration = Duration::from_secs(60);

pub struct Supervisor {
    pub id: InstanceId,
    pub layout: InstanceLayout,
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
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        process::stop_orphan(&self.layout, self.settings.stop_grace).await;
        vnc::stop_orphaned_display(&DisplayFiles::for_instance(&self.layout)).await;
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
                    tracing::warn!(instance = %self.id, exit_code, restarts = pod.restart_count, "gateway exited; restarting");
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
        let model = spec.model.clone();
        let token = spec.gateway_token.clone();
        let plugin_paths = self.settings.openclaw.plugin_paths.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(layout.home_dir())?;
            std::fs::create_dir_all(layout.tmp_dir())?;
            prepare_state_dir(&layout.state_dir(), &model, &token, &plugin_paths)
        })
        .await;
        let prepare_error = match prepared {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(error) => Some(error.to_string()),
        };
        if let Some(error) = prepare_error {
            return RunEnd::Exited {
                description: format!("could not prepare its state directory ({error})"),
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
        let display = self.start_display(port);
        let spawned = process::spawn_gateway(
            &self.settings.openclaw,
            &self.layout,
            spec,
            port,
            display.as_ref().map(DisplayKeeper::display_name),
        );
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                if let Some(display) = display {
                    display.stop().await;
                }
                self.settings.ports.release(port);
                return RunEnd::Exited {
                    description: format!(
                        "could not start ({error}; openclaw at {})",
                        self.settings.openclaw.program.display()
                    ),
                    exit_code: -1,
                    ran_for: Duration::ZERO,
                };
            }
        };
        tracing::info!(instance = %self.id, port, pid = child.id(), "gateway started");
        let end = self.watch_gateway(&mut child, spec, pod, port).await;
        if let Some(display) = display {
            display.stop().await;
        }
        *self
            .live_port
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
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
                    let (description, exit_code) = match status {
                        Ok(status) => describe_exit(status),
                        Err(error) => (format!("could not be waited for ({error})"), -1),
                    };
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

    /// Starts the virtual display of one gateway run, when the tools are installed. It
    /// comes up beside the gateway (never delaying or stopping it) on ports inside the
    /// gateway's port slot.
    fn start_display(&self, gateway_port: u16) -> Option<DisplayKeeper> {
        let tools = self.settings.vnc.as_ref()?;
        let ports = DisplayPorts::beside_gateway(gateway_port)?;
        let Some(number) = DisplayNumber::reserve() else {
            tracing::warn!(instance = %self.id, "found no free x display number; the gateway runs without a display");
            return None;
        };
        Some(DisplayKeeper::spawn(
            self.id.clone(),
            tools.clone(),
            number,
            ports,
            DisplayFiles::for_instance(&self.layout),
            self.live_vnc.clone(),
        ))
    }

    /// Writes the spec's gateway token into the running gateway's config file.
    async fn write_gateway_token(&self, spec: &InstanceSpec) -> std::io::Result<()> {
        let state_dir = self.layout.state_dir();
        let model = spec.model.clone();
        let token = spec.gateway_token.clone();
        let plugin_paths = self.settings.openclaw.plugin_paths.clone();
        tokio::task::spawn_blocking(move || {
            prepare_state_dir(&state_dir, &model, &token, &plugin_paths).map(|_| ())
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

/// Exponential backoff with a cap.
struct Backoff {
    initial: Duration,
    maximum: Duration,
    current: Duration,
}

impl Backoff {
    fn new(initial: Duration, maximum: Duration) -> Self {
        Self {
            initial,
            maximum,
            current: initial,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.maximum);
        delay
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = (0..5).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.next_delay().as_secs(), 1);
    }
}
