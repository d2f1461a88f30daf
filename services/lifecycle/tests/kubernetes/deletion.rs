//! Deleting an instance while the periodic reconcile applies it: the reconcile read the
//! record before the delete removed it, yet nothing of the instance may come back — in
//! particular no empty volume after a purge.

use std::{sync::Arc, time::Duration};

use crate::support::{lifecycle::*, *};
use clawfleet_lifecycle::{
    deletion::Outcome,
    model::{DesiredState, Phase},
    reconciler,
    runtime::{DataRetention, RuntimeError, SharedRuntime},
    store::Update,
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
