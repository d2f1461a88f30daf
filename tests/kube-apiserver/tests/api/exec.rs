//! `Api::<Pod>::exec` over the WebSocket channel protocol.

use crate::common::{bounded, eventually, start};
use clawfleet_kube_apiserver::{ExecResult, PodScript};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn running_pod(server: &clawfleet_kube_apiserver::KubeApiServer, pods: &Api<Pod>) {
    server.set_default_pod_script(PodScript::stays(
        clawfleet_kube_apiserver::PodState::Running { ready: true },
    ));
    let pod: Pod = serde_json::from_value(json!({ "metadata": { "name": "gw-0" }, "spec": { "containers": [{ "name": "gateway", "image": "openclaw:1" }] } })).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually(|| {
        let pod = server.get("pods", "default", "gw-0")?;
        (pod["status"]["phase"] == "Running").then_some(())
    })
    .await;
}

#[tokio::test]
async fn exec_runs_the_handler_and_reports_exit_status() {
    let (server, client) = start().await;
    server.set_exec_handler(|call| match call.command.as_slice() {
        [cmd, a, b, ..] if cmd == "openclaw" && a == "pairing" && b == "list" => {
            ExecResult::ok(r#"{"requests":[]}"#)
        }
        [cmd, ..] if cmd == "cat" => ExecResult::ok(call.stdin.clone()),
        _ => ExecResult::fail(3, "boom"),
    });
    bounded(async {
        let pods: Api<Pod> = Api::namespaced(client, "default");
        running_pod(&server, &pods).await;

        let mut process = pods
            .exec(
                "gw-0",
                ["openclaw", "pairing", "list", "--json"],
                &AttachParams::default().stderr(false),
            )
            .await
            .unwrap();
        let mut out = String::new();
        process
            .stdout()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        let status = process.take_status().unwrap().await.unwrap();
        assert_eq!(out, r#"{"requests":[]}"#);
        assert_eq!(status.status.as_deref(), Some("Success"));

        let mut failing = pods
            .exec("gw-0", ["false"], &AttachParams::default())
            .await
            .unwrap();
        let mut err = String::new();
        failing
            .stderr()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        let status = failing.take_status().unwrap().await.unwrap();
        assert_eq!(err, "boom");
        assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
        let cause = &status.details.unwrap().causes.unwrap()[0];
        assert_eq!(
            (cause.reason.as_deref(), cause.message.as_deref()),
            (Some("ExitCode"), Some("3"))
        );

        // stdin reaches the handler; v5 signals its end with a close frame.
        let mut cat = pods
            .exec(
                "gw-0",
                ["cat"],
                &AttachParams::default().stdin(true).stderr(false),
            )
            .await
            .unwrap();
        let mut stdin = cat.stdin().unwrap();
        stdin.write_all(b"hello").await.unwrap();
        stdin.shutdown().await.unwrap();
        drop(stdin);
        let mut echoed = String::new();
        cat.stdout()
            .unwrap()
            .read_to_string(&mut echoed)
            .await
            .unwrap();
        assert_eq!(echoed, "hello");

        let missing = pods
            .exec("nope", ["true"], &AttachParams::default())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&missing, kube::Error::Api(s) if s.code == 404),
            "{missing:?}"
        );
    })
    .await;
    assert!(
        server
            .request_log()
            .iter()
            .any(|r| r.verb == "exec" && r.status == 101)
    );
}

#[tokio::test]
async fn a_slow_command_answers_when_done_and_is_killed_when_the_client_hangs_up() {
    let (server, client) = start().await;
    let (killed, mut kills) = tokio::sync::mpsc::unbounded_channel::<()>();
    server.set_async_exec_handler(move |call| {
        let killed = killed.clone();
        async move {
            // Reports a kill when the session drops the command before it finishes.
            struct Running(Option<tokio::sync::mpsc::UnboundedSender<()>>);
            impl Drop for Running {
                fn drop(&mut self) {
                    if let Some(killed) = self.0.take() {
                        let _ = killed.send(());
                    }
                }
            }
            let mut running = Running(Some(killed));
            let seconds: f64 = call.command[1].parse().unwrap();
            tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
            running.0 = None;
            ExecResult::ok(format!("slept {seconds}"))
        }
    });
    bounded(async {
        let pods: Api<Pod> = Api::namespaced(client, "default");
        running_pod(&server, &pods).await;

        let started = std::time::Instant::now();
        let mut done = pods
            .exec("gw-0", ["sleep", "0.3"], &AttachParams::default())
            .await
            .unwrap();
        let mut out = String::new();
        done.stdout()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out, "slept 0.3");
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        drop(done);
        eventually(|| (server.open_exec_sessions() == 0).then_some(())).await;

        let hung = pods
            .exec("gw-0", ["sleep", "30"], &AttachParams::default())
            .await
            .unwrap();
        eventually(|| (server.open_exec_sessions() == 1).then_some(())).await;
        drop(hung);
        kills.recv().await.unwrap();
        eventually(|| (server.open_exec_sessions() == 0).then_some(())).await;
    })
    .await;
}
