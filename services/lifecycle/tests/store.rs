//! The instance store on both engines (SQLite and the PostgreSQL server `.ci/run`
//! starts): records round-trip, conditional writes never lose an update when two
//! replicas (two pools on one database) race on one id, the quota holds under racing
//! creates, a delete is marked before it is finished, other replicas hear every change,
//! and a store written before deletes were marked opens and upgrades.

use std::{collections::BTreeSet, sync::Arc};

use clawfleet_database::testing::{Backend, TestDatabase};
use clawfleet_lifecycle::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Plan},
    registry::{Change, Registry},
    store::{CHANGES_CHANNEL, InstanceStore, StoreError, Update},
};

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

fn record(id: &str, owner: &str) -> InstanceRecord {
    InstanceRecord {
        revision: 0,
        id: InstanceId::parse(id).unwrap(),
        owner: owner.into(),
        plan: Plan::Pro,
        desired_state: DesiredState::Running,
        model: "anthropic/claude".into(),
        gateway_token: "token".into(),
        secrets: [("ANTHROPIC_API_KEY".to_string(), "sk".to_string())].into(),
        created_at_ms: 1,
        updated_at_ms: 2,
        deleting: None,
        generation: 0,
    }
}

fn id(text: &str) -> InstanceId {
    InstanceId::parse(text).unwrap()
}

/// Two stores on one database: what two lifecycle replicas hold.
async fn replicas(database: &TestDatabase) -> (InstanceStore, InstanceStore) {
    let first = InstanceStore::open(&database.url).await.unwrap();
    let second = InstanceStore::open(&database.url).await.unwrap();
    (first, second)
}

#[tokio::test]
async fn records_round_trip_and_duplicates_change_nothing() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let store = InstanceStore::open(&database.url).await.unwrap();
        let stored = store.insert(&record("alice", "user-1")).await.unwrap();
        assert_eq!(stored.generation, 1, "{backend:?}");
        let loaded = store.load_all().await.unwrap();
        assert_eq!(loaded, vec![stored.clone()], "{backend:?}");
        assert_eq!(loaded[0].secrets["ANTHROPIC_API_KEY"], "sk", "{backend:?}");

        let other = record("alice", "someone-else");
        assert!(
            matches!(
                store.insert(&other).await,
                Err(StoreError::AlreadyExists(_))
            ),
            "{backend:?}"
        );
        assert_eq!(
            store.get(&id("alice")).await.unwrap(),
            Some(stored),
            "{backend:?}"
        );
        store.close().await;
    }
}

