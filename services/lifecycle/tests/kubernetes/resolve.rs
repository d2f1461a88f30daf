//! ResolveGateway for an instance on its way up waits (briefly) for it instead of
//! handing out an endpoint nobody answers on: it answers with the endpoint once the
//! gateway is ready, with the real reason when the instance fails instead, and with
//! "still starting" plus a retry hint when the wait runs out.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::support::{lifecycle::*, *};
use clawfleet_contracts::lifecycle::v1::{
    ResolveGatewayRequest, instance_service_server::InstanceService,
};
use clawfleet_kit::{error::ServiceError, identity::Caller};
use clawfleet_kube_apiserver::{KubeApiServer, PodScript, PodState};
use clawfleet_lifecycle::{model::Phase, runtime::SharedRuntime, service::InstanceServiceHandler};
use tonic::Code;

async fn starting_alice(
    script: PodScript,
) -> (
    KubeApiServer,
    tempfile::TempDir,
    InstanceServiceHandler,
    SharedRuntime,
) {
    let server = server().await;
    server.set_default_pod_script(script);
    let runtime: SharedRuntime = Arc::new(runtime(&server, config()).await);
    let (data, registry, _alice) = applied_alice(&runtime, |phase| {
        matches!(phase, Phase::Pending | Phase::Starting)
    })
    .await;
    let service = handler(registry, runtime.clone());
    (server, data, service, runtime)
}

fn resolve_alice() -> tonic::Request<ResolveGatewayRequest> {
    request(
        Caller::service("gateway-bridge"),
        ResolveGatewayRequest {
            instance_id: "alice".into(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_becomes_ready_during_the_wait_is_resolved() {
    let (_server, _data, service, runtime) =
        starting_alice(PodScript::stays(PodState::Running { ready: false }).then(
            Duration::from_millis(1500),
            PodState::Running { ready: true },
        ))
        .await;
    let endpoint = bounded("resolve", service.resolve_gateway(resolve_alice()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        endpoint.gateway_url.contains("alice-openclaw"),
        "{}",
        endpoint.gateway_url
    );
    assert_eq!(runtime.observe(&record("alice").id).phase, Phase::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_fails_during_the_wait_says_why() {
    let (_server, _data, service, _runtime) =
        starting_alice(PodScript::stays(PodState::Pending).then(
            Duration::from_millis(800),
            PodState::waiting("ImagePullBackOff", "Back-off pulling image"),
        ))
        .await;
    let started = Instant::now();
    let status = bounded("resolve", service.resolve_gateway(resolve_alice()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("ImagePullBackOff"),
        "{}",
        status.message()
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered when it failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_still_starting_after_the_wait_is_unavailable_with_a_retry_hint() {
    let (_server, _data, service, _runtime) =
        starting_alice(PodScript::stays(PodState::Pending)).await;
    let started = Instant::now();
    let status = bounded("resolve", service.resolve_gateway(resolve_alice()))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("still starting"),
        "{}",
        status.message()
    );
    assert_eq!(
        ServiceError::from_status(&status).retry_after_seconds,
        Some(5)
    );
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}
