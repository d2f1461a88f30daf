//! Subscriptions in the account store on SQLite and PostgreSQL: webhook events are
//! idempotent by id and never go back in time, reads and events agree on ordering,
//! operators' plans, and deleting a user leaves no row naming them.

use clawfleet_auth::{
    store::{AuthStore, EventRecording, NewUser, PlanSource, ReceivedEvent, SubscriptionState},
    validation::Email,
};
use clawfleet_kit::plan::Plan;

use crate::support::{Backend, database::TestDatabase};

const T0: i64 = 1_800_000_000_000;

fn state(plan: Plan, active: bool) -> SubscriptionState {
    SubscriptionState {
        plan,
        active,
        entitlements: if plan == Plan::Free {
            Vec::new()
        } else {
            vec![plan.as_str().to_owned()]
        },
        expires_at_ms: Some(T0 + 86_400_000),
    }
}

fn event<'a>(id: &'a str, user_id: &'a str, at_ms: i64) -> ReceivedEvent<'a> {
    ReceivedEvent {
        event_id: id,
        user_id,
        event_type: "RENEWAL",
        event_timestamp_ms: at_ms,
        received_at_ms: at_ms + 5,
    }
}

async fn store_with_user(backend: Backend) -> (TestDatabase, AuthStore, String) {
    let database = TestDatabase::create(backend).await;
    let store = AuthStore::open(&database.url).await.unwrap();
    let user = store
        .insert_user(NewUser {
            email: Some(Email::parse("sub@example.com").unwrap()),
            name: "Sub".into(),
            password_hash: None,
            email_verified: true,
            created_at_ms: T0,
        })
        .await
        .unwrap();
    (database, store, user.id)
}

async fn a_new_user_is_free_in_good_standing(backend: Backend) {
    let (_database, store, user_id) = store_with_user(backend).await;
    let record = store.subscription_of(&user_id).await.unwrap().unwrap();
    assert_eq!(record.state.plan, Plan::Free);
    assert!(record.state.active);
    assert_eq!(record.source, PlanSource::Default);
    assert_eq!(record.checked_at_ms, 0);
    assert!(store.subscription_of("usr_nobody").await.unwrap().is_none());
}

async fn events_apply_once_and_never_go_back_in_time(backend: Backend) {
    let (_database, store, user_id) = store_with_user(backend).await;
    let applied = store
        .record_subscription_event(
            &event("evt-2", &user_id, T0 + 2000),
            Some(state(Plan::Pro, true)),
        )
        .await
        .unwrap();
    let EventRecording::Applied { record, changed } = applied else {
        panic!("not applied: {applied:?}");
    };
    assert!(changed);
    assert_eq!(record.state.plan, Plan::Pro);
    assert_eq!(record.source, PlanSource::RevenueCat);
    assert_eq!(record.last_event_at_ms, T0 + 2000);
    // The plan is the user's plan: sign-ins read it from `users`.
    assert_eq!(
        store.user_by_id(&user_id).await.unwrap().unwrap().plan,
        Plan::Pro
    );

    // The same event again (a retry) changes nothing, even with other contents.
    let again = store
        .record_subscription_event(
            &event("evt-2", &user_id, T0 + 9000),
            Some(state(Plan::Free, false)),
        )
        .await
        .unwrap();
    assert!(
        matches!(again, EventRecording::Duplicate(Some(ref current)) if current.state.plan == Plan::Pro),
        "{again:?}"
    );

    // An older event arriving late is recorded as stale and changes nothing.
    let late = store
        .record_subscription_event(
            &event("evt-1", &user_id, T0 + 1000),
            Some(state(Plan::Free, false)),
        )
        .await
        .unwrap();
    assert!(
        matches!(late, EventRecording::Stale(ref current) if current.state.plan == Plan::Pro),
        "{late:?}"
    );

    // A newer event applies; an event type that changes nothing is only recorded.
    let expired = store
        .record_subscription_event(
            &event("evt-3", &user_id, T0 + 3000),
            Some(state(Plan::Free, false)),
        )
        .await
        .unwrap();
    assert!(
        matches!(expired, EventRecording::Applied { changed: true, ref record } if !record.state.active),
        "{expired:?}"
    );
    let ignored = store
        .record_subscription_event(&event("evt-4", &user_id, T0 + 4000), None)
        .await
        .unwrap();
    assert!(matches!(ignored, EventRecording::Ignored(_)), "{ignored:?}");
    let unknown = store
        .record_subscription_event(
            &event("evt-5", "usr_nobody", T0 + 5000),
            Some(state(Plan::Pro, true)),
        )
        .await
        .unwrap();
    assert_eq!(unknown, EventRecording::UnknownUser);
    let record = store.subscription_of(&user_id).await.unwrap().unwrap();
    assert_eq!(
        (record.state.plan, record.state.active),
        (Plan::Free, false)
    );
    assert_eq!(record.last_event_at_ms, T0 + 3000);
}

