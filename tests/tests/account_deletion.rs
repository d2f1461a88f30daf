//! `DELETE /users/me` end to end (docs/product/app-api.md#account-deletion) on the
//! platform in this process with a real gateway: a wrong password changes nothing; the
//! right one leaves nothing of the user in any store (auth users, identities, refresh
//! tokens, subscriptions; lifecycle instances and kept data) nor in the runtime (state
//! dir, gateway process), and the answer comes only then. Run with `--test-threads=1`.

use std::path::Path;

use clawfleet_auth::store::AuthStore;
use clawfleet_tests::{
    app_user::{AppUser, PASSWORD, anonymous},
    http::Reply,
    platform::{Platform, PlatformOptions},
    scenario::Operator,
};
use http::Method;
use serde_json::json;
use sqlx::SqlitePool;

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// Rows of the lifecycle's `instances` and `kept_data` tables owned by `owner`.
async fn lifecycle_rows(data: &Path, owner: &str) -> (i64, i64) {
    let url = format!("sqlite://{}", data.join("lifecycle.db").display());
    let pool = SqlitePool::connect(&url).await.unwrap();
    let mut counts = [0i64; 2];
    for (slot, table) in ["instances", "kept_data"].into_iter().enumerate() {
        let query = format!("SELECT COUNT(*) FROM {table} WHERE owner = $1");
        counts[slot] = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .bind(owner)
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    (counts[0], counts[1])
}

/// Rows of each auth table naming `user_id`.
async fn auth_rows(data: &Path, user_id: &str) -> Vec<(String, i64)> {
    let store = AuthStore::open(&format!("sqlite://{}", data.join("auth.db").display()))
        .await
        .unwrap();
    let rows = store.rows_naming_user(user_id).await.unwrap();
    store.close().await;
    rows
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_leaves_nothing_of_the_user() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 28500)).unwrap();
    let operator = Operator::new(&platform);
    let client = clawfleet_tests::http::client();

    let ada = AppUser::sign_up(&platform, "ada@example.com").await;
    let bob = AppUser::sign_up(&platform, "bob@example.com").await;
    let me = ada.call(Method::GET, "/users/me", None).await;
    let ada_id = me.json()["id"].as_str().unwrap().to_owned();
    let created = ada.call(Method::POST, "/instances", None).await;
    assert_eq!(created.status, 201, "{}", text(&created));
    let id = created.json()["userId"].as_str().unwrap().to_owned();
    operator.wait_running(&id).await;
    let gateway_pid = platform.gateway_pid(&id).expect("a running gateway");
    assert!(!processes_mentioning(&id).is_empty());

    // A wrong password, a missing proof or a mixed one: refused, and nothing changed.
    for (body, status) in [
        (json!({"password": "not the password"}), 401),
        (json!({}), 400),
        (
            json!({"password": PASSWORD, "provider": "google", "token": "a.b.c"}),
            400,
        ),
    ] {
        let refused = ada
            .call(Method::DELETE, "/users/me", Some(body.clone()))
            .await;
        assert_eq!(refused.status, status, "{body}: {}", text(&refused));
        assert_eq!(
            ada.call(Method::GET, &format!("/instances/{id}"), None)
                .await
                .status,
            200
        );
        assert_eq!(ada.call(Method::GET, "/users/me", None).await.status, 200);
        assert_eq!(lifecycle_rows(data.path(), &ada_id).await, (1, 0));
        assert!(platform.instance_dir(&id).exists());
    }
    let sessions = auth_rows(data.path(), &ada_id).await;
    assert!(sessions.contains(&("users".to_owned(), 1)), "{sessions:?}");
    assert!(
        sessions.contains(&("refresh_tokens".to_owned(), 1)),
        "{sessions:?}"
    );

    // The right password: the answer comes when nothing of ada is left.
    let deleted = ada
        .call(
            Method::DELETE,
            "/users/me",
            Some(json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", text(&deleted));
    let body = deleted.json();
    assert_eq!(body["deleted"], true);
    assert_eq!(body["instancesDeleted"], 1);
    assert_eq!(body["sessionsDeleted"], 1);

    for (table, count) in auth_rows(data.path(), &ada_id).await {
        assert_eq!(count, 0, "auth table {table} still names the user");
    }
    assert_eq!(lifecycle_rows(data.path(), &ada_id).await, (0, 0));
    assert!(
        !platform.instance_dir(&id).exists(),
        "the instance's data is gone"
    );
    // Neither the gateway nor anything else started for the instance still runs.
    let cmdline = std::fs::read(format!("/proc/{gateway_pid}/cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(&id),
        "the gateway still runs"
    );
    assert_eq!(processes_mentioning(&id), Vec::<String>::new());
    let listed = operator.get("/api/instances").await;
    assert!(!text(&listed).contains(&id), "{}", text(&listed));

    // Ada's credentials are dead; bob is untouched.
    assert_eq!(ada.call(Method::GET, "/users/me", None).await.status, 404);
    assert_eq!(ada.call(Method::POST, "/instances", None).await.status, 404);
    let login = anonymous(
        &platform,
        &client,
        "/auth/login",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(login.status, 401, "{}", text(&login));
    let refresh = anonymous(
        &platform,
        &client,
        "/auth/refresh",
        json!({ "refreshToken": ada.refresh_token }),
    )
    .await;
    assert_eq!(refresh.status, 401, "{}", text(&refresh));
    assert_eq!(bob.call(Method::GET, "/users/me", None).await.status, 200);
}
