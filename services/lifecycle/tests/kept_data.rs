//! Kept data of deleted instances: recorded when a delete keeps the data, counted toward
//! the owner's quota, released when the id is created again, and purged by the leader
//! after the retention (here on the local runtime: the state dir goes).

use std::{sync::Arc, time::Duration};

use clawfleet_database::testing::{Backend, TestDatabase};
use clawfleet_lifecycle::{
    instance_id::InstanceId,
    kept_data::{purge_expired, purge_interval},
    model::{DesiredState, InstanceRecord, Plan, now_ms},
    registry::Registry,
    runtime::local::{LocalConfinement, LocalRuntime, LocalRuntimeConfig, OpenclawCommand},
    service::Lifecycle,
    store::{InstanceStore, StoreError},
    watch_hub::WatchHub,
};
use tokio_util::sync::CancellationToken;

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

fn record(id: &str, owner: &str) -> InstanceRecord {
    InstanceRecord {
        revision: 0,
        id: InstanceId::parse(id).unwrap(),
        owner: owner.into(),
        plan: Plan::Free,
        desired_state: DesiredState::Running,
        model: String::new(),
        gateway_token: "token".into(),
        secrets: Default::default(),
        created_at_ms: 1,
        updated_at_ms: 2,
        deleting: None,
        generation: 0,
    }
}

fn id(text: &str) -> InstanceId {
    InstanceId::parse(text).unwrap()
}

async fn delete(store: &InstanceStore, id: &InstanceId, preserve_data: bool, at_ms: i64) {
    store.mark_deleting(id, preserve_data, at_ms).await.unwrap();
    assert!(store.remove_deleted(id, at_ms).await.unwrap());
}

#[tokio::test]
async fn kept_data_counts_toward_the_quota_until_reattached_or_forgotten() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let store = InstanceStore::open(&database.url).await.unwrap();
        store.insert(&record("alice", "user-1")).await.unwrap();
        delete(&store, &id("alice"), true, 100).await;
        assert_eq!(
            store.kept_data_of("user-1").await.unwrap(),
            1,
            "{backend:?}"
        );

        // The kept copy takes the free plan's one slot ...
        match store
            .insert_within_quota(&record("bob", "user-1"), Some(1))
            .await
        {
            Err(StoreError::QuotaExceeded {
                owned: 0,
                kept: 1,
                quota: 1,
            }) => {}
            other => panic!("{backend:?}: {other:?}"),
        }
        // ... except for its own id, which reattaches it.
        store
            .insert_within_quota(&record("alice", "user-1"), Some(1))
            .await
            .unwrap();
        assert_eq!(
            store.kept_data_of("user-1").await.unwrap(),
            0,
            "{backend:?}"
        );

        // A delete that purges the data keeps nothing.
        delete(&store, &id("alice"), false, 200).await;
        assert_eq!(
            store.kept_data_of("user-1").await.unwrap(),
            0,
            "{backend:?}"
        );

        // Old copies are listed oldest first and forgotten only while still old.
        store.insert(&record("carol", "user-2")).await.unwrap();
        store.insert(&record("dave", "user-2")).await.unwrap();
        delete(&store, &id("dave"), true, 300).await;
        delete(&store, &id("carol"), true, 400).await;
        assert_eq!(
            store.kept_data_before(401, 10).await.unwrap(),
            vec![id("dave"), id("carol")],
            "{backend:?}"
        );
        assert_eq!(
            store.kept_data_before(400, 10).await.unwrap(),
            vec![id("dave")]
        );
        assert!(!store.forget_kept_data(&id("carol"), 400).await.unwrap());
        assert!(store.forget_kept_data(&id("dave"), 400).await.unwrap());
        assert_eq!(
            store.kept_data_of("user-2").await.unwrap(),
            1,
            "{backend:?}"
        );
        store.close().await;
    }
}

fn local_runtime(data_dir: &std::path::Path) -> LocalRuntime {
    LocalRuntime::new(LocalRuntimeConfig {
        data_dir: data_dir.to_path_buf(),
        executable: "/bin/true".into(),
        openclaw: OpenclawCommand {
            program: "/bin/echo".into(),
            path_prefix: Vec::new(),
            plugin_paths: Vec::new(),
        },
        port_base: 30500,
        start_timeout: Duration::from_secs(5),
        stop_grace: Duration::from_secs(1),
        vnc: false,
        confinement: LocalConfinement::default(),
    })
    .unwrap()
}

#[tokio::test]
async fn the_leader_purges_kept_data_past_its_retention_on_the_local_runtime() {
    let data_dir = tempfile::tempdir().unwrap();
    let store = InstanceStore::in_memory().await.unwrap();
    for (name, kept_at) in [("old", now_ms() - 60_000), ("recent", now_ms())] {
        store.insert(&record(name, "user-1")).await.unwrap();
        delete(&store, &id(name), true, kept_at).await;
        let state = data_dir.path().join("instances").join(name).join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("openclaw.json"), "{}").unwrap();
    }
    let registry = Arc::new(Registry::load(store).await.unwrap());
    let runtime = Arc::new(local_runtime(data_dir.path()));
    let shutdown = CancellationToken::new();
    let lifecycle = Lifecycle::new(registry.clone(), runtime, WatchHub::default(), shutdown);

    // Not leading: nothing is touched.
    let follower = Lifecycle::new(
        registry.clone(),
        Arc::new(local_runtime(data_dir.path())),
        WatchHub::default(),
        CancellationToken::new(),
    )
    .with_leadership(tokio::sync::watch::channel(false).1);
    assert_eq!(purge_expired(&follower, Duration::from_secs(30)).await, 0);
    assert!(data_dir.path().join("instances/old").exists());

    assert_eq!(purge_expired(&lifecycle, Duration::from_secs(30)).await, 1);
    assert!(!data_dir.path().join("instances/old").exists());
    assert!(
        data_dir
            .path()
            .join("instances/recent/state/openclaw.json")
            .exists()
    );
    assert_eq!(registry.store().kept_data_of("user-1").await.unwrap(), 1);
    // A second pass finds nothing more to do.
    assert_eq!(purge_expired(&lifecycle, Duration::from_secs(30)).await, 0);
}

#[test]
fn the_purge_runs_often_enough_for_short_retentions_and_at_most_hourly() {
    assert_eq!(
        purge_interval(Duration::from_secs(2)),
        Duration::from_secs(1)
    );
    assert_eq!(
        purge_interval(Duration::from_secs(40)),
        Duration::from_secs(10)
    );
    assert_eq!(
        purge_interval(Duration::from_secs(7 * 24 * 3600)),
        Duration::from_secs(3600)
    );
}
