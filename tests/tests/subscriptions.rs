//! Subscriptions decide plans, end to end (docs/product/subscriptions.md): the platform
//! in this process with the RevenueCat stand-in behind `REVENUECAT_BASE_URL`, and the
//! stand-in's webhook sender posting to the edge.
//!
//! What is under test is the plan, and the quota it sets: instances here run an
//! `openclaw` stand-in that exits at once (`OPENCLAW_BIN`), so each create counts toward
//! the quota without starting a real gateway (the gateways' own behaviour is proven by
//! the other tests). Run with `--test-threads=1`.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use clawfleet_tests::{
    app_user::AppUser,
    http::Reply,
    platform::{Platform, PlatformOptions},
    revenuecat_standin::{Fault, RevenueCatStandIn, WebhookEvent, deliver},
};
use http::Method;
use serde_json::json;

const SECRET_KEY: &str = "sk_test_standin_0123456789";
const WEBHOOK_AUTHORIZATION: &str = "Bearer rc-webhook-0123456789abcdef";

/// An `openclaw` whose gateway exits at once, in a folder tenants may enter.
fn exiting_openclaw(folder: &Path) -> String {
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = folder.join("openclaw");
    std::fs::write(&path, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn options(data: &Path, port_base: u16, bin: &str, env: &[(&str, &str)]) -> PlatformOptions {
    let mut options = PlatformOptions::new(data, port_base);
    options.extra_env = env
        .iter()
        .chain(&[("OPENCLAW_BIN", bin)])
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    options
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

async fn user_id(user: &AppUser<'_>) -> String {
    let me = user.call(Method::GET, "/users/me", None).await;
    assert_eq!(me.status, 200, "{}", text(&me));
    me.json()["id"].as_str().unwrap().to_owned()
}

async fn plan_of(user: &AppUser<'_>) -> serde_json::Value {
    let reply = user.call(Method::GET, "/users/me/subscription", None).await;
    assert_eq!(reply.status, 200, "{}", text(&reply));
    reply.json()
}

async fn instance_count(user: &AppUser<'_>) -> usize {
    let listed = user.call(Method::GET, "/instances", None).await;
    assert_eq!(listed.status, 200, "{}", text(&listed));
    listed.json()["instances"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenuecat_decides_plans_through_reads_and_webhooks() {
    let data = tempfile::tempdir().unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    let revenuecat = RevenueCatStandIn::start(SECRET_KEY).await;
    let base_url = revenuecat.base_url();
    let bin = exiting_openclaw(bin_dir.path());
    let platform = Platform::start(options(
        data.path(),
        28000,
        &bin,
        &[
            ("REVENUECAT_SECRET_KEY", SECRET_KEY),
            ("REVENUECAT_BASE_URL", &base_url),
            ("REVENUECAT_WEBHOOK_AUTHORIZATION", WEBHOOK_AUTHORIZATION),
            // One read per user, then webhooks keep the plan current.
            ("REVENUECAT_CACHE_SECONDS", "3600"),
            ("REVENUECAT_TIMEOUT_MS", "500"),
        ],
    ))
    .unwrap();
    let client = clawfleet_tests::http::client();

    // The entitlement read decides: a user RevenueCat knows as `pro` gets pro's quota.
    let ada = AppUser::sign_up(&platform, "ada@example.com").await;
    let ada_id = user_id(&ada).await;
    revenuecat.grant(
        &ada_id,
        "pro",
        "clawbox.pro.monthly",
        Some(now_ms() + 86_400_000),
    );
    for _ in 0..3 {
        let created = ada.call(Method::POST, "/instances", None).await;
        assert_eq!(created.status, 201, "{}", text(&created));
        assert_eq!(created.json()["plan"], "pro");
    }
    let refused = ada.call(Method::POST, "/instances", None).await;
    assert_eq!(refused.status, 412, "{}", text(&refused));
    let subscription = plan_of(&ada).await;
    assert_eq!(subscription["plan"], "pro");
    assert_eq!(subscription["source"], "revenuecat");
    assert_eq!(subscription["entitlements"], json!(["pro"]));
    // Read once, then cached: creates and reads did not ask again.
    assert_eq!(revenuecat.request_count(), 1);

    // A webhook changes the plan at once: ada's subscription expires.
    revenuecat.expire_all(&ada_id);
    let expired = WebhookEvent::new("evt-ada-exp", "EXPIRATION", &ada_id, "pro");
    let answer = deliver(
        &client,
        &platform.edge_url,
        Some(WEBHOOK_AUTHORIZATION),
        &expired,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", text(&answer));
    let answer = answer.json();
    assert_eq!(answer["outcome"], "applied");
    assert_eq!(answer["plan"], "free");
    assert_eq!(answer["active"], false);
    // A downgrade over quota deletes nothing and says what to do.
    assert_eq!(answer["instances"], 3);
    let notice = answer["notice"].as_str().unwrap();
    assert!(notice.contains("nothing was deleted"), "{notice}");
    assert_eq!(instance_count(&ada).await, 3);
    assert_eq!(plan_of(&ada).await["plan"], "free");

    // The same delivery again is a duplicate; an older event arriving late is stale.
    let again = deliver(
        &client,
        &platform.edge_url,
        Some(WEBHOOK_AUTHORIZATION),
        &expired,
    )
    .await;
    assert_eq!(again.json()["outcome"], "duplicate", "{}", text(&again));
    let late = WebhookEvent::new("evt-ada-renew-late", "RENEWAL", &ada_id, "pro")
        .at(expired.event_timestamp_ms - 60_000);
    let late = deliver(
        &client,
        &platform.edge_url,
        Some(WEBHOOK_AUTHORIZATION),
        &late,
    )
    .await;
    assert_eq!(late.json()["outcome"], "stale", "{}", text(&late));
    assert_eq!(plan_of(&ada).await["plan"], "free");

    // A renewal after the expiry applies at once.
    let renewed = WebhookEvent::new("evt-ada-renew", "RENEWAL", &ada_id, "pro")
        .at(expired.event_timestamp_ms + 1);
    let renewed = deliver(
        &client,
        &platform.edge_url,
        Some(WEBHOOK_AUTHORIZATION),
        &renewed,
    )
    .await;
    assert_eq!(renewed.json()["outcome"], "applied", "{}", text(&renewed));
    let subscription = plan_of(&ada).await;
    assert_eq!(
        (subscription["plan"].clone(), subscription["active"].clone()),
        (json!("pro"), json!(true))
    );

    // A wrong or missing Authorization header is 401, and changes nothing.
    let forged = WebhookEvent::new("evt-forged", "EXPIRATION", &ada_id, "pro")
        .at(expired.event_timestamp_ms + 10);
    for header in [Some("Bearer not-the-webhook-secret"), None] {
        let refused = deliver(&client, &platform.edge_url, header, &forged).await;
        assert_eq!(refused.status, 401, "{}", text(&refused));
        assert_eq!(refused.json()["code"], "unauthenticated");
    }
    assert_eq!(plan_of(&ada).await["plan"], "pro");

    // RevenueCat failing: a clear, retryable error, and nothing created or changed.
    let cy = AppUser::sign_up(&platform, "cy@example.com").await;
    let cy_id = user_id(&cy).await;
    revenuecat.grant(&cy_id, "enterprise", "clawbox.max.yearly", None);
    for (fault, status) in [
        (Fault::Status(401), 503),
        (
            Fault::RateLimited {
                retry_after_seconds: 7,
            },
            429,
        ),
        (Fault::Status(500), 503),
        (Fault::Status(503), 503),
        (Fault::Silence(Duration::from_secs(2)), 503),
    ] {
        revenuecat.fail_next(fault.clone());
        let refused = cy.call(Method::POST, "/instances", None).await;
        assert_eq!(refused.status, status, "{fault:?}: {}", text(&refused));
        let retry_after: u32 = refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let message = refused.json()["error"].as_str().unwrap().to_owned();
        assert!(
            message.contains("nothing was changed") && message.contains("retry"),
            "{message}"
        );
        if status == 429 {
            assert_eq!(retry_after, 7);
        }
        assert!(!message.contains(SECRET_KEY));
        assert_eq!(instance_count(&cy).await, 0, "{fault:?}");
        let me = cy.call(Method::GET, "/users/me", None).await;
        assert_eq!(me.json()["plan"], "free", "{fault:?}");
    }
    // Once RevenueCat answers, the same request goes through with the plan it reports.
    let created = cy.call(Method::POST, "/instances", None).await;
    assert_eq!(created.status, 201, "{}", text(&created));
    assert_eq!(created.json()["plan"], "enterprise");

    // While RevenueCat decides plans, operators cannot set one by hand.
    let operator = clawfleet_tests::scenario::Operator::new(&platform);
    let refused = put_plan(&operator, &cy_id, "pro").await;
    assert_eq!(refused.status, 412, "{}", text(&refused));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_set_plans_when_revenuecat_is_not_configured() {
    let data = tempfile::tempdir().unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = exiting_openclaw(bin_dir.path());
    let platform = Platform::start(options(data.path(), 28100, &bin, &[])).unwrap();
    let operator = clawfleet_tests::scenario::Operator::new(&platform);
    let bo = AppUser::sign_up(&platform, "bo@example.com").await;
    let bo_id = user_id(&bo).await;
    assert_eq!(plan_of(&bo).await["source"], "default");

    let created = bo.call(Method::POST, "/instances", None).await;
    assert_eq!(created.status, 201, "{}", text(&created));
    let refused = bo.call(Method::POST, "/instances", None).await;
    assert_eq!(refused.status, 412, "{}", text(&refused));

    let set = put_plan(&operator, &bo_id, "pro").await;
    assert_eq!(set.status, 200, "{}", text(&set));
    assert_eq!(set.json()["plan"], "pro");
    assert_eq!(set.json()["source"], "operator");
    // At once: the token bo holds still says free, and the create uses pro.
    let created = bo.call(Method::POST, "/instances", None).await;
    assert_eq!(created.status, 201, "{}", text(&created));
    assert_eq!(created.json()["plan"], "pro");

    // Back to free with two instances: nothing is deleted, the answer says what to do.
    let set = put_plan(&operator, &bo_id, "free").await;
    assert_eq!(set.status, 200, "{}", text(&set));
    let body = set.json();
    assert_eq!(body["instances"], 2);
    assert!(
        body["notice"]
            .as_str()
            .unwrap()
            .contains("delete 1 or upgrade"),
        "{body}"
    );
    assert_eq!(instance_count(&bo).await, 2);

    // Bad input is refused by name and changes nothing; unknown users are 404.
    assert_eq!(put_plan(&operator, &bo_id, "platinum").await.status, 400);
    assert_eq!(plan_of(&bo).await["plan"], "free");
    assert_eq!(put_plan(&operator, "usr_nobody", "pro").await.status, 404);
    // The webhook is not configured here.
    let client = clawfleet_tests::http::client();
    let event = WebhookEvent::new("evt-1", "INITIAL_PURCHASE", &bo_id, "pro");
    let refused = deliver(
        &client,
        &platform.edge_url,
        Some(WEBHOOK_AUTHORIZATION),
        &event,
    )
    .await;
    assert_eq!(refused.status, 412, "{}", text(&refused));
}

async fn put_plan(
    operator: &clawfleet_tests::scenario::Operator<'_>,
    user_id: &str,
    plan: &str,
) -> Reply {
    clawfleet_tests::http::send(
        &operator.client,
        Method::PUT,
        &format!("{}/api/users/{user_id}/plan", operator.platform.edge_url),
        Some(&operator.platform.options.api_key),
        Some("application/json"),
        json!({ "plan": plan }).to_string(),
    )
    .await
    .expect("PUT")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
