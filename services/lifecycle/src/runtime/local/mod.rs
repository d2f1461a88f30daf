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

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use self::process::OpenclawCommand;
use self::{
    layout::InstanceLayout,
    ports::PortAllocator,
    supervisor::{LivePort, LiveVncUrl, Supervisor, Target},
};
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
}

struct SupervisedInstance {
    target: watch::Sender<Target>,
    live_port: LivePort,
    live_vnc: LiveVncUrl,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct LocalRuntime {
    data_dir: PathBuf,
    settings: Arc<LocalSettings>,
    board: StatusBoard,
    instances: Mutex<HashMap<InstanceId, SupervisedInstance>>,
    shutting_down: CancellationToken,
}

impl LocalRuntime {
    pub fn new(config: LocalRuntimeConfig) -> std::io::Result<Self> {
        std::fs::create_dir_all(config.data_dir.join("instances"))?;
        let display = config.vnc && {
            let found = clawfleet_instance::display::VncTools::detect().is_some();
            if !found {
                tracing::info!("virtual displays disabled: xvfb, x11vnc or websockify not found");
            }
            found
        };
        Ok(Self {
            data_dir: config.data_dir,
            settings: Arc::new(LocalSettings {
                executable: config.executable,
                openclaw: config.openclaw,
                ports: PortAllocator::new(config.port_base),
                start_timeout: config.start_timeout,
                stop_grace: config.stop_grace,
                display,
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

    fn spec_of(&self, id: &InstanceId) -> Option<InstanceSpec> {
        self.lock()
            .get(id)
            .map(|instance| match &*instance.target.borrow() {
                Target::Run(spec) | Target::Stop(spec) => spec.clone(),
            })
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
        std::fs::create_dir_all(&layout.root)?;
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

    async fn gateway_endpoint(&self, id: &InstanceId) -> Result<GatewayEndpoint, RuntimeError> {
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
        let spec = self
            .spec_of(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        exec::exec_in_instance(&self.settings, &self.layout(id), &spec, request).await
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
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Plan;

    /// The built `clawfleet` binary: every instance runs as `clawfleet instance run`.
    fn clawfleet_executable() -> PathBuf {
        let path = std::env::var_os("CLAWFLEET_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../target/debug/clawfleet")
            });
        assert!(
            path.exists(),
            "{} is missing: build it first (cargo build -p clawfleet)",
            path.display()
        );
        path
    }

    fn runtime(data_dir: &std::path::Path) -> LocalRuntime {
        LocalRuntime::new(LocalRuntimeConfig {
            data_dir: data_dir.to_path_buf(),
            executable: clawfleet_executable(),
            openclaw: OpenclawCommand {
                program: "/bin/echo".into(),
                path_prefix: Vec::new(),
                plugin_paths: Vec::new(),
            },
            port_base: 30000,
            start_timeout: Duration::from_secs(5),
            stop_grace: Duration::from_secs(1),
            vnc: false,
        })
        .unwrap()
    }

    fn stopped_spec(id: &str) -> InstanceSpec {
        InstanceSpec {
            id: InstanceId::parse(id).unwrap(),
            plan: Plan::Free,
            desired_state: DesiredState::Stopped,
            model: String::new(),
            gateway_token: "gateway-token".into(),
            secrets: [("ANTHROPIC_API_KEY".to_string(), "sk-test".to_string())].into(),
        }
    }

    fn exec_request(script: &str) -> ExecRequest {
        ExecRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            stdin: b"from stdin".to_vec(),
            timeout: Duration::from_secs(5),
            output_limit_bytes: 64,
        }
    }

    #[tokio::test]
    async fn exec_runs_inside_the_instance_environment_only() {
        let data = tempfile::tempdir().unwrap();
        let runtime = runtime(data.path());
        let spec = stopped_spec("alice");
        runtime.apply(&spec).await.unwrap();
        let output = runtime
            .exec(&spec.id, exec_request("cat; echo; echo $OPENCLAW_STATE_DIR; echo $ANTHROPIC_API_KEY; echo ${OPENCLAW_MANAGER_API_KEY:-unset}; exit 3"))
            .await
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(output.exit_code, 3);
        assert_eq!(lines[0], "from stdin");
        assert!(lines[1].ends_with("instances/alice/state"), "{stdout}");
        assert_eq!(lines[2], "sk-test");
        // The platform's own credentials never reach an instance.
        assert_eq!(lines[3], "unset");
        runtime.shutdown().await;
    }

    #[tokio::test]
    async fn exec_output_is_capped_and_slow_commands_time_out() {
        let data = tempfile::tempdir().unwrap();
        let runtime = runtime(data.path());
        let spec = stopped_spec("bob");
        runtime.apply(&spec).await.unwrap();
        let output = runtime
            .exec(&spec.id, exec_request("head -c 1000 /dev/zero"))
            .await
            .unwrap();
        assert_eq!(output.stdout.len(), 64);
        assert!(output.truncated);
        let mut slow = exec_request("sleep 30");
        slow.timeout = Duration::from_millis(200);
        let output = runtime.exec(&spec.id, slow).await.unwrap();
        assert!(output.timed_out);
        let unknown = InstanceId::parse("nobody").unwrap();
        assert!(matches!(
            runtime.exec(&unknown, exec_request("true")).await,
            Err(RuntimeError::NotFound(_))
        ));
        runtime.shutdown().await;
    }

    #[tokio::test]
    async fn a_stopped_instance_reports_stopped_and_purging_removes_its_data() {
        let data = tempfile::tempdir().unwrap();
        let runtime = runtime(data.path());
        let spec = stopped_spec("carol");
        runtime.apply(&spec).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while runtime.observe(&spec.id).phase != crate::model::Phase::Stopped {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(matches!(
            runtime.gateway_endpoint(&spec.id).await,
            Err(RuntimeError::NotRunning { .. })
        ));
        let root = data.path().join("instances").join("carol");
        assert!(root.exists());
        runtime
            .delete(&spec.id, DataRetention::Purge)
            .await
            .unwrap();
        assert!(!root.exists());
        assert_eq!(
            runtime.observe(&spec.id).phase,
            crate::model::Phase::Unknown
        );
    }

    /// A gateway left running by an earlier platform process (only its pid file tells
    /// of it) is stopped when the instance is deleted, whether its data stays or not.
    #[tokio::test]
    async fn deleting_an_orphan_stops_the_gateway_an_earlier_process_left_running() {
        use std::os::unix::process::CommandExt;
        let data = tempfile::tempdir().unwrap();
        let runtime = runtime(data.path());
        for (id, retention) in [
            ("kept", DataRetention::Keep),
            ("gone", DataRetention::Purge),
        ] {
            let id = InstanceId::parse(id).unwrap();
            let layout = runtime.layout(&id);
            std::fs::create_dir_all(&layout.root).unwrap();
            let mut orphan = std::process::Command::new("sleep")
                .arg("60")
                .current_dir(&layout.root)
                .process_group(0)
                .spawn()
                .unwrap();
            std::fs::write(layout.pid_file(), orphan.id().to_string()).unwrap();
            assert!(runtime.known_instances().contains(&id));
            runtime.delete(&id, retention).await.unwrap();
            let status = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if let Some(status) = orphan.try_wait().unwrap() {
                        return status;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("the orphaned gateway was stopped");
            assert!(!status.success());
            assert!(!layout.pid_file().exists());
            assert_eq!(layout.root.exists(), retention == DataRetention::Keep);
            assert!(!runtime.known_instances().contains(&id));
        }
    }

    #[tokio::test]
    async fn a_gateway_that_cannot_start_is_an_error_with_the_reason() {
        let data = tempfile::tempdir().unwrap();
        let mut config_runtime = runtime(data.path());
        // `false` exits 1 at once: a crash loop.
        config_runtime.settings = Arc::new(LocalSettings {
            executable: clawfleet_executable(),
            openclaw: OpenclawCommand {
                program: "/bin/false".into(),
                path_prefix: Vec::new(),
                plugin_paths: Vec::new(),
            },
            ports: PortAllocator::new(30100),
            start_timeout: Duration::from_secs(5),
            stop_grace: Duration::from_secs(1),
            display: false,
        });
        let mut spec = stopped_spec("dave");
        spec.desired_state = DesiredState::Running;
        config_runtime.apply(&spec).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let observed = config_runtime.observe(&spec.id);
            if observed.phase == crate::model::Phase::Error {
                assert!(
                    observed.reason.contains("exited with status 1"),
                    "{}",
                    observed.reason
                );
                assert_eq!(
                    observed.pods[0].state.as_ref().unwrap().reason,
                    "CrashLoopBackOff"
                );
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{observed:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        config_runtime.shutdown().await;
    }

    /// A stand-in gateway: records its `DISPLAY` and answers `/readyz` with 200.
    const FAKE_GATEWAY: &str = r#"#!/bin/sh
printf '%s' "$DISPLAY" > "$HOME/display"
exec /usr/bin/python3 -c '
import http.server, sys
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ready).serve_forever()
' "$6"
"#;

    #[tokio::test]
    async fn a_running_gateway_gets_a_virtual_display_and_a_vnc_url_until_it_stops() {
        use std::os::unix::fs::PermissionsExt;
        use tokio::{
            io::{AsyncReadExt, AsyncWriteExt},
            net::TcpStream,
        };

        assert!(
            clawfleet_instance::display::VncTools::detect().is_some(),
            "this test needs Xvfb, x11vnc and websockify on PATH: \
             apt-get install -y xvfb x11vnc websockify novnc"
        );
        let data = tempfile::tempdir().unwrap();
        let program = data.path().join("fake-openclaw");
        std::fs::write(&program, FAKE_GATEWAY).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let runtime = LocalRuntime::new(LocalRuntimeConfig {
            data_dir: data.path().to_path_buf(),
            executable: clawfleet_executable(),
            openclaw: OpenclawCommand {
                program,
                path_prefix: Vec::new(),
                plugin_paths: Vec::new(),
            },
            port_base: 25100,
            start_timeout: Duration::from_secs(5),
            stop_grace: Duration::from_secs(1),
            vnc: true,
        })
        .unwrap();
        let mut spec = stopped_spec("erin");
        spec.desired_state = DesiredState::Running;
        runtime.apply(&spec).await.unwrap();

        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        let endpoint = loop {
            if let Ok(endpoint) = runtime.gateway_endpoint(&spec.id).await
                && !endpoint.vnc_url.is_empty()
            {
                break endpoint;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                runtime.observe(&spec.id)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let gateway_port: u16 = endpoint
            .gateway_url
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let websocket_port = gateway_port + ports::WEBSOCKET_PORT_OFFSET;
        assert_eq!(endpoint.vnc_url, format!("ws://127.0.0.1:{websocket_port}"));
        let display = std::fs::read_to_string(data.path().join("instances/erin/home/display"))
            .expect("the gateway recorded its DISPLAY");
        let number: u32 = display
            .strip_prefix(':')
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("DISPLAY is {display:?}"));
        let lock = std::path::PathBuf::from(format!("/tmp/.X{number}-lock"));
        assert!(lock.exists());
        // RFB reaches the platform through websockify only: nothing listens on x11vnc's
        // usual TCP ports.
        let mut websocket = TcpStream::connect(("127.0.0.1", websocket_port))
            .await
            .unwrap();
        websocket
            .write_all(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                  Sec-WebSocket-Protocol: binary\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answer = vec![0u8; 1024];
        let read = websocket.read(&mut answer).await.unwrap();
        assert!(
            answer[..read].starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&answer[..read])
        );
        drop(websocket);
        for port in [5900, 5900 + number] {
            assert!(
                TcpStream::connect(("127.0.0.1", u16::try_from(port).unwrap()))
                    .await
                    .is_err(),
                "something listens on {port}"
            );
        }

        // Stopping the instance takes its display down with it.
        spec.desired_state = DesiredState::Stopped;
        runtime.apply(&spec).await.unwrap();
        while runtime.observe(&spec.id).phase != crate::model::Phase::Stopped {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!lock.exists());
        assert!(
            TcpStream::connect(("127.0.0.1", websocket_port))
                .await
                .is_err()
        );
        runtime
            .delete(&spec.id, DataRetention::Purge)
            .await
            .unwrap();
    }
}
