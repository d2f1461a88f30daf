//! Bad requests to the manager API get their specified status and the JSON error
//! shape, and change nothing: no instance, no state dir, no gateway.

use clawfleet_tests::{
    http::{client, send},
    platform::{Platform, PlatformOptions},
    scenario::Operator,
};
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 23000)).unwrap();
    let operator = Operator::new(&platform);
    let http = client();
    let url = format!("{}/api/instances", platform.edge_url);
    let key = platform.options.api_key.clone();

    let health = send(
        &http,
        Method::GET,
        &format!("{}/health", platform.edge_url),
        None,
        None,
        "",
    )
    .await
    .unwrap();
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"ok": true}));

    // Missing and wrong keys: 401 with the exact manager body.
    let exact_401 = json!({"error": "Missing or invalid Authorization header"});
    let valid_body = json!({"userId": "mallory"}).to_string();
    for presented in [None, Some("wrong-key"), Some("")] {
        for method in [Method::GET, Method::POST] {
            let reply = send(
                &http,
                method.clone(),
                &url,
                presented,
                Some("application/json"),
                valid_body.clone(),
            )
            .await
            .unwrap();
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} with {presented:?}"
            );
            assert_eq!(reply.json(), exact_401);
        }
    }

    let post = |body: String, content_type: Option<&'static str>| {
        let http = http.clone();
        let url = url.clone();
        let key = key.clone();
        async move {
            send(&http, Method::POST, &url, Some(&key), content_type, body)
                .await
                .unwrap()
        }
    };
    let assert_error = |reply: &clawfleet_tests::http::Reply, status: StatusCode, code: &str| {
        assert_eq!(
            reply.status,
            status,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let body = reply.json();
        assert_eq!(body["code"], code, "{body}");
        let message = body["error"].as_str().unwrap();
        // Lowercase prose; quoted input keeps its own case.
        assert!(
            message.starts_with(|c: char| c.is_ascii_lowercase()),
            "{message}"
        );
    };

    // A bad id: 400 naming the rule.
    for bad_id in ["Alice", "1abc", "a_b", "-x", &"a".repeat(41), ""] {
        let reply = post(
            json!({"userId": bad_id}).to_string(),
            Some("application/json"),
        )
        .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_argument");
        if !bad_id.is_empty() {
            assert!(
                reply.json()["error"].as_str().unwrap().contains("dns-1123"),
                "{}",
                reply.json()
            );
        }
    }
    // Malformed JSON, wrong types, unknown plans and fields, secrets that are not env names.
    for body in [
        "{\"userId\":",
        "not json",
        "{\"userId\": 5}",
        "{\"userId\": \"x\", \"secrets\": [\"a\"]}",
        "{\"userId\": \"x\", \"secrets\": {\"A\": 1}}",
        "{\"userId\": \"x\", \"plan\": \"platinum\"}",
        "{\"userId\": \"x\", \"surprise\": true}",
        "{\"userId\": \"x\", \"secrets\": {\"lower-case\": \"v\"}}",
        "{\"userId\": \"x\", \"secrets\": {\"OPENCLAW_GATEWAY_TOKEN\": \"v\"}}",
        "[]",
    ] {
        let reply = post(body.to_owned(), Some("application/json")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    // No JSON content type.
    let reply = post(valid_body.clone(), None).await;
    assert_error(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // An oversized body.
    let huge =
        json!({"userId": "big", "secrets": {"KEY": "x".repeat(2 * 1024 * 1024)}}).to_string();
    let reply = post(huge, Some("application/json")).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Unknown instances, paths and methods.
    assert_error(
        &operator.get("/api/instances/nobody").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &operator.delete("/api/instances/nobody").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &operator.get("/api/nothing-here").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let put = send(
        &http,
        Method::PUT,
        &url,
        Some(&key),
        Some("application/json"),
        valid_body.clone(),
    )
    .await
    .unwrap();
    assert_error(&put, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_error(
        &operator
            .delete("/api/instances/nobody?preservePvc=maybe")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );

    // Nothing of the above left a trace.
    assert_eq!(
        operator.get("/api/instances").await.json()["instances"],
        json!([])
    );
    let instance_dirs = std::fs::read_dir(data.path().join("instances"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(instance_dirs, 0);

    // A duplicate id is 409 and leaves the first instance as it was.
    let first = post(
        json!({"userId": "dup", "secrets": {"FIRST_KEY": "1"}}).to_string(),
        Some("application/json"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let stop = operator.post("/api/instances/dup/stop", json!({})).await;
    assert_eq!(stop.status, StatusCode::OK);
    let second = post(
        json!({"userId": "dup", "secrets": {"SECOND_KEY": "2"}, "plan": "pro"}).to_string(),
        Some("application/json"),
    )
    .await;
    assert_error(&second, StatusCode::CONFLICT, "already_exists");
    let dup = operator.get("/api/instances/dup").await.json();
    assert_eq!(dup["secrets"], json!(["FIRST_KEY"]));
    assert_eq!(dup["plan"], "free");
    assert_eq!(dup["desiredState"], "stopped");
    let list = operator.get("/api/instances").await.json();
    assert_eq!(list["instances"].as_array().unwrap().len(), 1);
    assert_eq!(
        operator
            .delete("/api/instances/dup?preservePvc=false")
            .await
            .status,
        StatusCode::OK
    );
}

#[test]
fn a_service_without_its_required_settings_stops_with_one_line_naming_it() {
    let output = std::process::Command::new(clawfleet_tests::tools::clawfleet_bin())
        .arg("lifecycle")
        .env_remove("OPENCLAW_MANAGER_API_KEY")
        .env(
            "CLAWFLEET_SERVICE_TOKEN_DIGESTS",
            format!("edge={}", "0".repeat(64)),
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("OPENCLAW_MANAGER_API_KEY"), "{stderr}");
}
