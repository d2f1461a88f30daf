//! The account store on SQLite and PostgreSQL: migrations, uniqueness, refresh-token
//! rotation (including racing rotations) and revocation.

use std::sync::Arc;

use crate::support::{Backend, database::TestDatabase};
use clawfleet_auth::{
    digest::sha256_hex,
    store::{
        AuthStore, EmailClaim, MIGRATIONS_TABLE, NewRefreshToken, NewUser, Rotation, StoreError,
        UserRecord,
    },
    validation::Email,
};
use sqlx::{
    PgPool, SqlSafeStr, SqlitePool,
    migrate::{Migration, MigrationType, Migrator},
};

const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    clawfleet_auth::sessions::now_ms()
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Some(Email::parse(email).unwrap()),
        name: "Test".into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        email_verified: false,
        created_at_ms: now_ms(),
    }
}

fn token(user_id: &str, family_id: &str, secret: &str, expires_at_ms: i64) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: sha256_hex(secret),
        family_id: family_id.into(),
        user_id: user_id.into(),
        created_at_ms: now_ms(),
        expires_at_ms,
    }
}

/// Another service's migrations in the same database, in sqlx's default table.
/// A fresh store holding one user with one refresh token (`secret`, in `family_id`)
/// that expires at `expires_at_ms`. The database lives as long as the returned guard.
async fn store_with_token(
    backend: Backend,
    email: &str,
    family_id: &str,
    secret: &str,
    expires_at_ms: i64,
) -> (TestDatabase, AuthStore, UserRecord) {
    let database = TestDatabase::create(backend).await;
    let store = AuthStore::open(&database.url).await.unwrap();
    let user = store.insert_user(new_user(email)).await.unwrap();
    store
        .insert_refresh_token(&token(&user.id, family_id, secret, expires_at_ms))
        .await
        .unwrap();
    (database, store, user)
}

fn neighbour_migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "neighbour".into(),
        MigrationType::Simple,
        "CREATE TABLE neighbour (id TEXT PRIMARY KEY)".into_sql_str(),
        false,
    )])
}

async fn count_rows(url: &str, table: &str, backend: Backend) -> i64 {
    let query = format!("SELECT COUNT(*) FROM {table}");
    match backend {
        Backend::Sqlite => {
            let pool = SqlitePool::connect(url).await.unwrap();
            let count = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            count
        }
        Backend::Postgres => {
            let pool = PgPool::connect(url).await.unwrap();
            let count = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            count
        }
    }
}

