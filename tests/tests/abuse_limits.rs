//! The App API's abuse limits end to end on a real platform: the per-user budget on
//! instance routes (429 + Retry-After), the per-account sign-in budget, and kept data of
//! deleted instances counted toward the plan until the lifecycle purges it.

use std::time::{Duration, Instant};

use clawfleet_tests::{
    app_user::{AppUser, anonymous},
    platform::{Platform, PlatformOptions},
};
use http::Method;
use serde_json::json;

fn options(data: &std::path::Path) -> PlatformOptions {
    let mut options = PlatformOptions::new(data, 24600);
    options.extra_env = [
        ("EDGE_APP_RATE_PER_MINUTE", "30"),
        ("CLAWFLEET_KEPT_DATA_RETENTION_SECONDS", "3"),
    ]
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .to_vec();
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_and_per_account_limits_and_kept_data() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(options(data.path())).unwrap();
    let client = clawfleet_tests::http::client();

    // Per user: 30 instance requests a minute, then 429 with Retry-After; others unaffected.
    let bob = AppUser::sign_up(&platform, "bob@example.com").await;
    for _ in 0..30 {
        let listed = bob.call(Method::GET, "/instances", None).await;
        assert_eq!(listed.status, 200);
    }
    let refused = bob.call(Method::GET, "/instances", None).await;
    assert_eq!(
        refused.status,
        429,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.json()["code"], "resource_exhausted");

    // Per account: 10 email sign-ins a minute (one more every 6 s), whatever the
    // password or the spelling of the email. Each refused guess costs a password hash,
    // so on a loaded machine a token may refill meanwhile: guesses are bounded, not exact.
    let mut locked = None;
    for attempt in 0..25 {
        let email = if attempt % 2 == 0 {
            "bob@example.com"
        } else {
            " BOB@Example.com"
        };
        let reply = anonymous(
            &platform,
            &client,
            "/auth/login",
            json!({"email": email, "password": format!("guess-{attempt}")}),
        )
        .await;
        if reply.status == 429 {
            locked = Some((attempt, reply));
            break;
        }
        assert_eq!(reply.status, 401, "attempt {attempt}");
    }
    let (attempts, locked) = locked.expect("the account budget never ran out");
    assert!(attempts >= 10, "locked after {attempts} attempts");
    assert!(locked.headers.contains_key("retry-after"));
    let message = locked.json()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("for this account"), "{message}");

    // Kept data counts toward the free plan's one instance until it is purged.
    let alice = AppUser::sign_up(&platform, "alice@example.com").await;
    let created = alice.call(Method::POST, "/instances", None).await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["userId"].as_str().unwrap().to_owned();
    let deleted = alice
        .call(Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(
        deleted.status,
        200,
        "{}",
        String::from_utf8_lossy(&deleted.body)
    );
    assert!(
        platform.instance_dir(&id).exists(),
        "the data is kept at first"
    );
    let refused = alice.call(Method::POST, "/instances", None).await;
    assert_eq!(
        refused.status,
        412,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let message = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("kept data of 1 deleted instance"),
        "{message}"
    );

    // After the retention (3 s here) the leader purges it and the slot is free again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let again = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let reply = alice.call(Method::POST, "/instances", None).await;
        if reply.status == 201 || Instant::now() > deadline {
            break reply;
        }
        assert_eq!(
            reply.status,
            412,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    };
    assert_eq!(
        again.status,
        201,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert!(
        !platform.instance_dir(&id).exists(),
        "the kept data was purged"
    );
    let second = again.json()["userId"].as_str().unwrap().to_owned();
    let purged = alice
        .call(
            Method::DELETE,
            &format!("/instances/{second}?preservePvc=false"),
            None,
        )
        .await;
    assert_eq!(purged.status, 200);
}
