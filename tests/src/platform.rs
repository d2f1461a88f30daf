//! A running platform with its own data dir, ports and API key: by default the mesh of
//! `clawfleet up` started inside the test process (real gRPC on loopback, real gateways),
//! or the real `clawfleet up` binary for the tests that kill or restart the process.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use clawfleet::{
    mesh::{Mesh, MeshAddresses},
    service_credentials::DerivedCredentials,
};
use clawfleet_kit::{
    config::{EnvMap, LayeredEnv, ProcessEnv},
    principal::Principal,
    service_token::derive_service_token,
    shutdown::ShutdownToken,
};

use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};

use crate::{log_sink, tools};

/// How long `clawfleet up` may take to print its ready line (a first run installs openclaw).
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long it may take to stop after SIGTERM (it stops its gateways first).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Options for [`Platform::start`].
/// The access-token secret of platforms started by tests (so tests can mint tokens).
pub const TEST_JWT_SECRET: &str = "test-jwt-secret-0123456789-0123456789-abcdef";

#[derive(Debug, Clone)]
pub struct PlatformOptions {
    pub data_dir: PathBuf,
    pub api_key: String,
    /// The root the platform derives each calling service's token from; tests call
    /// internal RPCs with [`PlatformOptions::service_token`].
    pub internal_token: String,
    /// First port handed to gateways; distinct per test binary keeps them apart.
    pub gateway_port_base: u16,
    pub extra_env: Vec<(String, String)>,
}

impl PlatformOptions {
    pub fn new(data_dir: &Path, gateway_port_base: u16) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            api_key: "test-operator-key-0123456789".to_owned(),
            internal_token: "test-internal-token-0123456789".to_owned(),
            gateway_port_base,
            extra_env: Vec::new(),
        }
    }
}

impl PlatformOptions {
    /// The token `service` (edge, bridge or channels) presents, as the platform derives it.
    pub fn service_token(&self, service: Principal) -> String {
        derive_service_token(&self.internal_token, service).expect("the test root is long enough")
    }

    /// The digests line every gRPC service of this platform holds.
    pub fn service_digests(&self) -> String {
        DerivedCredentials::from_root(&self.internal_token)
            .expect("the test root is long enough")
            .digests
            .to_string()
    }
}

/// How the platform runs.
enum Runner {
    /// The mesh on a thread of this process with its own async runtime.
    InProcess {
        thread: JoinHandle<anyhow::Result<()>>,
        shutdown: ShutdownToken,
    },
    /// The real `clawfleet up` binary.
    Binary(Child),
}

/// A running platform; stopped (with its gateways) when dropped.
pub struct Platform {
    runner: Option<Runner>,
    pub options: PlatformOptions,
    /// `http://127.0.0.1:<port>` of the edge.
    pub edge_url: String,
    /// `127.0.0.1:<port>` of the lifecycle gRPC service.
    pub lifecycle_address: String,
    /// `127.0.0.1:<port>` of the gateway bridge's gRPC service.
    pub bridge_address: String,
    /// `127.0.0.1:<port>` of the channels gRPC service.
    pub channels_address: String,
    /// `127.0.0.1:<port>` of the auth gRPC service.
    pub auth_address: String,
    /// `http://127.0.0.1:<port>/metrics` of the extra metrics port, when the platform runs
    /// in this process with `CLAWFLEET_METRICS_PORT` set (the edge's `/metrics` serves
    /// the same registry).
    pub metrics_url: Option<String>,
}

