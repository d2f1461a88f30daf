//! One unreadable instance row (an unknown plan, broken secrets JSON) is reported and
//! skipped: the registry loads every other instance, and the unreadable one is neither
//! taken for a deletion nor its workloads for an orphan.

use clawfleet_database::testing::{Backend, TestDatabase};
use clawfleet_lifecycle::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Plan},
    registry::Registry,
    store::InstanceStore,
};
use sqlx::Connection;

fn record(id: &str) -> InstanceRecord {
    InstanceRecord {
        revision: 0,
        id: InstanceId::parse(id).unwrap(),
        owner: "user-1".into(),
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

#[tokio::test]
async fn a_corrupt_row_is_skipped_and_the_rest_load() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let store = InstanceStore::open(&database.url).await.unwrap();
    for id in ["alice", "bob", "carol"] {
        store.insert(&record(id)).await.unwrap();
    }
    let mut connection = sqlx::SqliteConnection::connect(&database.url)
        .await
        .unwrap();
    sqlx::query("UPDATE instances SET plan = 'platinum' WHERE id = 'bob'")
        .execute(&mut connection)
        .await
        .unwrap();
    sqlx::query("UPDATE instances SET secrets = '{not json' WHERE id = 'carol'")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    let (records, unreadable) = store.load_all_reporting().await.unwrap();
    assert_eq!(
        records
            .iter()
            .map(|record| record.id.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    assert_eq!(unreadable, ["bob", "carol"]);

    let registry = Registry::load(store).await.unwrap();
    assert!(registry.get(&InstanceId::parse("alice").unwrap()).is_some());
    assert!(registry.is_unreadable(&InstanceId::parse("bob").unwrap()));
    assert!(!registry.is_unreadable(&InstanceId::parse("alice").unwrap()));
    // A reload does not take the unreadable rows for deletions.
    let changes = registry.resync().await.unwrap();
    assert!(changes.is_empty(), "{changes:?}");
}
