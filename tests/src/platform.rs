//! A running `clawfleet up` with its own data dir, ports and API key.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};

use crate::tools;

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
    /// The credential services present to each other; lets tests call internal RPCs.
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

/// A running platform; stopped (with its gateways) when dropped.
pub struct Platform {
    child: Option<Child>,
    pub options: PlatformOptions,
    /// `http://127.0.0.1:<port>` of the edge.
    pub edge_url: String,
    /// `127.0.0.1:<port>` of the lifecycle gRPC service.
    pub lifecycle_address: String,
    /// `127.0.0.1:<port>` of the gateway bridge's gRPC service.
    pub bridge_address: String,
    /// `127.0.0.1:<port>` of the channels gRPC service.
    pub channels_address: String,
}

impl Platform {
    /// Starts `clawfleet up` and waits until it says it is up.
    pub fn start(options: PlatformOptions) -> anyhow::Result<Platform> {
        std::fs::create_dir_all(&options.data_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(options.data_dir.join("platform.log"))?;
        let mut command = Command::new(tools::clawfleet_bin());
        command
            .arg("up")
            .env("CLAWFLEET_DATA_DIR", &options.data_dir)
            .env("PORT", "0")
            .env("CLAWFLEET_LIFECYCLE_PORT", "0")
            .env("CLAWFLEET_BRIDGE_PORT", "0")
            .env("CLAWFLEET_CHANNELS_PORT", "0")
            .env("CLAWFLEET_AUTH_PORT", "0")
            .env("JWT_SECRET", TEST_JWT_SECRET)
            // Tests sign in many times from one address; the limit has its own test.
            .env("EDGE_AUTH_RATE_PER_MINUTE", "100000")
            .env("EDGE_DOCS", "true")
            .env_remove("DATABASE_URL")
            .env("OPENCLAW_MANAGER_API_KEY", &options.api_key)
            .env("CLAWFLEET_INTERNAL_TOKEN", &options.internal_token)
            .env("CLAWFLEET_TOOLCHAIN_DIR", tools::toolchain_dir())
            .env(
                "CLAWFLEET_GATEWAY_PORT_BASE",
                options.gateway_port_base.to_string(),
            )
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (key, value) in &options.extra_env {
            command.env(key, value);
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
            child: Some(child),
            options,
            edge_url: String::new(),
            lifecycle_address: String::new(),
            bridge_address: String::new(),
            channels_address: String::new(),
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

    /// The platform's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(|child| child.id())
            .unwrap_or_default()
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

    /// Stops the platform with SIGTERM (as an operator would) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let status = self.stop_child()?;
        Ok(status)
    }

    fn stop_child(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            anyhow::bail!("platform already stopped");
        };
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
        if self.child.is_some() {
            let _ = self.stop_child();
        }
        self.kill_leftover_gateways();
    }
}
