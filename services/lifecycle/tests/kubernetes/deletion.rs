//! Deletes on the Kubernetes runtime: a delete racing the periodic reconcile leaves
//! nothing behind (in particular no empty volume after a purge); a teardown slower than
//! the call may wait answers `deleting` and still finishes, and nothing can undo it;
//! a delete abandoned by a crash is finished at the next start.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;

use crate::support::{lifecycle::*, *};
use clawfleet_contracts::{
    common::v1::Phase as CommonPhase,
    lifecycle::v1::{
        DeleteInstanceRequest, GetInstanceRequest, StartInstanceRequest, WatchInstancesRequest,
        instance_service_server::InstanceService, watch_instances_response::Kind,
    },
};
use clawfleet_kit::identity::Caller;
use clawfleet_lifecycle::{
    deletion::Outcome,
    model::{DesiredState, Phase},
    reconciler,
    runtime::{DataRetention, RuntimeError, SharedRuntime},
    service::{DELETE_WAIT, InstanceServiceHandler},
    store::{InstanceStore, Update},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_racing_the_reconcile_leaves_nothing_behind() {
    let server = server().await;
    let runtime: SharedRuntime = Arc::new(runtime(&server, config()).await);
    let (_data, registry, alice) = applied_alice(&runtime, |phase| phase == Phase::Running).await;

    // The purge is in flight (its deletions are slow to land) when the reconcile runs:
    // the record is marked deleting first, as DeleteInstance does.
    let lifecycle = lifecycle(registry.clone(), runtime.clone());
    server.delay_requests(None, Some("delete"), Duration::from_millis(300), 100);
    let marked = match registry.mark_deleting(&alice.id, false).await.unwrap() {
        Update::Changed(marked) => marked,
        other => panic!("alice was not marked deleting: {other:?}"),
    };
    let mut purge = lifecycle.deletions.finish(&lifecycle, marked);
    tokio::time::sleep(Duration::from_millis(100)).await;
    bounded(
        "the racing reconcile",
        reconciler::reconcile_all(&lifecycle),
    )
    .await;
    let outcome = bounded("the purge", purge.wait_for(Option::is_some))
        .await
        .unwrap()
        .clone();
    assert!(
        matches!(outcome, Some(Outcome::Finished { .. })),
        "{outcome:?}"
    );
    assert!(registry.get(&alice.id).is_none());
    server.clear_faults();

    // A reconcile that read the record before it was removed applies it once more.
    let stale = runtime.apply(&alice.spec()).await;
    assert!(matches!(stale, Err(RuntimeError::NotFound(_))), "{stale:?}");
    bounded("the next reconcile", reconciler::reconcile_all(&lifecycle)).await;
    eventually("nothing left of alice", || {
        objects_of(&server, "alice").is_empty().then_some(())
    })
    .await;
    // Drift repair would have brought objects back within this time.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(objects_of(&server, "alice"), Vec::<(String, String)>::new());
    assert!(runtime.known_instances().is_empty());

    // Creating the id again is a new incarnation (a new gateway token): it comes back.
    let mut again = alice.spec();
    again.gateway_token = "alice-token-2".into();
    runtime.apply(&again).await.unwrap();
    eventually("running again", || {
        (runtime.observe(&again.id).phase == Phase::Running).then_some(())
    })
    .await;
    runtime.shutdown().await;
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_waits_for_an_apply_in_flight() {
    let server = server().await;
    let runtime: SharedRuntime = Arc::new(runtime(&server, config()).await);
    let spec = spec("alice", DesiredState::Running);
    // The first apply's volume is slow to be written, and the purge starts meanwhile.
    server.delay_requests(
        Some("persistentvolumeclaims"),
        Some("patch"),
        Duration::from_millis(400),
        1,
    );
    let apply = tokio::spawn({
        let runtime = runtime.clone();
        let spec = spec.clone();
        async move { runtime.apply(&spec).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    bounded("the purge", runtime.delete(&spec.id, DataRetention::Purge))
        .await
        .unwrap();
    bounded("the apply", apply).await.unwrap().unwrap();
    eventually("nothing left of alice", || {
        objects_of(&server, "alice").is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(objects_of(&server, "alice"), Vec::<(String, String)>::new());
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_teardown_answers_deleting_and_nothing_can_undo_it() {
    let server = server().await;
    let runtime: SharedRuntime = Arc::new(runtime(&server, config()).await);
    let (_data, registry, alice) = applied_alice(&runtime, |phase| phase == Phase::Running).await;
    let lifecycle = lifecycle(registry.clone(), runtime.clone());
    let service = InstanceServiceHandler::new(lifecycle.clone());
    let mut watch = service
        .watch_instances(request(
            Caller::operator(),
            WatchInstancesRequest { id: "alice".into() },
        ))
        .await
        .unwrap()
        .into_inner();

    // Every deletion the runtime sends takes longer than the call may wait.
    server.delay_requests(
        None,
        Some("delete"),
        DELETE_WAIT + Duration::from_secs(1),
        100,
    );
    let started = std::time::Instant::now();
    let deleted = bounded(
        "the delete call",
        service.delete_instance(request(
            Caller::operator(),
            DeleteInstanceRequest {
                id: "alice".into(),
                preserve_data: Some(false),
            },
        )),
    )
    .await
    .unwrap()
    .into_inner();
    assert!(started.elapsed() < DELETE_WAIT + Duration::from_secs(1));
    assert!(deleted.in_progress, "{deleted:?}");
    assert!(!deleted.data_preserved);
    let deleting = deleted.instance.expect("the deleting view");
    assert_eq!(deleting.phase, CommonPhase::Deleting as i32);

    // While it is torn down: Get says deleting, start and stop are refused, and a
    // retried delete joins the first one (same answer, nothing restarted).
    let got = service
        .get_instance(request(
            Caller::operator(),
            GetInstanceRequest { id: "alice".into() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.instance.unwrap().phase, CommonPhase::Deleting as i32);
    let refused = service
        .start_instance(request(
            Caller::operator(),
            StartInstanceRequest { id: "alice".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(refused.message().contains("being deleted"), "{refused:?}");
    // The reconciler never applies a record being deleted.
    bounded("a reconcile", reconciler::reconcile_all(&lifecycle)).await;

    // The teardown ends by itself: the watcher sees the deletion, nothing is left.
    bounded("the deletion event", async {
        loop {
            let message = watch.next().await.expect("stream open").unwrap();
            if message.kind == Kind::Deleted as i32 {
                return;
            }
        }
    })
    .await;
    assert!(registry.get(&alice.id).is_none());
    assert!(registry.store().get(&alice.id).await.unwrap().is_none());
    server.clear_faults();
    eventually("nothing left of alice", || {
        objects_of(&server, "alice").is_empty().then_some(())
    })
    .await;
    runtime.shutdown().await;
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_abandoned_by_a_crash_is_finished_at_the_next_start() {
    let server = server().await;
    let runtime: SharedRuntime = Arc::new(runtime(&server, config()).await);
    let (data, registry, alice) = applied_alice(&runtime, |phase| phase == Phase::Running).await;
    // The delete was recorded, then the process died before the runtime was touched.
    registry.mark_deleting(&alice.id, true).await.unwrap();
    runtime.shutdown().await;
    registry.close().await;
    assert!(!objects_of(&server, "alice").is_empty());

    let lifecycle = lifecycle_server(&server, data.path(), Duration::from_secs(30)).await;
    eventually("alice's workloads gone, her data kept", || {
        (objects_of(&server, "alice")
            == [(
                "PersistentVolumeClaim".to_owned(),
                "alice-openclaw-data".to_owned(),
            )])
        .then_some(())
    })
    .await;
    let store = InstanceStore::open(&sqlite_url(data.path())).await.unwrap();
    bounded("alice's record gone", async {
        while store.get(&alice.id).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    store.close().await;
    lifecycle.stop().await;
}
