//! The local runtime: every instance is a `clawfleet instance run` child process — the
//! same entrypoint a pod runs (docs/product/runtimes.md#one-entrypoint), which prepares
//! the state dir, starts the virtual display and runs `openclaw gateway run` — on its own
//! loopback port with its own state dir under the data dir, supervised by a task that
//! restarts it with backoff, as a kubelet would. Desired state lives in the store, so
//! after a platform restart the reconciler applies every instance again and they come
//! back with their data. When Xvfb, x11vnc and websockify are installed, each running
//! gateway also gets its own virtual display, with NoVNC on its port + 6.

mod exec;
pub mod layout;
pub mod ports;
mod process;
pub mod readiness;
mod supervisor;
pub mod tenancy;
mod version;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use clawfleet_instance::confine::TenantIdentity;
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use self::{
    layout::InstanceLayout,
    ports::PortAllocator,
    supervisor::{LivePort, LiveVncUrl, Supervisor, Target},
};
pub use self::{process::OpenclawCommand, tenancy::LocalConfinement};
use super::{
    DataRetention, ExecOutput, ExecRequest, GatewayEndpoint, Observed, Runtime, RuntimeError,
    status_board::StatusBoard,
};
use crate::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceSpec},
};

/// How the local runtime runs gateways.
#[derive(Debug, Clone)]
pub struct LocalRuntimeConfig {
    pub data_dir: PathBuf,
    /// The `clawfleet` executable; each instance runs as `<executable> instance run`.
    pub executable: PathBuf,
    pub openclaw: OpenclawCommand,
    /// First loopback port handed to a gateway.
    pub port_base: u16,
    /// After this long without readiness a starting gateway is reported as an error.
    pub start_timeout: Duration,
    /// How long an instance may take to stop after SIGTERM before it is killed.
    pub stop_grace: Duration,
    /// Gives every running gateway a virtual display (Xvfb) with a NoVNC endpoint when
    /// `Xvfb`, `x11vnc` and `websockify` are on `PATH`; without them gateways run
    /// without a display.
    pub vnc: bool,
    /// How tenants are confined (docs/product/local-confinement.md).
    pub confinement: LocalConfinement,
}

/// Settings every supervisor shares.
pub struct LocalSettings {
    pub executable: PathBuf,
    pub openclaw: OpenclawCommand,
    pub ports: PortAllocator,
    pub start_timeout: Duration,
    pub stop_grace: Duration,
    /// Displays are enabled and their tools installed.
    pub display: bool,
    pub confinement: LocalConfinement,
}

struct SupervisedInstance {
    target: watch::Sender<Target>,
    live_port: LivePort,
    live_vnc: LiveVncUrl,
    /// The tenant's uid and gid, when tenants get their own.
    identity: Option<TenantIdentity>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct LocalRuntime {
    data_dir: PathBuf,
    /// The openclaw package version gateways run (docs/product/backups.md#versions).
    gateway_version: String,
    settings: Arc<LocalSettings>,
    board: StatusBoard,
    instances: Mutex<HashMap<InstanceId, SupervisedInstance>>,
    shutting_down: CancellationToken,
}

impl LocalRuntime {
    pub fn new(config: LocalRuntimeConfig) -> std::io::Result<Self> {
        tenancy::prepare_data_dir(&config.data_dir, &config.confinement)?;
        match config.confinement.policy {
            None => {
                tracing::warn!("local tenants are not confined (CLAWFLEET_LOCAL_CONFINEMENT=off)")
            }
            Some(policy) => tracing::info!(
                ?policy,
                separate_uids = config.confinement.separate_uids(),
                "local tenants are confined: landlock, no_new_privs, uids of their own when root"
            ),
        }
        let display = config.vnc && {
            let found = clawfleet_instance::display::VncTools::detect().is_some();
            if !found {
                tracing::info!("virtual displays disabled: xvfb, x11vnc or websockify not found");
            }
            found
        };
        Ok(Self {
            gateway_version: version::openclaw_version(&config.openclaw.program),
            data_dir: config.data_dir,
            settings: Arc::new(LocalSettings {
                executable: config.executable,
                openclaw: config.openclaw,
                ports: PortAllocator::new(config.port_base),
                start_timeout: config.start_timeout,
                stop_grace: config.stop_grace,
                display,
                confinement: config.confinement,
            }),
            board: StatusBoard::default(),
            instances: Mutex::new(HashMap::new()),
            shutting_down: CancellationToken::new(),
        })
    }

