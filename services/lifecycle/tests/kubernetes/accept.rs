//! Accept, then apply (docs/capacity.md#accept-then-apply): a create answers once its
//! record is stored, pending with its place in the queue; the applier writes it in the
//! background, owners taking turns; and a restart in the middle of a burst loses no
//! create, because the next start reconciles every stored record.

use std::{sync::Arc, time::Duration};

use crate::support::{lifecycle::*, *};
use clawfleet_contracts::lifecycle::v1::{
    CreateInstanceRequest, instance_service_server::InstanceService,
};
use clawfleet_kit::identity::Caller;
use clawfleet_lifecycle::{
    model::{Phase, Plan},
    reconciler,
    registry::Registry,
    runtime::{Runtime, SharedRuntime},
    store::InstanceStore,
};

const BURST: usize = 40;

fn create(id: &str, owner: &str) -> CreateInstanceRequest {
    CreateInstanceRequest {
        id: id.into(),
        owner: owner.into(),
        plan: Plan::Free.to_proto() as i32,
        secrets: Default::default(),
        model: "anthropic/claude-sonnet-4-5".into(),
    }
}

fn deployments(server: &clawfleet_kube_apiserver::KubeApiServer) -> usize {
    server.objects("Deployment", NAMESPACE).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_are_accepted_at_once_fairly_and_a_restart_mid_burst_loses_none() {
    let server = server().await;
    // Every write is slow, and one instance is applied at a time: the burst queues.
    let mut slow = config();
    slow.apply_concurrency = 1;
    server.delay_requests(None, Some("patch"), Duration::from_millis(40), 100_000);
    let first = Arc::new(runtime(&server, slow).await);
    let data = tempfile::tempdir().unwrap();
    let url = sqlite_url(data.path());
    let registry = Arc::new(
        Registry::load(InstanceStore::open(&url).await.unwrap())
            .await
            .unwrap(),
    );
    let service = handler(registry.clone(), first.clone() as SharedRuntime);

    for index in 0..BURST {
        let accepted = service
            .create_instance(request(
                Caller::operator(),
                create(&format!("burst-{index}"), "burst-owner"),
            ))
            .await
            .unwrap()
            .into_inner()
            .instance
            .unwrap();
        assert_eq!(accepted.phase, Phase::Pending.to_proto() as i32);
        assert!(
            accepted.reason.starts_with("waiting for the cluster: "),
            "{}",
            accepted.reason
        );
    }
    // Another owner's single create waits for one of the burst, not for all of it.
    let single = service
        .create_instance(request(
            Caller::operator(),
            create("single", "single-owner"),
        ))
        .await
        .unwrap()
        .into_inner()
        .instance
        .unwrap();
    let ahead: usize = single
        .reason
        .trim_start_matches("waiting for the cluster: ")
        .trim_end_matches(" ahead")
        .parse()
        .unwrap_or_else(|_| panic!("{}", single.reason));
    // At most the burst's next instance, and the one being applied, go first.
    assert!(ahead <= 1, "{}", single.reason);
    eventually("the single create applied", || {
        server.get("Deployment", NAMESPACE, "single-openclaw")
    })
    .await;
    assert!(
        deployments(&server) < BURST / 2,
        "the burst is still being applied"
    );

    // The lifecycle stops in the middle of the burst.
    first.shutdown().await;
    drop(service);
    let applied_before_restart = deployments(&server);
    assert!(applied_before_restart < BURST, "{applied_before_restart}");
    server.clear_faults();

    // It starts again: every stored create is applied.
    drop(registry);
    let registry = Arc::new(
        Registry::load(InstanceStore::open(&url).await.unwrap())
            .await
            .unwrap(),
    );
    let second: SharedRuntime = Arc::new(runtime(&server, config()).await);
    reconciler::reconcile_all(&lifecycle(registry, second.clone())).await;
    bounded("every create applied", async {
        while deployments(&server) < BURST + 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    eventually("nothing waits", || {
        (0..BURST)
            .all(|index| {
                let id =
                    clawfleet_lifecycle::instance_id::InstanceId::parse(&format!("burst-{index}"))
                        .unwrap();
                !second
                    .observe(&id)
                    .reason
                    .contains("waiting for the cluster")
            })
            .then_some(())
    })
    .await;
    second.shutdown().await;
}
