//! ExecInInstance on Kubernetes with commands that take time: one that outlives its
//! timeout is reported as timed out when the timeout passes, and its session is closed
//! (the kubelet then kills the command) instead of lingering.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::support::{lifecycle::*, *};
use clawfleet_contracts::lifecycle::v1::{
    ExecInInstanceRequest, instance_service_server::InstanceService,
};
use clawfleet_kit::identity::Caller;
use clawfleet_kube_apiserver::ExecResult;
use clawfleet_lifecycle::{model::Phase, runtime::SharedRuntime};

fn exec(argv: &[&str], timeout_ms: u32) -> ExecInInstanceRequest {
    ExecInInstanceRequest {
        instance_id: "alice".into(),
        argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
        stdin: Vec::new(),
        timeout_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_outliving_its_timeout_is_timed_out_promptly_and_its_session_closed() {
    let server = server().await;
    // `sleep <seconds>` sleeps, then says so.
    server.set_async_exec_handler(|call| async move {
        let seconds: f64 = call.command[1].parse().unwrap();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        ExecResult::ok(format!("slept {seconds}"))
    });
    let runtime: SharedRuntime = Arc::new(runtime(&server, config()).await);
    let (_data, registry, _alice) = applied_alice(&runtime, |phase| phase == Phase::Running).await;
    let service = handler(registry, runtime.clone());
    let bridge = || Caller::service("bridge");

    let started = Instant::now();
    let output = bounded(
        "the timed-out exec",
        service.exec_in_instance(request(bridge(), exec(&["sleep", "30"], 300))),
    )
    .await
    .unwrap()
    .into_inner();
    let took = started.elapsed();
    assert!(output.timed_out);
    assert_eq!(output.exit_code, 124);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let closed = Instant::now();
    eventually("the exec session to close", || {
        (server.open_exec_sessions() == 0).then_some(())
    })
    .await;
    assert!(closed.elapsed() < Duration::from_secs(2));

    // A command that finishes within its timeout answers as usual.
    let output = service
        .exec_in_instance(request(bridge(), exec(&["sleep", "0.2"], 5_000)))
        .await
        .unwrap()
        .into_inner();
    assert!(!output.timed_out);
    assert_eq!(
        (output.exit_code, output.stdout),
        (0, b"slept 0.2".to_vec())
    );
    runtime.shutdown().await;
}