impl PlatformOptions {
    /// The environment `clawfleet up` gets from a test, as `(key, value)` pairs; an empty
    /// value unsets the key (`DATABASE_URL`: tests use SQLite; no trace export).
    fn environment(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = [
            ("CLAWFLEET_DATA_DIR", self.data_dir.display().to_string()),
            ("PORT", "0".into()),
            ("CLAWFLEET_LIFECYCLE_PORT", "0".into()),
            ("CLAWFLEET_BRIDGE_PORT", "0".into()),
            ("CLAWFLEET_CHANNELS_PORT", "0".into()),
            ("CLAWFLEET_AUTH_PORT", "0".into()),
            ("JWT_SECRET", TEST_JWT_SECRET.into()),
            // Tests sign in many times from one address; the limit has its own test.
            ("EDGE_AUTH_RATE_PER_MINUTE", "100000".into()),
            ("EDGE_REFRESH_RATE_PER_MINUTE", "100000".into()),
            ("EDGE_APP_RATE_PER_MINUTE", "100000".into()),
            ("EDGE_DOCS", "true".into()),
            ("DATABASE_URL", String::new()),
            ("OPENCLAW_MANAGER_API_KEY", self.api_key.clone()),
            ("CLAWFLEET_INTERNAL_TOKEN", self.internal_token.clone()),
            (
                "CLAWFLEET_TOOLCHAIN_DIR",
                tools::toolchain_dir().display().to_string(),
            ),
            // Instances run as `clawfleet instance run`; inside the test process the
            // running executable is the test binary, so name the built one.
            (
                "CLAWFLEET_EXECUTABLE",
                tools::clawfleet_bin().display().to_string(),
            ),
            (
                "CLAWFLEET_GATEWAY_PORT_BASE",
                self.gateway_port_base.to_string(),
            ),
            ("RUST_LOG", "info".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", String::new()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        pairs.extend(self.extra_env.iter().cloned());
        pairs
    }
}

impl Platform {
    /// Starts the platform's mesh inside this process and waits until it serves.
    pub fn start(options: PlatformOptions) -> anyhow::Result<Platform> {
        std::fs::create_dir_all(&options.data_dir)?;
        log_sink::log_to(&options.data_dir.join("platform.log"))?;
        let overrides = EnvMap::from_pairs(options.environment());
        let shutdown = ShutdownToken::new();
        let (ready_sender, ready) = mpsc::channel::<Result<MeshAddresses, String>>();
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new().name("platform".into()).spawn(
            move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("platform-worker")
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let env = LayeredEnv {
                        overrides: &overrides,
                        fallback: &ProcessEnv,
                    };
                    match Mesh::start(&env, stop).await {
                        Ok(mesh) => {
                            let _ = ready_sender.send(Ok(mesh.addresses.clone()));
                            mesh.wait().await
                        }
                        Err(error) => {
                            let _ = ready_sender.send(Err(format!("{error:#}")));
                            Err(error)
                        }
                    }
                })
            },
        )?;
        let addresses = match ready.recv_timeout(START_TIMEOUT) {
            Ok(Ok(addresses)) => addresses,
            Ok(Err(error)) => anyhow::bail!("the platform did not start: {error}"),
            Err(_) => anyhow::bail!("the platform did not start within {START_TIMEOUT:?}"),
        };
        Ok(Platform {
            runner: Some(Runner::InProcess { thread, shutdown }),
            options,
            edge_url: format!("http://{}", addresses.edge),
            lifecycle_address: addresses.lifecycle.to_string(),
            bridge_address: addresses.bridge.to_string(),
            channels_address: addresses.channels.to_string(),
            auth_address: addresses.auth.to_string(),
            metrics_url: addresses
                .metrics
                .map(|address| format!("http://{address}/metrics")),
        })
    }

    /// Starts the real `clawfleet up` binary and waits until it says it is up.
    pub fn start_binary(options: PlatformOptions) -> anyhow::Result<Platform> {
        std::fs::create_dir_all(&options.data_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(options.data_dir.join("platform.log"))?;
        let mut command = Command::new(tools::clawfleet_bin());
        command
            .arg("up")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (key, value) in options.environment() {
            if value.is_empty() {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_sender.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut platform = Platform {
            runner: Some(Runner::Binary(child)),
            options,
            edge_url: String::new(),
            lifecycle_address: String::new(),
            bridge_address: String::new(),
            channels_address: String::new(),
            auth_address: String::new(),
            metrics_url: None,
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(_) => anyhow::bail!(
                    "clawfleet up did not come up; log:\n{}",
                    platform.log_tail()
                ),
            };
            if let Some(rest) = line.strip_prefix("clawfleet is up: ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let after = |label: &[&str]| {
                    words
                        .windows(label.len() + 1)
                        .find(|window| window[..label.len()] == *label)
                        .map(|window| window[label.len()].to_owned())
                        .unwrap_or_default()
                };
                platform.edge_url = after(&["edge"]);
                platform.lifecycle_address = after(&["lifecycle", "grpc"]);
                platform.bridge_address = after(&["bridge", "grpc"]);
                platform.channels_address = after(&["channels", "grpc"]);
                platform.auth_address = after(&["auth", "grpc"]);
                return Ok(platform);
            }
        }
    }

    /// The last lines of the platform's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.options.data_dir.join("platform.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The platform's process id (this process when it runs in-process).
    pub fn pid(&self) -> u32 {
        match &self.runner {
            Some(Runner::Binary(child)) => child.id(),
            _ => std::process::id(),
        }
    }

    /// Where an instance's files live.
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.options.data_dir.join("instances").join(id)
    }

    /// The pid of an instance's running gateway, from its pid file.
    pub fn gateway_pid(&self, id: &str) -> Option<i32> {
        std::fs::read_to_string(self.instance_dir(id).join("gateway.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the platform (SIGTERM for the binary, as an operator would) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.stop_runner()
    }

    fn stop_runner(&mut self) -> anyhow::Result<ExitStatus> {
        match self.runner.take() {
            None => anyhow::bail!("platform already stopped"),
            Some(Runner::Binary(child)) => stop_child(child),
            Some(Runner::InProcess { thread, shutdown }) => {
                shutdown.cancel();
                let deadline = Instant::now() + STOP_TIMEOUT;
                while !thread.is_finished() {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "the in-process platform did not stop within {STOP_TIMEOUT:?}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                let code = match thread.join() {
                    Ok(Ok(())) => 0,
                    Ok(Err(error)) => {
                        eprintln!("the in-process platform failed: {error:#}");
                        1
                    }
                    Err(_) => 101,
                };
                Ok(ExitStatus::from_raw(code << 8))
            }
        }
    }

    /// Kills gateways that outlived their platform (after a crash or a failed test).
    fn kill_leftover_gateways(&self) {
        let Ok(entries) = std::fs::read_dir(self.options.data_dir.join("instances")) else {
            return;
        };
        for entry in entries.flatten() {
            let pid = std::fs::read_to_string(entry.path().join("gateway.pid"))
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if self.runner.is_some() {
            let _ = self.stop_runner();
        }
        self.kill_leftover_gateways();
    }
}

fn stop_child(mut child: Child) -> anyhow::Result<ExitStatus> {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Ok(child.wait()?);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
