use std::process::Command;

use super::*;

fn shell(script: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command.args(["-c", script]);
    command
}

async fn wait_within(child: &ChildProcess, limit: Duration) -> ExitStatus {
    tokio::time::timeout(limit, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{} did not exit within {limit:?}", child.name()))
}

fn is_running(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported_as_a_shell_would() {
    let children = Children::new().unwrap();
    let seven = children.spawn("seven", &mut shell("exit 7")).unwrap();
    let status = wait_within(&seven, Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(7));
    assert_eq!(exit_code(status), 7);
    assert_eq!(describe_exit(status), "exited with status 7");

    let sleeper = children
        .spawn("sleep", Command::new("sleep").arg("30"))
        .unwrap();
    assert!(is_running(sleeper.pid()));
    sleeper.signal(Signal::SIGTERM);
    let status = wait_within(&sleeper, Duration::from_secs(5)).await;
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    assert_eq!(exit_code(status), 143);
    assert_eq!(describe_exit(status), "was killed by signal 15");
    // Reaped: no zombie is left behind.
    assert!(!is_running(sleeper.pid()));
}

/// A child that exits before `spawn` returns is still seen exiting.
#[tokio::test]
async fn a_child_that_exits_at_once_is_not_lost() {
    let children = Children::new().unwrap();
    for _ in 0..20 {
        let quick = children.spawn("true", &mut Command::new("true")).unwrap();
        let status = wait_within(&quick, Duration::from_secs(5)).await;
        assert!(status.success());
    }
}

#[tokio::test]
async fn ending_all_kills_what_ignores_sigterm_after_the_grace() {
    let children = Children::new().unwrap();
    let polite = children
        .spawn("polite", Command::new("sleep").arg("30"))
        .unwrap();
    let stubborn = children
        .spawn(
            "stubborn",
            &mut shell("trap '' TERM; while :; do sleep 0.1; done"),
        )
        .unwrap();
    // Let the shell install its trap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    children.end_all(Duration::from_millis(300)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(polite.wait().await.signal(), Some(Signal::SIGTERM as i32));
    assert_eq!(stubborn.wait().await.signal(), Some(Signal::SIGKILL as i32));
}

#[tokio::test]
async fn a_dropped_child_is_killed() {
    let children = Children::new().unwrap();
    let sleeper = children
        .spawn("sleep", Command::new("sleep").arg("30"))
        .unwrap();
    let pid = sleeper.pid();
    drop(sleeper);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while is_running(pid) {
        assert!(std::time::Instant::now() < deadline, "{pid} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
