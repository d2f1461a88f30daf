use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use serde_json::Value;

use super::*;
use crate::state_dir::{CONFIG_FILE, UNREADABLE_CONFIG_FILE, platform_keys};

/// A stand-in `openclaw`: records its arguments in `$OPENCLAW_STATE_DIR/../args`, then
/// runs `body`.
fn fake_openclaw(dir: &Path, body: &str) -> PathBuf {
    let program = dir.join("openclaw");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\necho \"$@\" > \"{}/args\"\n{body}\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    program
}

fn config(dir: &Path, program: PathBuf) -> RunnerConfig {
    RunnerConfig {
        state_dir: dir.join("state"),
        platform: PlatformConfig {
            base: platform_keys("x/y", &["10.0.0.9".to_owned()]),
            gateway_token: "tok-1".into(),
            plugin_paths: Vec::new(),
        },
        gateway: GatewayCommand {
            program,
            bind: "loopback".into(),
            port: 18789,
            confined_by: None,
        },
        display: None,
        grace: Duration::from_secs(5),
        termination_log: Some(dir.join("termination.log")),
    }
}

async fn run_within(
    config: RunnerConfig,
    sidecar: Option<Sidecar>,
    terminate: CancellationToken,
) -> u8 {
    let children = Arc::new(Children::new().unwrap());
    tokio::time::timeout(
        Duration::from_secs(20),
        run(config, children, sidecar, terminate),
    )
    .await
    .expect("the runner did not end")
}

/// The runner exits with the gateway's status, after the state dir was prepared (here
/// over a config that was not JSON) and the gateway got its arguments.
#[tokio::test]
async fn the_gateways_exit_status_is_the_runners() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state").join(CONFIG_FILE), "{ not: json").unwrap();
    let program = fake_openclaw(dir.path(), "exit 3");
    let code = run_within(config(dir.path(), program), None, CancellationToken::new()).await;
    assert_eq!(code, 3);
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(args.trim(), "gateway run --bind loopback --port 18789");
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state").join(CONFIG_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(written["gateway"]["auth"]["mode"], "token");
    assert_eq!(written["gateway"]["auth"]["token"], "tok-1");
    assert_eq!(written["gateway"]["trustedProxies"][0], "10.0.0.9");
    assert!(
        dir.path()
            .join("state")
            .join(UNREADABLE_CONFIG_FILE)
            .exists()
    );
    // The gateway's own failure is not the runner's: nothing in the termination log.
    assert!(!dir.path().join("termination.log").exists());
}

/// SIGTERM reaches the gateway, which drains and exits 0; the sidecar is stopped first.
#[tokio::test]
async fn a_stop_request_is_forwarded_and_the_gateway_drains() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("drained");
    let program = fake_openclaw(
        dir.path(),
        &format!(
            "trap 'sleep 0.2; echo drained > \"{}\"; exit 0' TERM\nwhile :; do sleep 0.05; done",
            marker.display()
        ),
    );
    let (sidecar_ended_sender, sidecar_ended) = tokio::sync::oneshot::channel();
    let sidecar: Sidecar = Box::new(move |stop: CancellationToken| {
        Box::pin(async move {
            stop.cancelled().await;
            let _ = sidecar_ended_sender.send(());
        })
    });
    let terminate = CancellationToken::new();
    let stop = terminate.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
    });
    let code = run_within(config(dir.path(), program), Some(sidecar), terminate).await;
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "drained");
    sidecar_ended.await.expect("the sidecar was stopped");
}

/// A gateway that does not stop within the grace period is killed: 128 + SIGKILL.
#[tokio::test]
async fn a_gateway_that_outlasts_the_grace_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let program = fake_openclaw(dir.path(), "trap '' TERM\nwhile :; do sleep 0.05; done");
    let mut config = config(dir.path(), program);
    config.grace = Duration::from_millis(300);
    let terminate = CancellationToken::new();
    let stop = terminate.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
    });
    let started = std::time::Instant::now();
    let code = run_within(config, None, terminate).await;
    assert_eq!(code, 128 + 9);
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[tokio::test]
async fn the_runners_own_failures_are_told_to_the_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    // The state dir cannot be made: a file is in the way.
    std::fs::write(dir.path().join("state"), "").unwrap();
    let program = fake_openclaw(dir.path(), "exit 0");
    let code = run_within(config(dir.path(), program), None, CancellationToken::new()).await;
    assert_eq!(code, EXIT_STATE_DIR_FAILED);
    let told = std::fs::read_to_string(dir.path().join("termination.log")).unwrap();
    assert!(
        told.contains("could not prepare the state directory"),
        "{told}"
    );
    assert!(!dir.path().join("args").exists());

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-openclaw-here");
    let code = run_within(config(dir.path(), missing), None, CancellationToken::new()).await;
    assert_eq!(code, EXIT_GATEWAY_NOT_STARTED);
    let told = std::fs::read_to_string(dir.path().join("termination.log")).unwrap();
    assert!(told.contains("could not start the gateway"), "{told}");
}
