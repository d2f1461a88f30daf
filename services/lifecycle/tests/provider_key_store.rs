//! The provider-key and subscription rows on both engines (SQLite and PostgreSQL):
//! one key per owner (a second insert changes nothing), limits and rotation are
//! conditional on the key's hash, a key counts as unused only when its owner has no
//! instance and no kept data, and lapses come due after their grace until recorded.

use clawfleet_database::testing::{Backend, TestDatabase};
use clawfleet_kit::secret::{ExposeSecret, SecretString};
use clawfleet_lifecycle::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Plan},
    provider_keys::store::{OwnerKey, Subscription},
    store::InstanceStore,
};

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

fn key(owner: &str, hash: &str, value: &str) -> OwnerKey {
    OwnerKey {
        owner: owner.into(),
        hash: hash.into(),
        value: SecretString::from(value.to_owned()),
        limit_usd: 2.0,
        disabled: false,
        alerted_percent: 0,
        updated_at_ms: 0,
    }
}

fn instance(id: &str, owner: &str) -> InstanceRecord {
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
        updated_at_ms: 1,
        deleting: None,
        generation: 0,
    }
}

#[tokio::test]
async fn one_key_per_owner_with_conditional_changes() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let store = InstanceStore::open(&database.url).await.unwrap();
        assert!(store.owner_key("user-1").await.unwrap().is_none());
        assert!(
            store
                .insert_owner_key(&key("user-1", "h1", "sk-1"), 10)
                .await
                .unwrap()
        );
        // A concurrent create's key loses: the first one stays.
        assert!(
            !store
                .insert_owner_key(&key("user-1", "h2", "sk-2"), 11)
                .await
                .unwrap()
        );
        let stored = store.owner_key("user-1").await.unwrap().unwrap();
        assert_eq!(
            (stored.hash.as_str(), stored.value.expose_secret()),
            ("h1", "sk-1"),
            "{backend:?}"
        );

        // Limits and rotation change only the key they name.
        assert!(
            !store
                .set_owner_key_limits("user-1", "h2", 9.0, true, 12)
                .await
                .unwrap()
        );
        assert!(
            store
                .set_owner_key_limits("user-1", "h1", 25.0, true, 12)
                .await
                .unwrap()
        );
        let stored = store.owner_key("user-1").await.unwrap().unwrap();
        assert_eq!(
            (stored.limit_usd, stored.disabled),
            (25.0, true),
            "{backend:?}"
        );
        store.set_owner_key_alert("user-1", "h1", 80).await.unwrap();
        let new_value = SecretString::from("sk-3".to_owned());
        assert!(
            !store
                .replace_owner_key("user-1", "h9", "h3", &new_value, 13)
                .await
                .unwrap()
        );
        assert!(
            store
                .replace_owner_key("user-1", "h1", "h3", &new_value, 13)
                .await
                .unwrap()
        );
        let stored = store.owner_key("user-1").await.unwrap().unwrap();
        assert_eq!(
            (
                stored.hash.as_str(),
                stored.value.expose_secret(),
                stored.alerted_percent
            ),
            ("h3", "sk-3", 0),
            "a rotated key starts without alerts ({backend:?})"
        );
        assert!(!store.forget_owner_key("user-1", "h1").await.unwrap());
        assert!(store.forget_owner_key("user-1", "h3").await.unwrap());
        assert!(
            store.owner_key("user-1").await.unwrap().is_none(),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn retired_keys_wait_for_their_delete_once_each() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let store = InstanceStore::open(&database.url).await.unwrap();
        store.retire_key("user-1", "h-old", 20).await.unwrap();
        store.retire_key("user-2", "h-lost", 10).await.unwrap();
        store.retire_key("user-1", "h-old", 30).await.unwrap();
        assert_eq!(
            store.retired_keys(10).await.unwrap(),
            ["h-lost", "h-old"],
            "{backend:?}"
        );
        store.forget_retired_key("h-lost").await.unwrap();
        assert_eq!(
            store.retired_keys(10).await.unwrap(),
            ["h-old"],
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_key_is_unused_only_without_instances_and_kept_data() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let store = InstanceStore::open(&database.url).await.unwrap();
        store
            .insert_owner_key(&key("user-1", "h1", "sk-1"), 10)
            .await
            .unwrap();
        store
            .insert_owner_key(&key("user-2", "h2", "sk-2"), 10)
            .await
            .unwrap();
        store.insert(&instance("alice", "user-1")).await.unwrap();
        let unused: Vec<String> = store
            .unused_owner_keys(100)
            .await
            .unwrap()
            .into_iter()
            .map(|key| key.owner)
            .collect();
        assert_eq!(unused, ["user-2"], "{backend:?}");
        // Too recent: a create may be about to store its instance.
        assert!(
            store.unused_owner_keys(5).await.unwrap().is_empty(),
            "{backend:?}"
        );

        // Deleted with its data kept: still in use until the kept data is purged.
        let id = InstanceId::parse("alice").unwrap();
        store.mark_deleting(&id, true, 20).await.unwrap();
        store.remove_deleted(&id, 20).await.unwrap();
        let unused = store.unused_owner_keys(100).await.unwrap();
        assert_eq!(unused.len(), 1, "{backend:?}");
        assert!(store.owner_key_if_unused("user-1").await.unwrap().is_none());
        store.forget_kept_data(&id, i64::MAX).await.unwrap();
        let key = store.owner_key_if_unused("user-1").await.unwrap().unwrap();
        assert_eq!(key.hash, "h1", "{backend:?}");
        let unused = store.unused_owner_keys(100).await.unwrap();
        assert_eq!(unused.len(), 2, "{backend:?}");
    }
}

#[tokio::test]
async fn lapses_come_due_after_their_grace_until_their_stop_is_recorded() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let store = InstanceStore::open(&database.url).await.unwrap();
        let lapsed = Subscription {
            owner: "user-1".into(),
            plan: Plan::Pro,
            active: false,
            lapsed_since_ms: Some(1_000),
            stopped_for_lapse: None,
        };
        store.put_subscription(&lapsed, 1_000).await.unwrap();
        store
            .put_subscription(
                &Subscription {
                    owner: "user-2".into(),
                    plan: Plan::Free,
                    active: true,
                    lapsed_since_ms: None,
                    stopped_for_lapse: None,
                },
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(
            store.subscription("user-1").await.unwrap(),
            Some(lapsed.clone())
        );
        assert!(
            store.lapses_due(999).await.unwrap().is_empty(),
            "{backend:?}"
        );
        assert_eq!(store.lapses_due(1_000).await.unwrap(), vec![lapsed.clone()]);

        let stopped = Subscription {
            stopped_for_lapse: Some(vec!["alice".into(), "bob".into()]),
            ..lapsed
        };
        store.put_subscription(&stopped, 2_000).await.unwrap();
        assert!(
            store.lapses_due(i64::MAX).await.unwrap().is_empty(),
            "{backend:?}"
        );
        assert_eq!(store.subscription("user-1").await.unwrap(), Some(stopped));
    }
}