async fn migrations_keep_their_own_table_next_to_another_service(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    match backend {
        Backend::Sqlite => {
            let options = format!("{}?mode=rwc", database.url);
            let pool = SqlitePool::connect(&options).await.unwrap();
            neighbour_migrator().run(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = PgPool::connect(&database.url).await.unwrap();
            neighbour_migrator().run(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let store = AuthStore::open(&database.url).await.unwrap();
    assert_eq!(store.backend_name(), format!("{backend:?}").to_lowercase());
    store.close().await;
    // Opening again applies nothing twice.
    let store = AuthStore::open(&database.url).await.unwrap();
    store.close().await;
    // One row per auth migration (accounts, refresh successors, subscriptions), each
    // applied once.
    assert_eq!(
        count_rows(&database.url, MIGRATIONS_TABLE, backend).await,
        3
    );
    assert_eq!(
        count_rows(&database.url, "_sqlx_migrations", backend).await,
        1
    );
    // The neighbour's migrations still run cleanly after ours.
    match backend {
        Backend::Sqlite => {
            let pool = SqlitePool::connect(&database.url).await.unwrap();
            neighbour_migrator().run(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = PgPool::connect(&database.url).await.unwrap();
            neighbour_migrator().run(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

async fn emails_are_unique(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let store = AuthStore::open(&database.url).await.unwrap();
    let first = store.insert_user(new_user("a@x.com")).await.unwrap();
    assert!(first.id.starts_with("usr_"));
    assert_eq!(first.plan.as_str(), "free");
    let second = store.insert_user(new_user("A@X.com ")).await;
    assert!(matches!(second, Err(StoreError::EmailTaken)), "{second:?}");
    assert_eq!(store.count_users().await.unwrap(), 1);
    let found = store
        .user_by_email(&Email::parse("a@x.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, first);
    assert_eq!(store.user_by_id(&first.id).await.unwrap(), Some(first));
    store.close().await;
}

async fn identities_are_unique_and_atomic_with_their_user(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let store = AuthStore::open(&database.url).await.unwrap();
    let user = store
        .insert_user_with_identity(new_user("g@x.com"), "google", "sub-1")
        .await
        .unwrap();
    let again = store
        .insert_user_with_identity(new_user("other@x.com"), "google", "sub-1")
        .await;
    assert!(matches!(again, Err(StoreError::IdentityTaken)), "{again:?}");
    // The user insert of the failed attempt was rolled back with it.
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert_eq!(
        store.user_by_identity("google", "sub-1").await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store.user_by_identity("apple", "sub-1").await.unwrap(),
        None
    );
    let taken = store
        .link_identity_with_verified_email(&user.id, "google", "sub-1", now_ms())
        .await;
    assert!(matches!(taken, Err(StoreError::IdentityTaken)), "{taken:?}");
    store
        .link_identity_with_verified_email(&user.id, "apple", "apple-sub", now_ms())
        .await
        .unwrap();
    let linked = store.user_by_id(&user.id).await.unwrap().unwrap();
    assert!(linked.email_verified);
    assert_eq!(
        store.providers_of(&linked).await.unwrap(),
        vec!["apple", "google"]
    );
    store.close().await;
}

async fn a_verified_link_claims_an_unverified_account(backend: Backend) {
    let expires = now_ms() + HOUR_MS;
    let (_database, store, user) =
        store_with_token(backend, "u@x.com", "fam-1", "A", expires).await;
    store
        .insert_refresh_token(&token(&user.id, "fam-2", "B", expires))
        .await
        .unwrap();
    let claim = store
        .link_identity_with_verified_email(&user.id, "google", "g-1", now_ms())
        .await
        .unwrap();
    assert_eq!(
        claim,
        EmailClaim::ClaimedUnverifiedAccount { revoked_tokens: 2 }
    );
    let claimed = store.user_by_id(&user.id).await.unwrap().unwrap();
    assert!(claimed.email_verified);
    assert_eq!(claimed.password_hash, None);
    for secret in ["A", "B"] {
        let record = store.refresh_token(&sha256_hex(secret)).await.unwrap();
        assert!(record.unwrap().revoked_at_ms.is_some(), "{secret} revoked");
    }
    // Verified now: the next provider only links.
    let again = store
        .link_identity_with_verified_email(&user.id, "apple", "a-1", now_ms())
        .await
        .unwrap();
    assert_eq!(again, EmailClaim::AlreadyVerified);
    store.close().await;
}

async fn a_verified_account_keeps_its_password_and_sessions_on_link(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let store = AuthStore::open(&database.url).await.unwrap();
    let user = store
        .insert_user(NewUser {
            email_verified: true,
            ..new_user("v@x.com")
        })
        .await
        .unwrap();
    let expires = now_ms() + HOUR_MS;
    store
        .insert_refresh_token(&token(&user.id, "fam-1", "A", expires))
        .await
        .unwrap();
    let claim = store
        .link_identity_with_verified_email(&user.id, "google", "g-1", now_ms())
        .await
        .unwrap();
    assert_eq!(claim, EmailClaim::AlreadyVerified);
    assert_eq!(store.user_by_id(&user.id).await.unwrap(), Some(user));
    let record = store
        .refresh_token(&sha256_hex("A"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.revoked_at_ms, None);
    store.close().await;
}

/// Only families that can never be refreshed again go: a rotated token stays while
/// its family lives, so a stolen copy still revokes the family when presented.
async fn purging_deletes_only_fully_expired_families(backend: Backend) {
    let now = now_ms();
    let (_database, store, user) =
        store_with_token(backend, "p@x.com", "dead", "D1", now - HOUR_MS).await;
    let live_after_rotation = [("live", "L1", now - 1), ("live", "L2", now + HOUR_MS)];
    let revoked_but_unexpired = [("revoked", "R1", now + HOUR_MS)];
    for (family, secret, expires) in live_after_rotation
        .into_iter()
        .chain(revoked_but_unexpired)
        .chain([("dead", "D2", now - 1)])
    {
        store
            .insert_refresh_token(&token(&user.id, family, secret, expires))
            .await
            .unwrap();
    }
    assert!(
        store
            .revoke_family_of(&sha256_hex("R1"), None, now)
            .await
            .unwrap()
    );
    assert_eq!(store.purge_expired_refresh_tokens(now).await.unwrap(), 2);
    for (secret, kept) in [
        ("D1", false),
        ("D2", false),
        ("L1", true),
        ("L2", true),
        ("R1", true),
    ] {
        let record = store.refresh_token(&sha256_hex(secret)).await.unwrap();
        assert_eq!(record.is_some(), kept, "{secret}");
    }
    assert_eq!(store.purge_expired_refresh_tokens(now).await.unwrap(), 0);
    store.close().await;
}

async fn rotation_rotates_once_and_reuse_revokes_the_family(backend: Backend) {
    let expires = now_ms() + HOUR_MS;
    let (_database, store, user) =
        store_with_token(backend, "r@x.com", "fam-1", "A", expires).await;
    let rotation = store
        .rotate_refresh_token(&sha256_hex("A"), &sha256_hex("B"), now_ms(), expires)
        .await
        .unwrap();
    assert_eq!(
        rotation,
        Rotation::Rotated {
            user_id: user.id.clone(),
            family_id: "fam-1".into()
        }
    );
    let reused = store
        .rotate_refresh_token(&sha256_hex("A"), &sha256_hex("C"), now_ms(), expires)
        .await
        .unwrap();
    assert_eq!(
        reused,
        Rotation::Reused {
            family_id: "fam-1".into()
        }
    );
    let newest = store
        .refresh_token(&sha256_hex("B"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        newest.revoked_at_ms.is_some(),
        "the newest token died with its family"
    );
    assert_eq!(store.refresh_token(&sha256_hex("C")).await.unwrap(), None);
    let after = store
        .rotate_refresh_token(&sha256_hex("B"), &sha256_hex("D"), now_ms(), expires)
        .await
        .unwrap();
    assert_eq!(after, Rotation::Invalid);
    let unknown = store
        .rotate_refresh_token(&sha256_hex("nope"), &sha256_hex("E"), now_ms(), expires)
        .await
        .unwrap();
    assert_eq!(unknown, Rotation::Invalid);
    store.close().await;
}

async fn racing_rotations_let_exactly_one_win(backend: Backend) {
    let expires = now_ms() + HOUR_MS;
    let (_database, store, _user) =
        store_with_token(backend, "race@x.com", "fam-race", "A", expires).await;
    let store = Arc::new(store);
    let attempts: Vec<_> = (0..8)
        .map(|attempt| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .rotate_refresh_token(
                        &sha256_hex("A"),
                        &sha256_hex(&format!("next-{attempt}")),
                        now_ms(),
                        expires,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (attempt, handle) in attempts.into_iter().enumerate() {
        match handle.await.unwrap() {
            Rotation::Rotated { .. } => winners.push(attempt),
            Rotation::Reused { .. } | Rotation::Retried { .. } | Rotation::Invalid => {}
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation may succeed");
    let winner = store
        .refresh_token(&sha256_hex(&format!("next-{}", winners[0])))
        .await
        .unwrap()
        .unwrap();
    assert!(
        winner.revoked_at_ms.is_some(),
        "the losers' reuse revoked the winner's family too"
    );
    store.close().await;
}

async fn expired_tokens_neither_rotate_nor_revoke(backend: Backend) {
    let (_database, store, _user) =
        store_with_token(backend, "old@x.com", "fam-old", "old", now_ms() - 1).await;
    let rotation = store
        .rotate_refresh_token(
            &sha256_hex("old"),
            &sha256_hex("new"),
            now_ms(),
            now_ms() + HOUR_MS,
        )
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Invalid);
    let stored = store
        .refresh_token(&sha256_hex("old"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.rotated_at_ms, None);
    assert_eq!(stored.revoked_at_ms, None);
    store.close().await;
}

async fn revoking_a_family_checks_the_owner(backend: Backend) {
    let expires = now_ms() + HOUR_MS;
    let (_database, store, user) =
        store_with_token(backend, "o@x.com", "fam-o", "T", expires).await;
    let hash = sha256_hex("T");
    assert!(
        !store
            .revoke_family_of(&hash, Some("usr_someone"), now_ms())
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_family_of(&hash, Some(&user.id), now_ms())
            .await
            .unwrap()
    );
    assert!(!store.revoke_family_of(&hash, None, now_ms()).await.unwrap());
    assert!(
        !store
            .revoke_family_of(&sha256_hex("unknown"), None, now_ms())
            .await
            .unwrap()
    );
    store.close().await;
}

on_both_backends!(
    migrations_keep_their_own_table_next_to_another_service,
    emails_are_unique,
    identities_are_unique_and_atomic_with_their_user,
    rotation_rotates_once_and_reuse_revokes_the_family,
    racing_rotations_let_exactly_one_win,
    expired_tokens_neither_rotate_nor_revoke,
    revoking_a_family_checks_the_owner,
    a_verified_link_claims_an_unverified_account,
    a_verified_account_keeps_its_password_and_sessions_on_link,
    purging_deletes_only_fully_expired_families,
);

#[test]
fn unsupported_urls_are_refused_without_echoing_them() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let error = runtime
        .block_on(AuthStore::open("mysql://root:hunter2@db/auth"))
        .unwrap_err();
    assert!(!error.to_string().contains("hunter2"));
    assert!(matches!(
        error,
        StoreError::Open(clawfleet_database::DatabaseError::UnsupportedUrl)
    ));
}