async fn a_read_older_than_the_newest_event_only_moves_the_check_time(backend: Backend) {
    let (_database, store, user_id) = store_with_user(backend).await;
    let (read, changed) = store
        .record_subscriber_read(&user_id, state(Plan::Enterprise, true), T0)
        .await
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!(read.state.plan, Plan::Enterprise);
    assert_eq!((read.checked_at_ms, read.last_event_at_ms), (T0, T0));
    store
        .record_subscription_event(
            &event("evt-a", &user_id, T0 + 500),
            Some(state(Plan::Pro, true)),
        )
        .await
        .unwrap();
    // A read that started before that event finishes after it: the event wins.
    let (record, changed) = store
        .record_subscriber_read(&user_id, state(Plan::Enterprise, true), T0 + 100)
        .await
        .unwrap()
        .unwrap();
    assert!(!changed);
    assert_eq!(record.state.plan, Plan::Pro);
    assert_eq!(record.checked_at_ms, T0 + 100);
    assert!(
        store
            .record_subscriber_read("usr_nobody", state(Plan::Pro, true), T0)
            .await
            .unwrap()
            .is_none()
    );
}

async fn operators_set_plans_in_good_standing(backend: Backend) {
    let (_database, store, user_id) = store_with_user(backend).await;
    let (record, changed) = store
        .set_plan_by_operator(&user_id, Plan::Enterprise, T0)
        .await
        .unwrap()
        .unwrap();
    assert!(changed);
    assert_eq!(record.source, PlanSource::Operator);
    assert!(record.state.active);
    let (_, changed) = store
        .set_plan_by_operator(&user_id, Plan::Enterprise, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert!(!changed, "setting the same plan again changes nothing");
    assert!(
        store
            .set_plan_by_operator("usr_nobody", Plan::Pro, T0)
            .await
            .unwrap()
            .is_none()
    );
}

async fn deleting_a_user_leaves_no_row_naming_them(backend: Backend) {
    let (_database, store, user_id) = store_with_user(backend).await;
    store
        .link_identity_with_verified_email(&user_id, "google", "google-sub-1", T0)
        .await
        .unwrap();
    store
        .insert_refresh_token(&clawfleet_auth::store::NewRefreshToken {
            token_hash: "ab".repeat(32),
            family_id: "family-1".into(),
            user_id: user_id.clone(),
            created_at_ms: T0,
            expires_at_ms: T0 + 86_400_000,
        })
        .await
        .unwrap();
    store
        .record_subscription_event(&event("evt-d", &user_id, T0), Some(state(Plan::Pro, true)))
        .await
        .unwrap();
    let other = store
        .insert_user(NewUser {
            email: Some(Email::parse("other@example.com").unwrap()),
            name: "Other".into(),
            password_hash: None,
            email_verified: true,
            created_at_ms: T0,
        })
        .await
        .unwrap();
    let deleted = store.delete_user(&user_id).await.unwrap().unwrap();
    assert_eq!((deleted.identities, deleted.refresh_tokens), (1, 1));
    for (table, count) in store.rows_naming_user(&user_id).await.unwrap() {
        assert_eq!(count, 0, "{table} still names the deleted user");
    }
    assert!(store.user_by_id(&other.id).await.unwrap().is_some());
    assert!(store.delete_user(&user_id).await.unwrap().is_none());
}

on_both_backends!(
    a_new_user_is_free_in_good_standing,
    events_apply_once_and_never_go_back_in_time,
    a_read_older_than_the_newest_event_only_moves_the_check_time,
    operators_set_plans_in_good_standing,
    deleting_a_user_leaves_no_row_naming_them,
);
