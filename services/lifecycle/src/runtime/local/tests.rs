use std::time::Duration;

use super::*;
use crate::model::Plan;

/// The built `clawfleet` binary: every instance runs as `clawfleet instance run`.
pub(super) fn clawfleet_executable() -> PathBuf {
    let path = std::env::var_os("CLAWFLEET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/clawfleet")
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
        confinement: LocalConfinement::default(),
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
        runtime
            .gateway_endpoint(&spec.id, &spec.gateway_token)
            .await,
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
        confinement: LocalConfinement::default(),
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
        confinement: LocalConfinement::default(),
    })
    .unwrap();
    let mut spec = stopped_spec("erin");
    spec.desired_state = DesiredState::Running;
    runtime.apply(&spec).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let endpoint = loop {
        if let Ok(endpoint) = runtime
            .gateway_endpoint(&spec.id, &spec.gateway_token)
            .await
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