    fn layout(&self, id: &InstanceId) -> InstanceLayout {
        InstanceLayout::new(&self.data_dir, id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, SupervisedInstance>> {
        self.instances
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes an instance's directory. A gateway's detached workers may still be writing
/// (SQLite WAL, logs) for a moment after it stopped, so a "directory not empty" is retried.
async fn remove_instance_dir(root: &std::path::Path) -> std::io::Result<()> {
    const ATTEMPTS: u32 = 20;
    for attempt in 1..=ATTEMPTS {
        match tokio::fs::remove_dir_all(root).await {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) if attempt < ATTEMPTS => {
                tracing::debug!(root = %root.display(), %error, attempt, "instance dir still in use; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn target_for(spec: &InstanceSpec) -> Target {
    match spec.desired_state {
        DesiredState::Running => Target::Run(spec.clone()),
        DesiredState::Stopped => Target::Stop(spec.clone()),
    }
}

#[tonic::async_trait]
impl Runtime for LocalRuntime {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn apply(&self, spec: &InstanceSpec) -> Result<(), RuntimeError> {
        if self.shutting_down.is_cancelled() {
            return Err(RuntimeError::ShuttingDown);
        }
        let target = target_for(spec);
        let mut instances = self.lock();
        if let Some(existing) = instances.get(&spec.id)
            && !existing.task.is_finished()
        {
            existing.target.send_if_modified(|current| {
                if *current == target {
                    return false;
                }
                *current = target;
                true
            });
            return Ok(());
        }
        let layout = self.layout(&spec.id);
        let identity =
            tenancy::prepare_instance(&self.data_dir, &layout, &self.settings.confinement)?;
        let (target_sender, target_receiver) = watch::channel(target);
        let live_port: LivePort = Arc::new(Mutex::new(None));
        let live_vnc: LiveVncUrl = Arc::new(Mutex::new(None));
        let stop = self.shutting_down.child_token();
        let supervisor = Supervisor {
            id: spec.id.clone(),
            layout,
            settings: self.settings.clone(),
            board: self.board.clone(),
            live_port: live_port.clone(),
            live_vnc: live_vnc.clone(),
            identity,
            target: target_receiver,
            stop: stop.clone(),
        };
        let task = tokio::spawn(supervisor.run());
        instances.insert(
            spec.id.clone(),
            SupervisedInstance {
                target: target_sender,
                live_port,
                live_vnc,
                identity,
                stop,
                task,
            },
        );
        Ok(())
    }

    async fn delete(&self, id: &InstanceId, retention: DataRetention) -> Result<(), RuntimeError> {
        let removed = self.lock().remove(id);
        if let Some(instance) = removed {
            instance.stop.cancel();
            // The supervisor terminates the gateway before it ends.
            let _ = instance.task.await;
        }
        self.board.remove(id);
        let layout = self.layout(id);
        // An instance this process never supervised (an orphan found by the
        // reconciler after a crash of an earlier platform process) may still have its
        // runner, gateway and display running; they are stopped before the data goes.
        process::stop_orphan(&layout, self.settings.stop_grace).await;
        if retention == DataRetention::Purge {
            remove_instance_dir(&layout.root).await?;
        }
        Ok(())
    }

    fn observe(&self, id: &InstanceId) -> Observed {
        self.board
            .get(id)
            .unwrap_or_else(|| Observed::unknown("no gateway process"))
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<InstanceId> {
        self.board.subscribe()
    }

    /// The token is the one the gateway was started with (the spec it runs).
    async fn gateway_endpoint(
        &self,
        id: &InstanceId,
        _gateway_token: &str,
    ) -> Result<GatewayEndpoint, RuntimeError> {
        let (port, vnc_url, spec) = {
            let instances = self.lock();
            let instance = instances
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
            let port = *instance
                .live_port
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let vnc_url = instance
                .live_vnc
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            let spec = match &*instance.target.borrow() {
                Target::Run(spec) | Target::Stop(spec) => spec.clone(),
            };
            (port, vnc_url, spec)
        };
        let Some(port) = port else {
            return Err(RuntimeError::NotRunning {
                id: id.clone(),
                reason: self.observe(id).reason,
            });
        };
        Ok(GatewayEndpoint {
            gateway_url: format!("ws://127.0.0.1:{port}"),
            gateway_token: spec.gateway_token,
            // Empty while the display chain is down or the tools are missing.
            vnc_url: vnc_url.unwrap_or_default(),
            loopback: true,
        })
    }

    async fn exec(
        &self,
        id: &InstanceId,
        request: ExecRequest,
    ) -> Result<ExecOutput, RuntimeError> {
        let (spec, tenant) = {
            let instances = self.lock();
            let instance = instances
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
            let spec = match &*instance.target.borrow() {
                Target::Run(spec) | Target::Stop(spec) => spec.clone(),
            };
            let port = *instance
                .live_port
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (
                spec,
                exec::Tenant {
                    identity: instance.identity,
                    port,
                },
            )
        };
        exec::exec_in_instance(&self.settings, &self.layout(id), &spec, tenant, request).await
    }

    fn known_instances(&self) -> Vec<InstanceId> {
        let mut known: std::collections::BTreeSet<InstanceId> =
            self.lock().keys().cloned().collect();
        // A gateway left running by an earlier platform process has a pid file.
        if let Ok(entries) = std::fs::read_dir(self.data_dir.join("instances")) {
            for entry in entries.flatten() {
                if let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| InstanceId::parse(name).ok())
                    && self.layout(&id).pid_file().exists()
                {
                    known.insert(id);
                }
            }
        }
        known.into_iter().collect()
    }

    fn state_dir(&self, id: &InstanceId) -> Result<PathBuf, RuntimeError> {
        Ok(self.layout(id).state_dir())
    }

    fn gateway_version(&self) -> String {
        self.gateway_version.clone()
    }

    async fn shutdown(&self) {
        self.shutting_down.cancel();
        let tasks: Vec<JoinHandle<()>> = self
            .lock()
            .drain()
            .map(|(_, instance)| instance.task)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod confinement_tests;
#[cfg(test)]
mod tests;
