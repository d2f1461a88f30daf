//! The App API end to end on a real platform (`clawfleet up`: edge, auth on SQLite,
//! lifecycle with a real gateway): accounts and tokens, the plan quota, and the
//! cross-tenant matrix — another user's instance is 404 on every route and stays as it was.

use std::time::{Duration, SystemTime};

use clawfleet_kit::{access_token::AccessTokenKeys, secret::ExposeSecret};
use clawfleet_tests::{
    app_user::{AppUser, PASSWORD, anonymous, post_raw},
    platform::{Platform, PlatformOptions, TEST_JWT_SECRET},
};
use http::Method;
use serde_json::{Value, json};

fn error_of(reply: &clawfleet_tests::http::Reply) -> Value {
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_tokens_quota_and_tenant_isolation() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 24000)).unwrap();
    let client = clawfleet_tests::http::client();

    // Sign-up, duplicate email (normalised), profile.
    let alice = AppUser::sign_up(&platform, "alice@example.com").await;
    let duplicate = anonymous(
        &platform,
        &client,
        "/auth/signup",
        json!({"email": "  ALICE@Example.com ", "password": PASSWORD}),
    )
    .await;
    assert_eq!(duplicate.status, 409, "{}", error_of(&duplicate));
    let me = alice.call(Method::GET, "/users/me", None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["email"], "alice@example.com");
    assert_eq!(me.json()["plan"], "free");

    // A wrong password and an unknown email are indistinguishable.
    let wrong_password = anonymous(
        &platform,
        &client,
        "/auth/login",
        json!({"email": "alice@example.com", "password": "not the password"}),
    )
    .await;
    let unknown_email = anonymous(
        &platform,
        &client,
        "/auth/login",
        json!({"email": "nobody@example.com", "password": "not the password"}),
    )
    .await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(wrong_password.status, unknown_email.status);
    assert_eq!(wrong_password.body, unknown_email.body);
    let login = anonymous(
        &platform,
        &client,
        "/auth/login",
        json!({"email": "alice@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(login.status, 200);
    assert_eq!(login.json()["tokenType"], "Bearer");
    assert_eq!(login.json()["expiresIn"], 900);

    // Refresh rotates. A retry with the rotated token moments later (a lost response)
    // gets the same successor; once the successor was used, the rotated token kills
    // the whole family.
    let refresh = |token: String| {
        let client = client.clone();
        let platform = &platform;
        async move {
            anonymous(
                platform,
                &client,
                "/auth/refresh",
                json!({"refreshToken": token}),
            )
            .await
        }
    };
    let refreshed = refresh(alice.refresh_token.clone()).await;
    assert_eq!(refreshed.status, 200);
    let newest = refreshed.json()["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(newest, alice.refresh_token);
    let retried = refresh(alice.refresh_token.clone()).await;
    assert_eq!(retried.status, 200);
    assert_eq!(retried.json()["refreshToken"], newest.as_str());
    let next = refresh(newest).await;
    assert_eq!(next.status, 200);
    let next = next.json()["refreshToken"].as_str().unwrap().to_owned();
    let reuse = refresh(alice.refresh_token.clone()).await;
    assert_eq!(reuse.status, 401);
    let after_reuse = refresh(next).await;
    assert_eq!(after_reuse.status, 401, "the family must be revoked");

    // Logout revokes the family of the token it is given.
    let session = login.json()["refreshToken"].as_str().unwrap().to_owned();
    let logout = alice
        .call(
            Method::POST,
            "/auth/logout",
            Some(json!({"refreshToken": session})),
        )
        .await;
    assert_eq!(logout.status, 200);
    assert_eq!(logout.json()["revoked"], true);
    let after_logout = anonymous(
        &platform,
        &client,
        "/auth/refresh",
        json!({"refreshToken": session}),
    )
    .await;
    assert_eq!(after_logout.status, 401);

    // An expired token signed with the right secret is still refused.
    let expired = mint_token("alice-id", SystemTime::now() - Duration::from_secs(3600));
    let reply = clawfleet_tests::http::send(
        &client,
        Method::GET,
        &format!("{}/instances", platform.edge_url),
        Some(&expired),
        None,
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 401);

    // Create within the plan quota: free allows one instance.
    let created = alice
        .call(
            Method::POST,
            "/instances",
            Some(json!({"secrets": {"ANTHROPIC_API_KEY": "sk-ant-app-secret"}})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", error_of(&created));
    let instance = created.json();
    let id = instance["userId"].as_str().unwrap().to_owned();
    assert!(!String::from_utf8_lossy(&created.body).contains("sk-ant-app-secret"));
    let second = alice.call(Method::POST, "/instances", None).await;
    assert_eq!(second.status, 412, "{}", error_of(&second));
    assert!(
        error_of(&second)["error"]
            .as_str()
            .unwrap()
            .contains("plan allows 1 instance"),
        "{}",
        error_of(&second)
    );

    // Bob sees nothing of Alice's, on every instance route.
    let bob = AppUser::sign_up(&platform, "bob@example.com").await;
    let listed = bob.call(Method::GET, "/instances", None).await;
    assert_eq!(listed.json()["instances"], json!([]));
    let base = format!("/instances/{id}");
    let matrix: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, base.clone(), None),
        (
            Method::POST,
            format!("{base}/telegram/setup"),
            Some(json!({"botToken": "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})),
        ),
        (
            Method::GET,
            format!("{base}/telegram/status?probe=true"),
            None,
        ),
        (
            Method::POST,
            format!("{base}/telegram/logout"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("{base}/pairing/list?channel=telegram"),
            None,
        ),
        (
            Method::POST,
            format!("{base}/pairing/approve"),
            Some(json!({"channel": "telegram", "code": "ABCDEFGH"})),
        ),
        (
            Method::POST,
            format!("{base}/whatsapp/qr"),
            Some(json!({"force": true})),
        ),
        (
            Method::POST,
            format!("{base}/whatsapp/wait"),
            Some(json!({"timeoutMs": 1000})),
        ),
        (Method::GET, format!("{base}/whatsapp/status"), None),
        (
            Method::POST,
            format!("{base}/rpc"),
            Some(json!({"method": "status"})),
        ),
        (Method::DELETE, format!("{base}?preservePvc=false"), None),
    ];
    let mut not_found_bodies = Vec::new();
    for (method, path, body) in matrix {
        let reply = bob.call(method.clone(), &path, body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", error_of(&reply));
        not_found_bodies.push(error_of(&reply)["code"].clone());
    }
    assert!(not_found_bodies.iter().all(|code| code == "not_found"));

    // Alice's instance is untouched: still hers, still wanted running, data kept.
    let still = alice.call(Method::GET, &base, None).await;
    assert_eq!(still.status, 200);
    assert_eq!(still.json()["desiredState"], "running");
    let mine = alice.call(Method::GET, "/instances", None).await;
    assert_eq!(mine.json()["instances"].as_array().unwrap().len(), 1);
    assert!(platform.instance_dir(&id).exists());

    // Alice deletes her own instance, purging its data.
    let deleted = alice
        .call(Method::DELETE, &format!("{base}?preservePvc=false"), None)
        .await;
    assert_eq!(deleted.status, 200, "{}", error_of(&deleted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sign_up_input_is_refused_and_nothing_is_stored() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 24100)).unwrap();
    let client = clawfleet_tests::http::client();
    let huge = "a".repeat(2 * 1024 * 1024);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", br#"{"email": "x@y.co", "password": "#.to_vec()),
        (
            "wrong types",
            br#"{"email": 42, "password": ["p"]}"#.to_vec(),
        ),
        (
            "unknown field",
            br#"{"email": "x@y.co", "password": "longenough", "admin": true}"#.to_vec(),
        ),
        (
            "huge",
            json!({"email": "big@y.co", "password": huge})
                .to_string()
                .into_bytes(),
        ),
    ];
    for (what, body) in bodies {
        let reply = post_raw(&platform, &client, "/auth/signup", body).await;
        assert!(reply.status.is_client_error(), "{what}: {}", reply.status);
    }
    for email in [
        "a'--@example.com",
        "robert'); DROP TABLE users;--@example.com",
        "alice\u{FF20}example.com",
        "\u{202E}moc.elpmaxe@ecila",
        "nul\u{0}@example.com",
        "two@@example.com",
        "no-at-sign",
        "",
    ] {
        let reply = anonymous(
            &platform,
            &client,
            "/auth/signup",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
        assert_eq!(reply.status, 400, "{email:?}: {}", error_of(&reply));
        let login = anonymous(
            &platform,
            &client,
            "/auth/login",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
        assert!(login.status.is_client_error(), "{email:?} was stored");
    }
    let short = anonymous(
        &platform,
        &client,
        "/auth/signup",
        json!({"email": "short@example.com", "password": "1234567"}),
    )
    .await;
    assert_eq!(short.status, 400);
    // The users table still works and is empty of all of the above.
    let fine = AppUser::sign_up(&platform, "fine@example.com").await;
    assert!(!fine.access_token.is_empty());
}

/// An access token signed with the platform's test secret, issued at `issued`.
fn mint_token(user: &str, issued: SystemTime) -> String {
    AccessTokenKeys::from_secret(TEST_JWT_SECRET.as_bytes())
        .unwrap()
        .issue(user, clawfleet_kit::plan::Plan::Free, issued)
        .unwrap()
        .token
        .expose_secret()
        .to_owned()
}
