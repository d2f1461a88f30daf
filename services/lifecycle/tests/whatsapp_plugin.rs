//! The WhatsApp plugin installed once in the toolchain is loaded by a real gateway
//! through the state dir the local runtime prepares, and its login methods answer
//! within their `timeoutMs`, with or without a route to WhatsApp's servers.
//!
//! Needs the toolchain (`clawfleet toolchain`, which `.ci/run` runs) at
//! `CLAWFLEET_TOOLCHAIN_DIR`, or at `.clawfleet/toolchain` in the workspace.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clawfleet_gateway_bridge::{CallError, ConnectOptions, Connection};
use clawfleet_instance::state_dir::{PlatformConfig, platform_keys, prepare_state_dir};
use clawfleet_lifecycle::runtime::local::readiness::{self, Readiness};
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use serde_json::{Value, json};

/// How long a gateway may take to become ready on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// What a login method may take beyond its `timeoutMs`.
const SLACK: Duration = Duration::from_secs(6);
/// The answer of a gateway without the plugin.
const NO_PROVIDER: &str = "provider is not available";

fn toolchain_dir() -> PathBuf {
    let dir = std::env::var_os("CLAWFLEET_TOOLCHAIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.clawfleet/toolchain")
        });
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Where `clawfleet toolchain` installs the plugin (see `services/clawfleet/src/toolchain.rs`).
fn whatsapp_plugin_dir(toolchain: &Path) -> PathBuf {
    toolchain.join("plugins/node_modules/@openclaw/whatsapp")
}

fn node_bin_dir(toolchain: &Path) -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x64",
    };
    toolchain
        .join("node_modules")
        .join(format!("node-linux-{arch}"))
        .join("bin")
}

