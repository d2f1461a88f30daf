//! Per-user OpenRouter keys end to end (docs/product/provider-keys.md): the platform in
//! this process, OpenRouter's key API as a loopback stand-in, and a gateway executable
//! that records the environment it was started with and then idles (what is checked here
//! is what the runtime hands the gateway, not what the gateway does with it).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clawfleet_contracts::{
    common::v1::{DesiredState, Plan},
    lifecycle::v1::{
        CreateInstanceRequest, GetInstanceRequest, GetInstanceUsageRequest, SetOwnerPlanRequest,
        StopInstanceRequest, WatchInstancesRequest,
    },
};
use clawfleet_tests::{
    app_user::AppUser,
    grpc::{LifecycleClient, lifecycle_client},
    openrouter_standin::{Fault, OpenRouterStandIn},
    platform::{Platform, PlatformOptions},
    scenario::Operator,
};
use http::{Method, StatusCode};
use serde_json::json;

const MANAGEMENT_KEY: &str = "sk-or-v1-management-test-key";
const DEFAULT_MODEL: &str = "openrouter/test/default-model";
/// Seconds of grace in the restart test: longer than stopping and starting the platform.
const GRACE_OVER_RESTART: u64 = 8;

/// A gateway that writes `OPENROUTER_API_KEY` as it received it, then idles.
fn recording_gateway(folder: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = folder.join("recording-openclaw");
    std::fs::write(
        &path,
        "#!/bin/sh\nprintf '%s' \"$OPENROUTER_API_KEY\" > \"$OPENCLAW_STATE_DIR/seen-openrouter-key\"\nexec sleep 600\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn start(data: &Path, port_base: u16, standin: &OpenRouterStandIn) -> Platform {
    start_with_grace(data, port_base, standin, 2).await
}

async fn start_with_grace(
    data: &Path,
    port_base: u16,
    standin: &OpenRouterStandIn,
    grace_seconds: u64,
) -> Platform {
    let gateway = recording_gateway(data);
    let mut options = PlatformOptions::new(data, port_base);
    options.extra_env = vec![
        ("OPENCLAW_BIN".into(), gateway.display().to_string()),
        ("OPENROUTER_BASE_URL".into(), standin.base_url()),
        ("OPENROUTER_MANAGEMENT_KEY".into(), MANAGEMENT_KEY.into()),
        ("CLAWFLEET_OPENROUTER_LIMIT_FREE_USD".into(), "2".into()),
        ("CLAWFLEET_OPENROUTER_LIMIT_PRO_USD".into(), "25".into()),
        (
            "CLAWFLEET_OPENROUTER_DEFAULT_MODEL".into(),
            DEFAULT_MODEL.into(),
        ),
        ("CLAWFLEET_OPENROUTER_TIMEOUT_MS".into(), "1000".into()),
        ("CLAWFLEET_OPENROUTER_USAGE_POLL_SECONDS".into(), "1".into()),
        (
            "CLAWFLEET_SUBSCRIPTION_GRACE_SECONDS".into(),
            grace_seconds.to_string(),
        ),
    ];
    tokio::task::spawn_blocking(move || Platform::start(options))
        .await
        .unwrap()
        .unwrap()
}

async fn operator_client(platform: &Platform) -> LifecycleClient {
    lifecycle_client(&platform.lifecycle_address, &platform.options.api_key)
        .await
        .unwrap()
}

async fn user_id(user: &AppUser<'_>) -> String {
    let reply = user.call(Method::GET, "/users/me", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let me = reply.json();
    me["id"]
        .as_str()
        .or(me["user"]["id"].as_str())
        .unwrap()
        .to_owned()
}

async fn create(user: &AppUser<'_>) -> serde_json::Value {
    let reply = user.call(Method::POST, "/instances", Some(json!({}))).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// The key the instance's gateway was started with, once it wrote it.
async fn seen_key(platform: &Platform, id: &str, not: Option<&str>) -> String {
    let path = platform
        .instance_dir(id)
        .join("state")
        .join("seen-openrouter-key");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(seen) = std::fs::read_to_string(&path)
            && !seen.is_empty()
            && Some(seen.as_str()) != not
        {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway of {id} never reported a (new) key\n{}",
            platform.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn desired_state(client: &mut LifecycleClient, id: &str) -> DesiredState {
    let instance = client
        .get_instance(GetInstanceRequest { id: id.to_owned() })
        .await
        .unwrap()
        .into_inner()
        .instance
        .unwrap();
    instance.desired_state()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set_plan(client: &mut LifecycleClient, owner: &str, plan: Plan, active: bool) {
    client
        .set_owner_plan(SetOwnerPlanRequest {
            owner: owner.to_owned(),
            plan: plan as i32,
            subscription_active: active,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_key_is_provisioned_follows_the_plan_rotates_alerts_and_goes_with_the_last_instance()
 {
    let data = tempfile::tempdir().unwrap();
    let standin = OpenRouterStandIn::start(MANAGEMENT_KEY).await;
    let platform = start(data.path(), 28100, &standin).await;
    let mut client = operator_client(&platform).await;
    let user = AppUser::sign_up(&platform, "keys@example.com").await;
    let owner = user_id(&user).await;

    // First instance: one key, with the free plan's limit, placed in the gateway's env.
    let first = create(&user).await;
    let first_id = first["userId"]
        .as_str()
        .or(first["id"].as_str())
        .unwrap()
        .to_owned();
    assert_eq!(first["model"], DEFAULT_MODEL, "{first}");
    let keys = standin.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].limit, Some(2.0));
    assert_eq!(keys[0].name, format!("clawfleet-{owner}"));
    assert_eq!(seen_key(&platform, &first_id, None).await, keys[0].key);
    assert!(
        !std::fs::read_to_string(data.path().join("platform.log"))
            .unwrap()
            .contains(&keys[0].key),
        "the key value reached the log"
    );

    // A plan change moves the limit; the second instance shares the key.
    set_plan(&mut client, &owner, Plan::Pro, true).await;
    assert_eq!(standin.keys()[0].limit, Some(25.0));
    let second = create(&user).await;
    let second_id = second["userId"]
        .as_str()
        .or(second["id"].as_str())
        .unwrap()
        .to_owned();
    assert_eq!(standin.keys().len(), 1);
    assert_eq!(seen_key(&platform, &second_id, None).await, keys[0].key);

    // A lapse disables the key at once and stops the instances after the grace.
    set_plan(&mut client, &owner, Plan::Pro, false).await;
    assert!(standin.keys()[0].disabled);
    let refused = user.call(Method::POST, "/instances", Some(json!({}))).await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("subscription has lapsed")
    );
    assert_eq!(
        desired_state(&mut client, &first_id).await,
        DesiredState::Running
    );
    eventually("the lapsed instances are stopped", async || {
        desired_state(&mut client, &first_id).await == DesiredState::Stopped
            && desired_state(&mut client, &second_id).await == DesiredState::Stopped
    })
    .await;
    // A renewal enables the key and starts them again.
    set_plan(&mut client, &owner, Plan::Pro, true).await;
    assert!(!standin.keys()[0].disabled);
    assert_eq!(
        desired_state(&mut client, &first_id).await,
        DesiredState::Running
    );
    assert_eq!(
        desired_state(&mut client, &second_id).await,
        DesiredState::Running
    );

    // Rotation: a new key in both gateways, the old one gone, the instances kept. The
    // first delete of the old key fails; the upkeep pass deletes it later.
    let old = standin.keys()[0].clone();
    standin.fail_next_matching("DELETE /api/v1/keys/", Fault::Status(503), 1);
    let reply = user
        .call(
            Method::POST,
            &format!("/instances/{first_id}/keys/rotate"),
            None,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let rotated = reply.json();
    assert_eq!(rotated["instancesUpdated"], 2, "{rotated}");
    assert!(
        !reply
            .body
            .windows(old.key.len())
            .any(|window| window == old.key.as_bytes())
    );
    eventually("the rotated-out key is deleted", async || {
        standin.keys().len() == 1
    })
    .await;
    let old_deletes = standin
        .calls()
        .iter()
        .filter(|call| **call == format!("DELETE /api/v1/keys/{}", old.hash))
        .count();
    assert_eq!(old_deletes, 2, "refused once, then retried");
    let keys = standin.keys();
    assert_ne!(keys[0].hash, old.hash);
    assert_eq!(keys[0].limit, Some(25.0));
    assert_eq!(
        seen_key(&platform, &first_id, Some(&old.key)).await,
        keys[0].key
    );
    assert_eq!(
        seen_key(&platform, &second_id, Some(&old.key)).await,
        keys[0].key
    );

    // Usage: the key's spend and limit, and an 80 % alert on the watch stream.
    let mut watch = client
        .watch_instances(WatchInstancesRequest {
            id: first_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(standin.set_usage(&keys[0].hash, 21.0));
    let usage = client
        .get_instance_usage(GetInstanceUsageRequest {
            id: first_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(usage.platform_key);
    assert_eq!((usage.usage_usd, usage.limit_usd), (21.0, 25.0));
    assert!((usage.percent - 84.0).abs() < 1e-9, "{usage:?}");
    // Over REST: the key's figures, and the gateway's (this one never answers, so an
    // error says why they are missing).
    let reply = user
        .call(Method::GET, &format!("/instances/{first_id}/usage"), None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let usage = reply.json();
    assert_eq!(usage["key"]["platformKey"], true, "{usage}");
    assert_eq!(usage["key"]["usageUsd"], 21.0, "{usage}");
    assert_eq!(usage["key"]["limitUsd"], 25.0, "{usage}");
    assert!(usage["gateway"]["error"].is_string(), "{usage}");
    let reply = Operator::new(&platform)
        .get(&format!("/api/instances/{second_id}/usage"))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["key"]["limitUsd"], 25.0);
    let alert = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let message = watch.message().await.unwrap().unwrap();
            if let Some(alert) = message.usage_alert {
                return alert;
            }
        }
    })
    .await
    .expect("an 80 % alert arrives");
    assert_eq!(alert.percent, 80);
    assert!(alert.message.contains("80 %"), "{}", alert.message);

    // Purging the last instance deletes the key; keeping one's data keeps it.
    let reply = user
        .call(
            Method::DELETE,
            &format!("/instances/{first_id}?preservePvc=false"),
            None,
        )
        .await;
    assert!(
        reply.status.is_success(),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        standin.keys().len(),
        1,
        "the second instance still uses the key"
    );
    let reply = user
        .call(
            Method::DELETE,
            &format!("/instances/{second_id}?preservePvc=false"),
            None,
        )
        .await;
    assert!(
        reply.status.is_success(),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    eventually("the key is deleted with the last instance", async || {
        standin.keys().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_give_a_retryable_error_and_leave_no_instance_and_no_key() {
    let data = tempfile::tempdir().unwrap();
    let standin = OpenRouterStandIn::start(MANAGEMENT_KEY).await;
    let platform = start(data.path(), 28200, &standin).await;
    let mut client = operator_client(&platform).await;
    let user = AppUser::sign_up(&platform, "faults@example.com").await;
    let owner = user_id(&user).await;

    let faults = [
        (Fault::Unauthorized, StatusCode::SERVICE_UNAVAILABLE, "60"),
        (
            Fault::RateLimited {
                retry_after_seconds: 7,
            },
            StatusCode::TOO_MANY_REQUESTS,
            "7",
        ),
        (Fault::Status(502), StatusCode::SERVICE_UNAVAILABLE, "5"),
        (
            Fault::Slow(Duration::from_secs(3)),
            StatusCode::SERVICE_UNAVAILABLE,
            "5",
        ),
    ];
    for (fault, status, retry_after) in faults {
        standin.fail_next(fault.clone(), 1);
        let reply = user.call(Method::POST, "/instances", Some(json!({}))).await;
        let body = reply.json();
        assert_eq!(reply.status, status, "{fault:?}: {body}");
        assert_eq!(
            reply
                .headers
                .get("retry-after")
                .and_then(|value| value.to_str().ok()),
            Some(retry_after),
            "{fault:?}"
        );
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("model provider") && message.contains("try again"),
            "{fault:?}: {message}"
        );
        let listed = user.call(Method::GET, "/instances", None).await.json();
        assert_eq!(
            listed["instances"].as_array().map(Vec::len),
            Some(0),
            "{listed}"
        );
        // A slow answer still makes the key after the client gave up; the platform
        // looks for it and deletes it.
        eventually("no key is left behind", async || standin.keys().is_empty()).await;
    }

    // A create that fails after the key was made (over quota: the operator gave the
    // user an instance with their own key) deletes the key it made.
    client
        .create_instance(CreateInstanceRequest {
            id: "faults-own-key".into(),
            owner: owner.clone(),
            plan: Plan::Free as i32,
            secrets: [("ANTHROPIC_API_KEY".to_owned(), "sk-ant-own".to_owned())].into(),
            model: String::new(),
        })
        .await
        .unwrap();
    let reply = user.call(Method::POST, "/instances", Some(json!({}))).await;
    assert_eq!(
        reply.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(standin.keys().is_empty(), "{:?}", standin.keys());
    let created = standin
        .calls()
        .iter()
        .filter(|call| call.as_str() == "POST /api/v1/keys")
        .count();
    assert_eq!(created, 5, "{:?}", standin.calls());

    // Once the provider answers again, the same request succeeds.
    client
        .delete_instance(clawfleet_contracts::lifecycle::v1::DeleteInstanceRequest {
            id: "faults-own-key".into(),
            preserve_data: Some(false),
        })
        .await
        .unwrap();
    let created = create(&user).await;
    assert!(created["model"] == DEFAULT_MODEL, "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapse_outlives_a_restart_and_renewal_starts_only_what_it_stopped() {
    let data = tempfile::tempdir().unwrap();
    let standin = OpenRouterStandIn::start(MANAGEMENT_KEY).await;
    // A grace long enough that the first platform is gone before it ends.
    let platform = start_with_grace(data.path(), 28300, &standin, GRACE_OVER_RESTART).await;
    let mut client = operator_client(&platform).await;
    let user = AppUser::sign_up(&platform, "lapse@example.com").await;
    let owner = user_id(&user).await;
    set_plan(&mut client, &owner, Plan::Pro, true).await;
    let running = create(&user).await["userId"].as_str().unwrap().to_owned();
    let stopped_by_user = create(&user).await["userId"].as_str().unwrap().to_owned();
    // Stopped before the lapse (by an operator here, for the user).
    client
        .stop_instance(StopInstanceRequest {
            id: stopped_by_user.clone(),
        })
        .await
        .unwrap();

    // The lapse is recorded, then the platform goes down before its grace ends.
    set_plan(&mut client, &owner, Plan::Pro, false).await;
    drop(client);
    tokio::task::spawn_blocking(move || drop(platform))
        .await
        .unwrap();

    let platform = start_with_grace(data.path(), 28300, &standin, GRACE_OVER_RESTART).await;
    let mut client = operator_client(&platform).await;
    assert_eq!(
        desired_state(&mut client, &running).await,
        DesiredState::Running,
        "the grace has not ended yet"
    );
    eventually(
        "the restarted platform stops the lapsed instance",
        async || desired_state(&mut client, &running).await == DesiredState::Stopped,
    )
    .await;

    set_plan(&mut client, &owner, Plan::Pro, true).await;
    assert_eq!(
        desired_state(&mut client, &running).await,
        DesiredState::Running
    );
    assert_eq!(
        desired_state(&mut client, &stopped_by_user).await,
        DesiredState::Stopped,
        "an instance the user stopped stays stopped"
    );
    assert!(!standin.keys()[0].disabled);
    tokio::task::spawn_blocking(move || drop(platform))
        .await
        .unwrap();
}
