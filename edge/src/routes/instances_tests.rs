use axum::{
    body::Body,
    http::{Method, header},
};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::test_support::{authorized, json_of, test_router, test_router_with_body_limit};

async fn post_json(body: &str) -> (StatusCode, Value) {
    let response = test_router()
        .await
        .oneshot(
            authorized(Method::POST, "/api/instances")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    (status, json_of(response).await)
}

fn assert_invalid(status: StatusCode, body: &Value, message_start: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_argument", "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.starts_with(message_start), "{message}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn malformed_json_is_a_400_saying_so() {
    let (status, body) = post_json(r#"{"userId": "alice""#).await;
    assert_invalid(status, &body, "invalid json: ");
    let (status, body) = post_json("not json").await;
    assert_invalid(status, &body, "invalid json: ");
}

#[tokio::test]
async fn wrong_types_and_missing_fields_are_400s_not_422s() {
    let (status, body) = post_json(r#"{"userId": 5}"#).await;
    assert_invalid(
        status,
        &body,
        "invalid request body: invalid type: integer `5`",
    );
    let (status, body) = post_json(r#"{"plan": "pro"}"#).await;
    assert_invalid(
        status,
        &body,
        "invalid request body: missing field `userId`",
    );
}

#[tokio::test]
async fn unknown_fields_are_refused_by_name() {
    let (status, body) = post_json(r#"{"userId": "alice", "sekrets": {}}"#).await;
    assert_invalid(
        status,
        &body,
        "invalid request body: unknown field `sekrets`",
    );
}

#[tokio::test]
async fn only_the_three_plans_are_accepted() {
    let (status, body) = post_json(r#"{"userId": "alice", "plan": "gold"}"#).await;
    assert_invalid(
        status,
        &body,
        "invalid request body: unknown variant `gold`",
    );
}

#[tokio::test]
async fn an_empty_user_id_is_refused() {
    let (status, body) = post_json(r#"{"userId": ""}"#).await;
    assert_invalid(status, &body, "userId must not be empty");
}

#[tokio::test]
async fn a_body_without_json_content_type_is_a_415() {
    for content_type in [None, Some("text/plain")] {
        let mut request = authorized(Method::POST, "/api/instances");
        if let Some(value) = content_type {
            request = request.header(header::CONTENT_TYPE, value);
        }
        let response = test_router()
            .await
            .oneshot(request.body(Body::from(r#"{"userId":"alice"}"#)).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            json_of(response).await,
            json!({
                "error": "expected content-type application/json",
                "code": "unsupported_media_type"
            })
        );
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let body = format!(r#"{{"userId":"alice","model":"{}"}}"#, "m".repeat(200));
    for declare_length in [true, false] {
        let mut request = authorized(Method::POST, "/api/instances")
            .header(header::CONTENT_TYPE, "application/json");
        let request_body = if declare_length {
            request = request.header(header::CONTENT_LENGTH, body.len());
            Body::from(body.clone())
        } else {
            let chunks = [Ok::<_, std::io::Error>(body.clone())];
            Body::from_stream(futures_util::stream::iter(chunks))
        };
        let response = test_router_with_body_limit(64)
            .await
            .oneshot(request.body(request_body).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            json_of(response).await,
            json!({
                "error": "request body exceeds the size limit",
                "code": "payload_too_large"
            })
        );
    }
}

#[tokio::test]
async fn preserve_pvc_accepts_only_true_or_false() {
    for query in ["preservePvc=yes", "preservePvc=", "preservePvc=TRUE"] {
        let path = format!("/api/instances/alice?{query}");
        let response = test_router()
            .await
            .oneshot(
                authorized(Method::DELETE, &path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body = json_of(response).await;
        assert_eq!(body["code"], "invalid_argument");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("preservePvc must be true or false"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_bad_page_size_is_a_400() {
    let response = test_router()
        .await
        .oneshot(
            authorized(Method::GET, "/api/instances?pageSize=many")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(response).await["error"],
        r#"pageSize must be a non-negative integer, got "many""#
    );
}

#[tokio::test]
async fn malformed_page_tokens_are_refused_before_the_lifecycle_call() {
    for (query, status) in [
        ("pageToken=Alice", StatusCode::BAD_REQUEST),
        ("pageToken=alice-", StatusCode::BAD_REQUEST),
        ("pageToken=%C3%A9", StatusCode::BAD_REQUEST),
        ("pageToken=alice", StatusCode::SERVICE_UNAVAILABLE),
        ("pageToken=", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let response = test_router()
            .await
            .oneshot(
                authorized(Method::GET, &format!("/api/instances?{query}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{query}");
    }
    assert!(is_page_token(&"a".repeat(40)));
    assert!(!is_page_token(&"a".repeat(41)));
}

#[tokio::test]
async fn secret_values_are_held_to_what_the_document_says() {
    let at_limit = "\u{e9}".repeat(MAX_SECRET_VALUE_CHARS);
    let secrets = HashMap::from([("OPENAI_API_KEY".to_owned(), at_limit)]);
    assert!(check_secret_values(&secrets).is_ok());
    let over = HashMap::from([("OPENAI_API_KEY".to_owned(), "k".repeat(2049))]);
    let error = check_secret_values(&over).unwrap_err();
    assert_eq!(
        error.message,
        r#"secret "OPENAI_API_KEY" must be at most 2048 characters"#
    );
    let body = format!(
        r#"{{"userId":"alice","secrets":{{"OPENAI_API_KEY":"{}"}}}}"#,
        "k".repeat(2049)
    );
    let (status, body) = post_json(&body).await;
    assert_invalid(status, &body, "secret \"OPENAI_API_KEY\" must be at most");
}

#[tokio::test]
async fn an_unreachable_lifecycle_service_is_a_json_503() {
    let requests = [
        (Method::GET, "/api/instances/alice", None),
        (Method::GET, "/api/instances", None),
        (
            Method::DELETE,
            "/api/instances/alice?preservePvc=false",
            None,
        ),
        (Method::POST, "/api/instances/alice/stop", None),
        (Method::POST, "/api/instances/alice/start", None),
        (
            Method::POST,
            "/api/instances",
            Some(r#"{"userId":"alice","plan":"pro","secrets":{"ANTHROPIC_API_KEY":"k"}}"#),
        ),
    ];
    let router = test_router().await;
    for (method, path, body) in requests {
        let mut request = authorized(method.clone(), path);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, Body::from);
        let response = router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert_eq!(
            json_of(response).await,
            json!({"error": "lifecycle service is unavailable", "code": "unavailable"})
        );
    }
}

#[test]
fn the_create_body_becomes_the_lifecycle_request() {
    let body: CreateInstanceBody = serde_json::from_str(
        r#"{"userId":"alice","plan":"enterprise","secrets":{"OPENAI_API_KEY":"k"},"model":"openai/gpt-5"}"#,
    )
    .unwrap();
    let request = body.into_request().unwrap();
    assert_eq!(request.id, "alice");
    assert_eq!(request.owner, "");
    assert_eq!(request.plan, Plan::Enterprise as i32);
    assert_eq!(request.secrets["OPENAI_API_KEY"], "k");
    assert_eq!(request.model, "openai/gpt-5");

    let body: CreateInstanceBody =
        serde_json::from_str(r#"{"userId":"bob","secrets":null,"plan":null}"#).unwrap();
    let request = body.into_request().unwrap();
    assert_eq!(request.plan, Plan::Unspecified as i32);
    assert!(request.secrets.is_empty());
}

#[test]
fn page_sizes_are_numbers_or_nothing() {
    assert_eq!(parse_page_size(None), Ok(0));
    assert_eq!(parse_page_size(Some("")), Ok(0));
    assert_eq!(parse_page_size(Some("50")), Ok(50));
    assert!(parse_page_size(Some("-1")).is_err());
}

#[test]
fn list_pages_carry_the_token_only_when_there_is_more() {
    let instances = [Instance {
        id: "alice".to_owned(),
        ..Instance::default()
    }];
    let last = serde_json::to_value(ListJson {
        instances: InstancesJson(&instances),
        next_page_token: "",
    })
    .unwrap();
    assert_eq!(last.as_object().unwrap().len(), 1);
    assert_eq!(last["instances"][0]["userId"], "alice");
    let more = serde_json::to_value(ListJson {
        instances: InstancesJson(&[]),
        next_page_token: "t1",
    })
    .unwrap();
    assert_eq!(more, json!({"instances": [], "nextPageToken": "t1"}));
}
