//! `clawfleet instance run` as the real binary, as a kubelet or the local supervisor
//! runs it: a real SIGTERM, real exit statuses, and orphans left by the gateway reaped.

use std::{
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// A stand-in `openclaw` running `body`.
fn fake_openclaw(dir: &Path, body: &str) -> PathBuf {
    let program = dir.join("openclaw");
    std::fs::write(&program, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    program
}

fn runner(dir: &Path, openclaw: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clawfleet"));
    command
        .args(["instance", "run", "--bind", "loopback", "--no-display"])
        .arg("--termination-log")
        .arg(dir.join("termination.log"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OPENCLAW_STATE_DIR", dir.join("state"))
        .env("OPENCLAW_GATEWAY_TOKEN", "tok-1")
        .env("OPENCLAW_BIN", openclaw)
        .env("OPENCLAW_GATEWAY_PORT", "18999")
        .env("CLAWFLEET_LOG_FORMAT", "text")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn wait_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the runner did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runs(pid: i32) -> bool {
    // A zombie has no command line: it does not run any more.
    kill(Pid::from_raw(pid), None).is_ok()
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| !cmdline.is_empty())
}

/// SIGTERM to the runner reaches the gateway, which drains and exits 0; the worker the
/// gateway detached into its own session is ended too; the runner exits 0.
#[test]
fn sigterm_is_forwarded_and_the_gateways_orphans_are_ended() {
    let dir = tempfile::tempdir().unwrap();
    let openclaw = fake_openclaw(
        dir.path(),
        &format!(
            "setsid sleep 300 &\necho $! > \"{worker}\"\necho \"$@\" > \"{args}\"\n\
             trap 'echo drained > \"{drained}\"; exit 0' TERM\nwhile :; do sleep 0.05; done",
            worker = dir.path().join("worker").display(),
            args = dir.path().join("args").display(),
            drained = dir.path().join("drained").display(),
        ),
    );
    let mut child = runner(dir.path(), &openclaw).spawn().unwrap();
    let worker: i32 = wait_for_file(&dir.path().join("worker"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        wait_for_file(&dir.path().join("args")).trim(),
        "gateway run --bind loopback --port 18999"
    );
    assert!(runs(worker));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_within(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(wait_for_file(&dir.path().join("drained")).trim(), "drained");
    assert!(
        !runs(worker),
        "the gateway's detached worker {worker} outlived the runner"
    );
    // The config the gateway read carries the token.
    let config = std::fs::read_to_string(dir.path().join("state/openclaw.json")).unwrap();
    assert!(config.contains("\"tok-1\""), "{config}");
}

#[test]
fn the_gateways_exit_status_is_the_processs() {
    let dir = tempfile::tempdir().unwrap();
    let openclaw = fake_openclaw(dir.path(), "exit 5");
    let status = runner(dir.path(), &openclaw).status().unwrap();
    assert_eq!(status.code(), Some(5));
    let openclaw = fake_openclaw(dir.path(), "kill -KILL $$");
    let status = runner(dir.path(), &openclaw).status().unwrap();
    assert_eq!(status.code(), Some(128 + 9), "{:?}", status.signal());
}

#[test]
fn settings_it_cannot_run_with_stop_it_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let openclaw = fake_openclaw(dir.path(), "exit 0");
    let output = runner(dir.path(), &openclaw)
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OPENCLAW_GATEWAY_TOKEN"), "{stderr}");

    let base = dir.path().join("base.json");
    std::fs::write(&base, "[1]").unwrap();
    let output = runner(dir.path(), &openclaw)
        .env("CLAWFLEET_BASE_CONFIG", &base)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CLAWFLEET_BASE_CONFIG"), "{stderr}");
}