#[tokio::test]
async fn a_marked_delete_freezes_the_record_until_it_is_removed() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let store = InstanceStore::open(&database.url).await.unwrap();
        let alice = id("alice");
        assert_eq!(
            store
                .set_desired_state(&alice, DesiredState::Stopped, 3)
                .await
                .unwrap(),
            Update::Missing
        );
        // A row not marked deleting is never removed.
        store.insert(&record("alice", "user-1")).await.unwrap();
        assert!(
            !store.remove_deleted(&alice, 6).await.unwrap(),
            "{backend:?}"
        );

        let Update::Changed(stopped) = store
            .set_desired_state(&alice, DesiredState::Stopped, 3)
            .await
            .unwrap()
        else {
            panic!("{backend:?}: stop did not change alice");
        };
        assert_eq!(stopped.desired_state, DesiredState::Stopped);
        assert_eq!(stopped.generation, 2);

        let Update::Changed(marked) = store.mark_deleting(&alice, false, 4).await.unwrap() else {
            panic!("{backend:?}: the delete was not recorded");
        };
        let deletion = marked.deleting.expect("marked");
        assert_eq!((deletion.since_ms, deletion.preserve_data), (4, false));

        // Nothing changes a record being deleted, and a second delete joins the first.
        for update in [
            store
                .set_desired_state(&alice, DesiredState::Running, 5)
                .await
                .unwrap(),
            store.set_gateway_token(&alice, "rotated", 5).await.unwrap(),
            store.mark_deleting(&alice, true, 5).await.unwrap(),
        ] {
            assert_eq!(update, Update::Deleting(marked.clone()), "{backend:?}");
        }
        assert!(
            store.remove_deleted(&alice, 6).await.unwrap(),
            "{backend:?}"
        );
        assert!(
            !store.remove_deleted(&alice, 6).await.unwrap(),
            "{backend:?}"
        );
        assert_eq!(store.get(&alice).await.unwrap(), None);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_on_two_replicas_stay_within_the_quota() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let (first, second) = replicas(&database).await;
        let stores = [Arc::new(first), Arc::new(second)];
        let creates = (0..12).map(|index| {
            let store = stores[index % 2].clone();
            tokio::spawn(async move {
                store
                    .insert_within_quota(&record(&format!("i{index}"), "user-1"), Some(3))
                    .await
            })
        });
        let mut created = 0;
        for create in creates {
            match create.await.unwrap() {
                Ok(_) => created += 1,
                Err(StoreError::QuotaExceeded {
                    owned: 3,
                    kept: 0,
                    quota: 3,
                }) => {}
                Err(other) => panic!("{backend:?}: unexpected {other}"),
            }
        }
        assert_eq!(created, 3, "{backend:?}");
        assert_eq!(stores[0].load_all().await.unwrap().len(), 3, "{backend:?}");
        // A deleting instance no longer counts against the quota.
        let first_id = stores[0].load_all().await.unwrap()[0].id.clone();
        stores[1].mark_deleting(&first_id, true, 9).await.unwrap();
        stores[0]
            .insert_within_quota(&record("next", "user-1"), Some(3))
            .await
            .unwrap();
        for store in stores {
            store.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writes_on_one_id_from_two_replicas_lose_nothing() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let (first, second) = replicas(&database).await;
        let stores = [Arc::new(first), Arc::new(second)];
        let alice = id("alice");
        // Both replicas create alice: exactly one wins, the other is told it exists.
        let creates: Vec<_> = stores
            .iter()
            .map(|store| {
                let store = store.clone();
                tokio::spawn(async move { store.insert(&record("alice", "user-1")).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for create in creates {
            outcomes.push(create.await.unwrap());
        }
        assert_eq!(outcomes.iter().filter(|outcome| outcome.is_ok()).count(), 1);
        assert!(
            outcomes
                .iter()
                .any(|outcome| matches!(outcome, Err(StoreError::AlreadyExists(_))))
        );

        // Forty stops and starts race on both replicas, then a delete joins the race:
        // every write counts in the generation, and after the delete nothing changes.
        let writes: Vec<_> = (0..40)
            .map(|index| {
                let store = stores[index % 2].clone();
                let alice = alice.clone();
                let state = if index % 3 == 0 {
                    DesiredState::Stopped
                } else {
                    DesiredState::Running
                };
                tokio::spawn(async move {
                    if index == 25 {
                        store.mark_deleting(&alice, true, 100).await
                    } else {
                        store
                            .set_desired_state(&alice, state, 10 + index as i64)
                            .await
                    }
                })
            })
            .collect();
        let mut changed = 0;
        let mut refused = 0;
        for write in writes {
            match write.await.unwrap().unwrap() {
                Update::Changed(_) => changed += 1,
                Update::Deleting(record) => {
                    assert!(record.deleting.is_some());
                    refused += 1;
                }
                Update::Missing => panic!("{backend:?}: alice vanished"),
            }
        }
        assert_eq!(changed + refused, 40, "{backend:?}");
        let settled = stores[0].get(&alice).await.unwrap().unwrap();
        assert!(settled.deleting.is_some(), "{backend:?}");
        // One generation per change that happened, the create's included.
        assert_eq!(settled.generation, 1 + changed, "{backend:?}");
        for store in stores {
            store.close().await;
        }
    }
}

#[tokio::test]
async fn a_replica_hears_and_reloads_what_another_wrote() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let (first, second) = replicas(&database).await;
    let pool = match second.database() {
        clawfleet_database::Database::Postgres(pool) => pool.clone(),
        clawfleet_database::Database::Sqlite(_) => unreachable!("a PostgreSQL database"),
    };
    // Received continuously, as the replication task does.
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen(CHANGES_CHANNEL).await.unwrap();
    let (heard, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    let listening = tokio::spawn(async move {
        while let Ok(notification) = listener.recv().await {
            if heard.send(notification.payload().to_owned()).is_err() {
                return;
            }
        }
    });
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(10), notifications.recv())
            .await
            .expect("a change notification within 10 s")
            .expect("the listener runs")
    };
    let follower = Registry::load(second).await.unwrap();
    let alice = id("alice");

    first.insert(&record("alice", "user-1")).await.unwrap();
    assert_eq!(next().await, "alice");
    // Read through before the notification is handled, then the refresh is a no-op.
    let loaded = follower.get_or_load(&alice).await.unwrap().unwrap();
    assert_eq!(follower.refresh(&alice).await.unwrap(), None);

    first.mark_deleting(&alice, true, 7).await.unwrap();
    assert_eq!(next().await, "alice");
    let Some(Change::Upserted(marked)) = follower.refresh(&alice).await.unwrap() else {
        panic!("the follower did not reload the marked delete");
    };
    assert!(marked.deleting.is_some());
    assert!(marked.revision > loaded.revision);

    first.remove_deleted(&alice, 6).await.unwrap();
    assert_eq!(next().await, "alice");
    assert!(matches!(
        follower.refresh(&alice).await.unwrap(),
        Some(Change::Removed(_))
    ));
    assert!(follower.get(&alice).is_none());

    // Changes missed while not listening come back with a full reload.
    first.insert(&record("bob", "user-2")).await.unwrap();
    let changes = follower.resync().await.unwrap();
    let ids: BTreeSet<String> = changes
        .iter()
        .map(|change| match change {
            Change::Upserted(record) | Change::Removed(record) => record.id.to_string(),
        })
        .collect();
    assert_eq!(ids, ["bob".to_owned()].into());
    listening.abort();
    first.close().await;
    follower.close().await;
}

#[tokio::test]
async fn a_store_from_before_marked_deletes_opens_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lifecycle.db").display());
    {
        // The schema and migration table the lifecycle wrote before it shared the
        // database crate (sqlx's default table, first migration only).
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        for statement in [
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
            "INSERT INTO _sqlx_migrations VALUES (1, 'instances', CURRENT_TIMESTAMP, 1, x'00', 1)",
            "CREATE TABLE instances (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', \
             plan TEXT NOT NULL, desired_state TEXT NOT NULL, model TEXT NOT NULL DEFAULT '', \
             gateway_token TEXT NOT NULL, secrets TEXT NOT NULL DEFAULT '{}', \
             created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL)",
            "CREATE INDEX instances_by_owner ON instances (owner, id)",
            "INSERT INTO instances VALUES ('alice', 'user-1', 'pro', 'stopped', '', 't', '{}', 1, 2)",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let store = InstanceStore::open(&url).await.unwrap();
    let alice = store.get(&id("alice")).await.unwrap().unwrap();
    assert_eq!(alice.desired_state, DesiredState::Stopped);
    assert_eq!((alice.deleting, alice.generation), (None, 1));
    assert!(matches!(
        store.mark_deleting(&alice.id, true, 3).await.unwrap(),
        Update::Changed(_)
    ));
    store.close().await;
}
