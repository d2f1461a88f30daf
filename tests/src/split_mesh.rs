//! The platform as it runs on Kubernetes: every service its own `clawfleet <service>`
//! process, edge, auth, channels and the bridge each as several replicas. Replica `r` of
//! the edge calls replica `r` of auth, channels and the bridge, so a user whose requests
//! land on different edges also crosses every other service's replicas. Auth replicas
//! share one PostgreSQL database, bridge replicas one device identity (the Secret of
//! `deploy/`), and every process gets the same credentials, as the manifests give them.
//! The lifecycle runs once, on the local runtime (its own replication is the failover
//! test's subject).

use std::{
    fs::Permissions,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use clawfleet::service_credentials::DerivedCredentials;
use clawfleet_kit::principal::Principal;
use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};

use crate::{platform::TEST_JWT_SECRET, scenario::GATEWAY_READY_TIMEOUT, tools};

/// How long a process may take to listen (the lifecycle runs migrations first).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);

/// Ports from `port_base`: one block of ten per service, a replica's port is its index in it.
mod offsets {
    pub const LIFECYCLE: u16 = 0;
    pub const LIFECYCLE_METRICS: u16 = 1;
    pub const AUTH: u16 = 10;
    pub const AUTH_METRICS: u16 = 20;
    pub const BRIDGE: u16 = 30;
    pub const BRIDGE_METRICS: u16 = 40;
    pub const CHANNELS: u16 = 50;
    pub const CHANNELS_METRICS: u16 = 60;
    pub const EDGE: u16 = 70;
}

/// What [`SplitMesh::start`] needs.
pub struct SplitMeshOptions {
    pub data_dir: PathBuf,
    /// The first of 80 consecutive loopback ports the processes listen on.
    pub port_base: u16,
    /// First port handed to gateways.
    pub gateway_port_base: u16,
    /// Replicas of edge, auth, channels and the bridge (1 to 10).
    pub replicas: u16,
    /// The PostgreSQL database every auth replica shares.
    pub auth_database_url: String,
    /// More environment for the channels replicas (a Telegram stand-in's API root).
    pub channels_env: Vec<(String, String)>,
    /// More environment for every process (service TLS settings).
    pub common_env: Vec<(String, String)>,
}

/// One `clawfleet <service>` process.
pub struct ServiceProcess {
    /// `edge-1`, `auth-0`, ...
    pub name: String,
    /// `127.0.0.1:<port>` it serves on.
    pub address: String,
    log: PathBuf,
    child: Option<Child>,
}

