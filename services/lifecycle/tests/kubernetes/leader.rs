//! Exactly one reconciler among lifecycle replicas: the leader Lease on the loopback
//! API server (which checks resourceVersion preconditions as the real one does) goes to
//! one replica, moves to another when its holder dies without a word (after the Lease
//! duration) or stops gracefully (at once), and a follower's writes reach the leader
//! through the shared PostgreSQL store without waiting for the periodic reconcile.

use std::{sync::Arc, time::Duration};

use clawfleet_contracts::lifecycle::v1::{
    CreateInstanceRequest, DeleteInstanceRequest, instance_service_server::InstanceService,
};
use clawfleet_database::testing::{Backend, TestDatabase};
use clawfleet_kit::identity::Caller;
use clawfleet_lifecycle::{
    LifecycleServer,
    instance_id::InstanceId,
    runtime::kubernetes::lease::{LEASE_NAME, LeaseElector, LeaseTiming},
    store::InstanceStore,
};
use tokio_util::sync::CancellationToken;

use crate::support::{
    lifecycle::{replica, request},
    *,
};

/// Short enough for a test, in the same proportions as the defaults.
pub const FAST: LeaseTiming = LeaseTiming {
    duration: Duration::from_millis(2000),
    renew_deadline: Duration::from_millis(1400),
    retry: Duration::from_millis(200),
};

fn holder(server: &clawfleet_kube_apiserver::KubeApiServer) -> Option<String> {
    server
        .get("Lease", NAMESPACE, LEASE_NAME)
        .and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_lease_moves_on_death_and_on_release() {
    let server = server().await;
    let elector = async |name: &str| {
        LeaseElector::new(client_for(&server).await, NAMESPACE, name.to_owned(), FAST)
    };
    let (first_stop, second_stop) = (CancellationToken::new(), CancellationToken::new());
    let (first, first_task) = elector("first").await.start(first_stop.clone()).await;
    let (second, second_task) = elector("second").await.start(second_stop.clone()).await;
    assert!(*first.borrow() && !*second.borrow());
    assert_eq!(holder(&server).as_deref(), Some("first"));
    // Renewals keep it there: the follower never takes over while the leader lives.
    tokio::time::sleep(FAST.duration * 2).await;
    assert!(*first.borrow() && !*second.borrow());

    // The leader dies without a word (no release): the follower waits out the Lease.
    first_task.abort();
    let died = std::time::Instant::now();
    let mut watching = second.clone();
    bounded(
        "the follower takes over",
        watching.wait_for(|leading| *leading),
    )
    .await
    .unwrap();
    let takeover = died.elapsed();
    assert!(
        takeover >= FAST.duration - FAST.retry && takeover <= FAST.duration + FAST.retry * 4,
        "took over after {takeover:?}"
    );
    assert_eq!(holder(&server).as_deref(), Some("second"));

    // A graceful stop releases the Lease, and the next replica leads at once.
    second_stop.cancel();
    bounded("the release", second_task).await.unwrap();
    assert!(!*second.borrow());
    assert_eq!(holder(&server), None);
    let released = std::time::Instant::now();
    let (third, third_task) = elector("third").await.start(CancellationToken::new()).await;
    assert!(*third.borrow(), "a released Lease is free at once");
    assert!(released.elapsed() < FAST.retry * 2);
    third_task.abort();
    drop(first_stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_electors_never_both_lead() {
    let server = server().await;
    let mut electors = Vec::new();
    for index in 0..4 {
        let elector = LeaseElector::new(
            client_for(&server).await,
            NAMESPACE,
            format!("replica-{index}"),
            FAST,
        );
        electors.push(tokio::spawn(elector.start(CancellationToken::new())));
    }
    let mut started = Vec::new();
    for elector in electors {
        started.push(elector.await.unwrap());
    }
    for _ in 0..20 {
        let leaders = started
            .iter()
            .filter(|(leading, _)| *leading.borrow())
            .count();
        assert_eq!(leaders, 1);
        tokio::time::sleep(FAST.retry).await;
    }
    for (_, task) in started {
        task.abort();
    }
}

pub fn create(id: &str) -> tonic::Request<CreateInstanceRequest> {
    request(
        Caller::operator(),
        CreateInstanceRequest {
            id: id.into(),
            ..CreateInstanceRequest::default()
        },
    )
}

/// How long after the call the instance's Deployment exists.
pub async fn applied_after(
    server: &clawfleet_kube_apiserver::KubeApiServer,
    replica: &LifecycleServer,
    id: &str,
) -> Duration {
    let started = std::time::Instant::now();
    replica.handler().create_instance(create(id)).await.unwrap();
    let name = format!("{id}-openclaw");
    eventually("the Deployment applied", || {
        server.get("Deployment", NAMESPACE, &name).map(|_| ())
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_writes_reach_the_leader_at_once_and_leadership_moves_on_stop() {
    let server = server().await;
    let database = TestDatabase::create(Backend::Postgres).await;
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = replica(&server, leader_dir.path(), &database.url, FAST).await;
    let follower = replica(&server, follower_dir.path(), &database.url, FAST).await;
    assert!(leader.is_leader() && !follower.is_leader());

    let through_leader = applied_after(&server, &leader, "by-leader").await;
    let through_follower = applied_after(&server, &follower, "by-follower").await;
    eprintln!(
        "create -> Deployment applied: via leader {through_leader:?}, via follower {through_follower:?}"
    );
    assert!(
        through_follower < Duration::from_secs(5),
        "{through_follower:?}"
    );

    // A delete accepted by the follower is torn down by the leader and the row goes.
    let deleted = follower
        .handler()
        .delete_instance(request(
            Caller::operator(),
            DeleteInstanceRequest {
                id: "by-follower".into(),
                preserve_data: Some(false),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!deleted.data_preserved);
    eventually("the follower's delete done", || {
        objects_of(&server, "by-follower").is_empty().then_some(())
    })
    .await;
    let store = Arc::new(InstanceStore::open(&database.url).await.unwrap());
    let gone = InstanceId::parse("by-follower").unwrap();
    bounded("the row removed", async {
        while store.get(&gone).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // The leader stops gracefully: the follower leads within a retry, and applies.
    leader.stop().await;
    bounded("the follower leads", async {
        while !follower.is_leader() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let after_failover = applied_after(&server, &follower, "after-failover").await;
    eprintln!("create -> Deployment applied after a failover: {after_failover:?}");
    store.close().await;
    follower.stop().await;
}