/// A gateway process group, killed when dropped.
struct Gateway {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Gateway {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_gateway(toolchain: &Path, root: &Path, state: &Path) -> Gateway {
    let openclaw = toolchain.join("node_modules/.bin/openclaw");
    assert!(
        openclaw.exists(),
        "no openclaw at {}: run `cargo run -p clawfleet -- toolchain` first",
        openclaw.display()
    );
    let home = root.join("home");
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let system_path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let mut paths = vec![node_bin_dir(toolchain)];
    paths.extend(std::env::split_paths(&system_path));
    let log = root.join("gateway.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let port = free_port();
    let child = Command::new(&openclaw)
        .args(["gateway", "run", "--bind", "loopback", "--port"])
        .arg(port.to_string())
        .env_clear()
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env("OPENCLAW_STATE_DIR", state)
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .unwrap();
    Gateway { child, port, log }
}

async fn wait_ready(gateway: &mut Gateway) {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            panic!(
                "the gateway exited with {status} before it was ready:\n{}",
                gateway.log_tail()
            );
        }
        let readiness = readiness::probe(gateway.port, Duration::from_secs(2)).await;
        if readiness == Readiness::Ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway was not ready within {READY_TIMEOUT:?} ({readiness:?}):\n{}",
            gateway.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Calls `method` and returns its answer (an error as `{"error": ...}`) and how long it took.
async fn timed_call(
    connection: &Connection,
    method: &str,
    params: Value,
    timeout_ms: u64,
) -> (Value, Duration) {
    let started = Instant::now();
    // Far beyond the expected answer time, so that a hang shows as one.
    let deadline = Duration::from_millis(timeout_ms) + Duration::from_secs(30);
    let answer = match connection.call(method, params, deadline).await {
        Ok(payload) => payload,
        Err(CallError::Gateway(error)) => json!({ "error": error }),
        Err(error) => panic!("{method} did not answer: {error}"),
    };
    (answer, started.elapsed())
}

fn message_of(answer: &Value) -> &str {
    answer
        .get("message")
        .or_else(|| answer.pointer("/error/message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_loads_the_shared_whatsapp_plugin_and_login_answers_in_time() {
    let toolchain = toolchain_dir();
    let plugin = whatsapp_plugin_dir(&toolchain);
    assert!(
        plugin.join("openclaw.plugin.json").exists(),
        "the WhatsApp plugin is not installed at {}: run `cargo run -p clawfleet -- toolchain` \
         (CI's .ci/run does), which installs it beside openclaw",
        plugin.display()
    );
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let token = format!("whatsapp-test-{}", std::process::id());
    let platform = PlatformConfig {
        base: platform_keys("", &[]),
        gateway_token: token.clone().into(),
        plugin_paths: vec![plugin.clone()],
    };
    prepare_state_dir(&state, &platform).unwrap();
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("openclaw.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["plugins"]["load"]["paths"],
        json!([plugin.to_str().unwrap()])
    );
    assert_eq!(config["plugins"]["entries"]["whatsapp"]["enabled"], true);

    let mut gateway = spawn_gateway(&toolchain, root.path(), &state);
    wait_ready(&mut gateway).await;
    let (connection, _hello) = Connection::open(&ConnectOptions {
        url: format!("ws://127.0.0.1:{}", gateway.port),
        token: token.clone().into(),
        identity: None,
        device_token: None,
        max_in_flight: 8,
        connect_timeout: Duration::from_secs(20),
        extra_headers: Vec::new(),
    })
    .await
    .unwrap_or_else(|error| panic!("connect: {error}\n{}", gateway.log_tail()));

    // Without a route to WhatsApp this is a clear failure message; with one, a QR.
    let start_timeout_ms = 10_000;
    let (start, took) = timed_call(
        &connection,
        "web.login.start",
        json!({"force": true, "timeoutMs": start_timeout_ms}),
        start_timeout_ms,
    )
    .await;
    eprintln!(
        "web.login.start answered in {took:?}: {}",
        abbreviated(&start)
    );
    assert!(
        took <= Duration::from_millis(start_timeout_ms) + SLACK,
        "web.login.start took {took:?}"
    );
    assert!(
        !message_of(&start).contains(NO_PROVIDER),
        "the gateway did not load the WhatsApp plugin: {start}\n{}",
        gateway.log_tail()
    );
    let qr = start.get("qrDataUrl").and_then(Value::as_str);
    match qr {
        Some(qr) => assert!(qr.starts_with("data:image/png;base64,"), "{start}"),
        None => assert!(
            !message_of(&start).is_empty() && start.get("connected") != Some(&json!(true)),
            "neither a QR nor an error message: {start}"
        ),
    }

    let wait_timeout_ms = 3_000;
    let (wait, took) = timed_call(
        &connection,
        "web.login.wait",
        json!({"timeoutMs": wait_timeout_ms}),
        wait_timeout_ms,
    )
    .await;
    eprintln!(
        "web.login.wait answered in {took:?}: {}",
        abbreviated(&wait)
    );
    assert!(
        took <= Duration::from_millis(wait_timeout_ms) + SLACK,
        "web.login.wait took {took:?}"
    );
    assert!(!message_of(&wait).contains(NO_PROVIDER), "{wait}");
    // Nobody scans the QR here.
    assert_eq!(wait["connected"], false, "{wait}");
    assert!(!message_of(&wait).is_empty(), "{wait}");

    let (status, took) = timed_call(
        &connection,
        "channels.status",
        json!({"channel": "whatsapp"}),
        5_000,
    )
    .await;
    eprintln!("channels.status answered in {took:?}");
    let whatsapp = &status["channels"]["whatsapp"];
    assert!(
        whatsapp.is_object(),
        "channels.status knows no whatsapp: {status}"
    );
    assert_eq!(whatsapp["connected"], false, "{whatsapp}");
    connection.close().await;
}

/// The answer with a QR data URL shortened, for the test log.
fn abbreviated(answer: &Value) -> String {
    let mut shown = answer.clone();
    if let Some(qr) = shown.get_mut("qrDataUrl")
        && let Some(text) = qr.as_str()
    {
        *qr = json!(format!(
            "{}… ({} chars)",
            &text[..30.min(text.len())],
            text.len()
        ));
    }
    shown.to_string()
}