impl ServiceProcess {
    fn start(
        service: &str,
        replica: u16,
        port: u16,
        environment: &[(String, String)],
        data_dir: &Path,
    ) -> anyhow::Result<ServiceProcess> {
        let name = format!("{service}-{replica}");
        let log = data_dir.join(format!("{name}.log"));
        let child = Command::new(tools::clawfleet_bin())
            .arg(service)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(environment.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            // Its own process group, so a stop reaches every child it started.
            .process_group(0)
            .spawn()?;
        let process = ServiceProcess {
            name,
            address: format!("127.0.0.1:{port}"),
            log,
            child: Some(child),
        };
        process.wait_listening()?;
        Ok(process)
    }

    fn wait_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while std::net::TcpStream::connect(&self.address).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not listen on {} within {LISTEN_TIMEOUT:?}:\n{}",
                self.name,
                self.address,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Sends SIGTERM (as the kubelet does) and waits up to `bound` for the exit: the exit
    /// status and how long it took, or `None` when it outlived the bound (then killed).
    pub fn terminate(&mut self, bound: Duration) -> anyhow::Result<Option<(ExitStatus, Duration)>> {
        let Some(mut child) = self.child.take() else {
            anyhow::bail!("{} already stopped", self.name);
        };
        let started = Instant::now();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        while started.elapsed() < bound {
            if let Some(status) = child.try_wait()? {
                return Ok(Some((status, started.elapsed())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        Ok(None)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Every process of a split platform. Dropping it stops them, edges first.
pub struct SplitMesh {
    pub api_key: String,
    pub data_dir: PathBuf,
    pub edges: Vec<ServiceProcess>,
    pub channels: Vec<ServiceProcess>,
    pub bridges: Vec<ServiceProcess>,
    pub auths: Vec<ServiceProcess>,
    pub lifecycle: ServiceProcess,
    /// The token each calling service presents, for tests that call as one.
    pub credentials: DerivedCredentials,
}

impl SplitMesh {
    /// Starts the lifecycle, then each tier's replicas, waiting until each listens.
    pub fn start(options: SplitMeshOptions) -> anyhow::Result<SplitMesh> {
        anyhow::ensure!((1..=10).contains(&options.replicas), "1 to 10 replicas");
        std::fs::create_dir_all(&options.data_dir)?;
        // Local tenants run as users of their own and must pass through to their folders.
        std::fs::set_permissions(&options.data_dir, Permissions::from_mode(0o711))?;
        let credentials = DerivedCredentials::from_root("split-mesh-internal-token-0123456789")?;
        let api_key = "split-mesh-operator-key-0123456789".to_owned();
        let port = |offset: u16, replica: u16| options.port_base + offset + replica;
        let address = |offset: u16, replica: u16| format!("127.0.0.1:{}", port(offset, replica));
        let token = |service: Principal| {
            credentials
                .token(service)
                .expect("every calling service has a token")
                .to_owned()
        };
        let (edge_token, bridge_token, channels_token) = (
            token(Principal::Edge),
            token(Principal::Bridge),
            token(Principal::Channels),
        );
        let common: Vec<(String, String)> = [
            ("OPENCLAW_MANAGER_API_KEY", api_key.clone()),
            (
                "CLAWFLEET_SERVICE_TOKEN_DIGESTS",
                credentials.digests.to_string(),
            ),
            ("CLAWFLEET_LISTEN_HOST", "127.0.0.1".into()),
            ("CLAWFLEET_LOG_FORMAT", "text".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .chain(options.common_env.iter().cloned())
        .collect();
        let with = |extra: &[(&str, String)]| {
            let mut environment = common.clone();
            environment.extend(
                extra
                    .iter()
                    .map(|(key, value)| ((*key).to_owned(), value.clone())),
            );
            environment
        };
        let dir = |name: String| {
            let path = options.data_dir.join(name);
            std::fs::create_dir_all(&path).map(|()| path)
        };

        let lifecycle_dir = dir("lifecycle".into())?;
        let lifecycle = ServiceProcess::start(
            "lifecycle",
            0,
            port(offsets::LIFECYCLE, 0),
            &with(&[
                ("CLAWFLEET_DATA_DIR", lifecycle_dir.display().to_string()),
                (
                    "CLAWFLEET_LIFECYCLE_PORT",
                    port(offsets::LIFECYCLE, 0).to_string(),
                ),
                (
                    "CLAWFLEET_LIFECYCLE_METRICS_PORT",
                    port(offsets::LIFECYCLE_METRICS, 0).to_string(),
                ),
                ("CLAWFLEET_RUNTIME", "local".into()),
                (
                    "CLAWFLEET_TOOLCHAIN_DIR",
                    tools::toolchain_dir().display().to_string(),
                ),
                (
                    "CLAWFLEET_GATEWAY_PORT_BASE",
                    options.gateway_port_base.to_string(),
                ),
            ]),
            &options.data_dir,
        )?;

        // One identity for every bridge replica, as deploy/ mounts it from one Secret.
        let identity = options.data_dir.join("bridge-identity.json");
        let mut mesh = SplitMesh {
            api_key: api_key.clone(),
            data_dir: options.data_dir.clone(),
            edges: Vec::new(),
            channels: Vec::new(),
            bridges: Vec::new(),
            auths: Vec::new(),
            lifecycle,
            credentials,
        };
        for replica in 0..options.replicas {
            let auth_dir = dir(format!("auth-{replica}"))?;
            mesh.auths.push(ServiceProcess::start(
                "auth",
                replica,
                port(offsets::AUTH, replica),
                &with(&[
                    ("CLAWFLEET_DATA_DIR", auth_dir.display().to_string()),
                    (
                        "CLAWFLEET_AUTH_PORT",
                        port(offsets::AUTH, replica).to_string(),
                    ),
                    (
                        "CLAWFLEET_AUTH_METRICS_PORT",
                        port(offsets::AUTH_METRICS, replica).to_string(),
                    ),
                    ("DATABASE_URL", options.auth_database_url.clone()),
                    ("JWT_SECRET", TEST_JWT_SECRET.into()),
                ]),
                &options.data_dir,
            )?);
            let bridge_dir = dir(format!("bridge-{replica}"))?;
            mesh.bridges.push(ServiceProcess::start(
                "bridge",
                replica,
                port(offsets::BRIDGE, replica),
                &with(&[
                    ("CLAWFLEET_DATA_DIR", bridge_dir.display().to_string()),
                    (
                        "CLAWFLEET_BRIDGE_PORT",
                        port(offsets::BRIDGE, replica).to_string(),
                    ),
                    (
                        "CLAWFLEET_BRIDGE_METRICS_PORT",
                        port(offsets::BRIDGE_METRICS, replica).to_string(),
                    ),
                    (
                        "CLAWFLEET_BRIDGE_IDENTITY_FILE",
                        identity.display().to_string(),
                    ),
                    ("CLAWFLEET_LIFECYCLE_ADDR", address(offsets::LIFECYCLE, 0)),
                    ("CLAWFLEET_SERVICE_TOKEN", bridge_token.clone()),
                ]),
                &options.data_dir,
            )?);
            mesh.channels.push(ServiceProcess::start(
                "channels",
                replica,
                port(offsets::CHANNELS, replica),
                &with(&[
                    (
                        "CLAWFLEET_CHANNELS_PORT",
                        port(offsets::CHANNELS, replica).to_string(),
                    ),
                    (
                        "CLAWFLEET_CHANNELS_METRICS_PORT",
                        port(offsets::CHANNELS_METRICS, replica).to_string(),
                    ),
                    ("CLAWFLEET_LIFECYCLE_ADDR", address(offsets::LIFECYCLE, 0)),
                    ("CLAWFLEET_BRIDGE_ADDR", address(offsets::BRIDGE, replica)),
                    ("CLAWFLEET_SERVICE_TOKEN", channels_token.clone()),
                ])
                .into_iter()
                .chain(options.channels_env.iter().cloned())
                .collect::<Vec<_>>(),
                &options.data_dir,
            )?);
            mesh.edges.push(ServiceProcess::start(
                "edge",
                replica,
                port(offsets::EDGE, replica),
                &with(&[
                    ("PORT", port(offsets::EDGE, replica).to_string()),
                    ("JWT_SECRET", TEST_JWT_SECRET.into()),
                    ("CLAWFLEET_LIFECYCLE_ADDR", address(offsets::LIFECYCLE, 0)),
                    ("CLAWFLEET_BRIDGE_ADDR", address(offsets::BRIDGE, replica)),
                    (
                        "CLAWFLEET_CHANNELS_ADDR",
                        address(offsets::CHANNELS, replica),
                    ),
                    ("CLAWFLEET_AUTH_ADDR", address(offsets::AUTH, replica)),
                    ("CLAWFLEET_SERVICE_TOKEN", edge_token.clone()),
                    // The per-replica budgets have their own test; these tests sign in often.
                    ("EDGE_AUTH_RATE_PER_MINUTE", "100000".into()),
                    ("EDGE_REFRESH_RATE_PER_MINUTE", "100000".into()),
                    ("EDGE_APP_RATE_PER_MINUTE", "100000".into()),
                ]),
                &options.data_dir,
            )?);
        }
        Ok(mesh)
    }

    /// `http://127.0.0.1:<port>` of edge replica `replica`.
    pub fn edge_url(&self, replica: usize) -> String {
        format!("http://{}", self.edges[replica].address)
    }

    /// Waits until the app user holding `access_token` sees instance `id` running and
    /// ready through edge replica `replica`; fails with every process's log otherwise.
    pub async fn wait_app_instance_running(&self, replica: usize, id: &str, access_token: &str) {
        let url = format!("{}/instances/{id}", self.edge_url(replica));
        let client = crate::http::client();
        let deadline = tokio::time::Instant::now() + GATEWAY_READY_TIMEOUT;
        loop {
            let reply = crate::http::send(
                &client,
                http::Method::GET,
                &url,
                Some(access_token),
                None,
                "",
            )
            .await
            .expect("the edge answers");
            if reply.status == 200
                && reply.json()["phase"] == "running"
                && reply.json()["ready"] == true
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance {id} never ran: {}\n{}",
                String::from_utf8_lossy(&reply.body),
                self.log_tails()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The logs of every process, for failure messages.
    pub fn log_tails(&self) -> String {
        self.processes()
            .map(|process| format!("--- {}\n{}", process.name, process.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn processes(&self) -> impl Iterator<Item = &ServiceProcess> {
        self.edges
            .iter()
            .chain(&self.channels)
            .chain(&self.bridges)
            .chain(&self.auths)
            .chain(std::iter::once(&self.lifecycle))
    }
}

impl Drop for SplitMesh {
    fn drop(&mut self) {
        // Callers before callees, so nothing logs a dead peer on the way down.
        self.edges.clear();
        self.channels.clear();
        self.bridges.clear();
        self.auths.clear();
    }
}
