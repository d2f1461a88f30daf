//! What callers see when the Kubernetes API fails: outages, throttling and lost races
//! are `unavailable` (retry later), a permission the Role lacks is an internal error
//! naming it, and nothing quotes the apiserver's own words. Accepted creates and starts
//! show a failing background apply in their reason until a retry succeeds.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::support::{lifecycle::*, *};
use clawfleet_contracts::lifecycle::v1::{
    ExecInInstanceRequest, GetInstanceRequest, StartInstanceRequest,
    instance_service_server::InstanceService,
};
use clawfleet_kit::identity::Caller;
use clawfleet_lifecycle::service::InstanceServiceHandler;
use clawfleet_lifecycle::{
    model::{DesiredState, Phase},
    runtime::{Runtime, RuntimeError, SharedRuntime},
};
use tonic::Code;

fn patches_of(server: &clawfleet_kube_apiserver::KubeApiServer, resource: &str) -> usize {
    server
        .request_log()
        .iter()
        .filter(|request| request.verb == "patch" && request.resource == resource)
        .count()
}

/// The reason an accepted instance shows while its background apply fails.
async fn reason_of(service: &InstanceServiceHandler, id: &str) -> String {
    service
        .get_instance(request(
            Caller::operator(),
            GetInstanceRequest { id: id.into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .instance
        .unwrap()
        .reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_outage_on_apply_is_unavailable_and_shows_in_the_reason() {
    let server = server().await;
    let mut config = config();
    // kube-rs retries 503 itself, with backoff; the call's budget ends that.
    config.api_timeout = Duration::from_millis(800);
    let runtime: SharedRuntime = Arc::new(runtime(&server, config).await);
    let (_data, registry) = registry_with(&[record("alice")]).await;
    let service = handler(registry, runtime.clone());
    server.fail_requests(Some("secrets"), Some("patch"), 503, 10_000);
    // Applying now (what drift repair does) says the cluster is unavailable.
    let error = runtime
        .apply(&spec("alice", DesiredState::Running))
        .await
        .unwrap_err();
    assert!(matches!(error, RuntimeError::Unavailable(_)), "{error:?}");
    // A start is accepted at once (docs/capacity.md#accept-then-apply) and the reason
    // says why the instance is not in the cluster yet.
    let started = Instant::now();
    let accepted = service
        .start_instance(request(
            Caller::operator(),
            StartInstanceRequest { id: "alice".into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .instance
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(accepted.phase, Phase::Pending.to_proto() as i32);
    let reason = bounded("the failure to show", async {
        loop {
            let reason = reason_of(&service, "alice").await;
            if reason.contains("could not apply") {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        reason.contains("did not answer in time to patch secrets alice-openclaw")
            && reason.contains("retrying in"),
        "{reason}"
    );

    // An answer that is a plain server error says which, and the retry succeeds.
    server.clear_faults();
    let (_data, registry) = registry_with(&[record("bob")]).await;
    let service = handler(registry, runtime.clone());
    server.fail_requests(Some("deployments"), Some("patch"), 500, 1);
    service
        .start_instance(request(
            Caller::operator(),
            StartInstanceRequest { id: "bob".into() },
        ))
        .await
        .unwrap();
    let reason = bounded("the failure to show", async {
        loop {
            let reason = reason_of(&service, "bob").await;
            if reason.contains("could not apply") {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        reason.contains(
            "the kubernetes api failed to patch deployments.apps bob-openclaw (500: InternalError)"
        ),
        "{reason}"
    );
    assert!(!reason.contains("injected"), "no apiserver words");
    eventually("bob applied on the retry", || {
        server.get("Deployment", NAMESPACE, "bob-openclaw")
    })
    .await;
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_call_names_the_missing_permission() {
    let server = server().await;
    let runtime: SharedRuntime = Arc::new(runtime(&server, config()).await);
    let (_data, registry) = registry_with(&[record("alice")]).await;
    let service = handler(registry, runtime.clone());
    server.fail_requests(Some("deployments"), Some("patch"), 403, 1);
    service
        .start_instance(request(
            Caller::operator(),
            StartInstanceRequest { id: "alice".into() },
        ))
        .await
        .unwrap();
    let reason = bounded("the failure to show", async {
        loop {
            let reason = reason_of(&service, "alice").await;
            if reason.contains("could not apply") {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        reason.contains(
            "the platform's service account may not patch deployments.apps in namespace openclaw; \
             grant it as deploy/base/lifecycle-rbac.yaml does"
        ),
        "{reason}"
    );

    // The same for pods/exec.
    runtime
        .apply(&spec("alice", DesiredState::Running))
        .await
        .unwrap();
    let alice = spec("alice", DesiredState::Running).id;
    eventually("running", || {
        (runtime.observe(&alice).phase == Phase::Running).then_some(())
    })
    .await;
    server.fail_requests(Some("pods"), Some("exec"), 403, 1);
    let status = service
        .exec_in_instance(request(
            Caller::service("bridge"),
            ExecInInstanceRequest {
                instance_id: "alice".into(),
                argv: vec!["openclaw".into(), "--version".into()],
                stdin: Vec::new(),
                timeout_ms: 5_000,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("the platform's service account may not create pods/exec"),
        "{}",
        status.message()
    );
    runtime.shutdown().await;
}

/// The runtime does not retry a 409 itself: a forced apply under one field manager has no
/// field conflicts and the apiserver re-applies precondition-free patches on its own, so a
/// 409 that still arrives goes back to the caller (the reconciler retries on its period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_reported_as_unavailable_after_one_attempt() {
    let server = server().await;
    let runtime = runtime(&server, config()).await;
    let spec = spec("alice", DesiredState::Running);
    server.fail_requests(Some("secrets"), Some("patch"), 409, 1);
    server.clear_request_log();
    let error = runtime.apply(&spec).await.unwrap_err();
    assert!(
        matches!(&error, RuntimeError::Unavailable(message)
            if message == "secrets alice-openclaw was changed by another writer while the platform wrote it; retry"),
        "{error:?}"
    );
    assert_eq!(patches_of(&server, "secrets"), 1);
    // The next apply goes through.
    runtime.apply(&spec).await.unwrap();
    assert!(server.get("Secret", NAMESPACE, "alice-openclaw").is_some());
    runtime.shutdown().await;
}
