//! `/api/instances`: create, list, get, delete, stop and start, each one lifecycle call.

use std::collections::HashMap;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use clawfleet_contracts::{
    common::v1::Plan,
    lifecycle::v1::{CreateInstanceRequest, Instance},
};
use clawfleet_kit::{
    identity::Caller, instance_id::InstanceId as KitInstanceId, plan::Plan as KitPlan,
};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::with_json_405;
use crate::{
    error::ApiError,
    extract::{ApiJson, ApiQuery, InstanceId, parse_flag},
    instance_json::InstanceView,
    openapi::schemas::{
        DeletedJson, ErrorResponses, InstanceJson, InstanceListJson, MAX_SECRET_VALUE_CHARS,
        ManagerInstancePath, instance_id_schema, optional_plan_schema, page_size_schema,
        page_token_schema, secrets_schema,
    },
    principal::Principal,
    state::EdgeState,
};

pub fn routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(create_instance, list_instances)))
        .routes(with_json_405(routes!(get_instance, delete_instance)))
        .routes(with_json_405(routes!(stop_instance)))
        .routes(with_json_405(routes!(start_instance)))
}

/// The manager's create body; unknown fields are refused so typos do not pass silently.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateInstanceBody {
    /// The instance id: a DNS label of at most 40 characters.
    #[schema(schema_with = instance_id_schema)]
    user_id: String,
    #[serde(default)]
    #[schema(schema_with = secrets_schema)]
    secrets: Option<HashMap<String, String>>,
    #[serde(default, deserialize_with = "plan_name")]
    #[schema(schema_with = optional_plan_schema)]
    plan: Option<KitPlan>,
    /// The default model, e.g. `anthropic/claude-sonnet-4-5`.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._/:@-]*$", max_length = 200)]
    model: Option<String>,
}

/// A plan name from the kit's table; anything else is refused with the table's message.
pub(super) fn plan_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<KitPlan>, D::Error> {
    let name: Option<String> = Option::deserialize(deserializer)?;
    name.map(|name| {
        KitPlan::from_name(&name)
            .map_err(|_| serde::de::Error::unknown_variant(&name, &KitPlan::NAMES))
    })
    .transpose()
}

impl CreateInstanceBody {
    fn into_request(self) -> Result<CreateInstanceRequest, ApiError> {
        if self.user_id.is_empty() {
            return Err(ApiError::invalid_argument("userId must not be empty"));
        }
        if let Some(secrets) = &self.secrets {
            check_secret_values(secrets)?;
        }
        Ok(CreateInstanceRequest {
            id: self.user_id,
            // Operator-created instances have no owning app user.
            owner: String::new(),
            plan: self.plan.map_or(Plan::Unspecified, KitPlan::to_proto) as i32,
            secrets: self.secrets.unwrap_or_default(),
            model: self.model.unwrap_or_default(),
        })
    }
}

/// Creates an instance with the id the operator chose and starts its gateway.
#[utoipa::path(post, path = "/api/instances", tag = "manager",
    security(("apiKey" = [])),
    request_body = CreateInstanceBody,
    responses((status = 201, description = "created", body = InstanceJson), ErrorResponses))]
async fn create_instance(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    ApiJson(body): ApiJson<CreateInstanceBody>,
) -> Result<Response, ApiError> {
    created(&state, &caller, body.into_request()?).await
}

/// Holds secret values to what the document can say: at most
/// [`MAX_SECRET_VALUE_CHARS`] characters (the lifecycle service checks the rest).
pub(super) fn check_secret_values(secrets: &HashMap<String, String>) -> Result<(), ApiError> {
    match secrets
        .iter()
        .find(|(_, value)| value.chars().count() > MAX_SECRET_VALUE_CHARS)
    {
        Some((name, _)) => {
            let shown: String = name.chars().take(64).collect();
            Err(ApiError::invalid_argument(format!(
                "secret {shown:?} must be at most {MAX_SECRET_VALUE_CHARS} characters"
            )))
        }
        None => Ok(()),
    }
}

/// Creates through the lifecycle service and answers 201 with the instance.
pub(super) async fn created(
    state: &EdgeState,
    caller: &Caller,
    request: CreateInstanceRequest,
) -> Result<Response, ApiError> {
    let instance = state.lifecycle().create(caller, request).await?;
    state.instances().remember(&instance);
    Ok((StatusCode::CREATED, Json(InstanceView(&instance))).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    #[param(schema_with = page_size_schema)]
    page_size: Option<String>,
    #[param(schema_with = page_token_schema)]
    page_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListJson<'a> {
    instances: InstancesJson<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    next_page_token: &'a str,
}

struct InstancesJson<'a>(&'a [Instance]);

impl Serialize for InstancesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(InstanceView))
    }
}

/// An empty or missing `pageSize` asks for the service's default page.
fn parse_page_size(value: Option<&str>) -> Result<u32, ApiError> {
    match value {
        None | Some("") => Ok(0),
        Some(text) => text.parse().map_err(|_| {
            ApiError::invalid_argument(format!(
                "pageSize must be a non-negative integer, got {text:?}"
            ))
        }),
    }
}

/// A page token is the last instance id of the previous page (what the lifecycle
/// service pages after); empty is the first page.
fn is_page_token(token: &str) -> bool {
    token.is_empty() || KitInstanceId::parse(token).is_ok()
}

/// Every instance, page by page.
#[utoipa::path(get, path = "/api/instances", tag = "manager",
    security(("apiKey" = [])), params(ListQuery),
    responses((status = 200, body = InstanceListJson), ErrorResponses))]
pub(super) async fn list_instances(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let page_size = parse_page_size(query.page_size.as_deref())?;
    let page_token = query.page_token.unwrap_or_default();
    if !is_page_token(&page_token) {
        return Err(ApiError::invalid_argument(
            "invalid pageToken: give the nextPageToken of the previous page",
        ));
    }
    let page = state
        .lifecycle()
        .list(&caller, page_size, page_token)
        .await?;
    let next_page_token = page
        .page
        .as_ref()
        .map_or("", |info| info.next_page_token.as_str());
    Ok(Json(ListJson {
        instances: InstancesJson(&page.instances),
        next_page_token,
    })
    .into_response())
}

/// One instance with its phase and pods.
#[utoipa::path(get, path = "/api/instances/{userId}", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    responses((status = 200, body = InstanceJson), ErrorResponses))]
pub(super) async fn get_instance(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Response, ApiError> {
    // The replica holds everyone's instances: an app user is answered from it only for
    // their own; anything else goes to the lifecycle service, which says 404.
    if let Some(instance) = state.instances().get(&id)
        && (caller.is_privileged() || instance.owner == caller.subject)
    {
        return Ok(Json(InstanceView(&instance)).into_response());
    }
    let instance = state.lifecycle().get(&caller, id).await?;
    Ok(Json(InstanceView(&instance)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteQuery {
    /// `false` removes the instance's data too (default `true`: kept for a re-create).
    #[param(value_type = Option<bool>)]
    preserve_pvc: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeletedReply<'a> {
    user_id: &'a str,
    deleted: bool,
    data_preserved: bool,
}

/// Deletes the instance; its data is kept unless `preservePvc=false`.
#[utoipa::path(delete, path = "/api/instances/{userId}", tag = "manager",
    security(("apiKey" = [])),
    params(ManagerInstancePath, DeleteQuery),
    responses((status = 200, body = DeletedJson), ErrorResponses))]
pub(super) async fn delete_instance(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let preserve_data = parse_flag("preservePvc", query.preserve_pvc.as_deref(), true)?;
    let deleted = state
        .lifecycle()
        .delete(&caller, id.clone(), preserve_data)
        .await?;
    state.instances().remember_deleted(&id, deleted.revision);
    let user_id = if deleted.id.is_empty() {
        &id
    } else {
        &deleted.id
    };
    Ok(Json(DeletedReply {
        user_id,
        deleted: true,
        data_preserved: deleted.data_preserved,
    })
    .into_response())
}

/// Stops the gateway; the instance and its data stay.
#[utoipa::path(post, path = "/api/instances/{userId}/stop", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    responses((status = 200, body = InstanceJson), ErrorResponses))]
async fn stop_instance(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Response, ApiError> {
    let instance = state.lifecycle().stop(&caller, id).await?;
    state.instances().remember(&instance);
    Ok(Json(InstanceView(&instance)).into_response())
}

/// Starts a stopped gateway on the same data.
#[utoipa::path(post, path = "/api/instances/{userId}/start", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    responses((status = 200, body = InstanceJson), ErrorResponses))]
async fn start_instance(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Response, ApiError> {
    let instance = state.lifecycle().start(&caller, id).await?;
    state.instances().remember(&instance);
    Ok(Json(InstanceView(&instance)).into_response())
}

#[cfg(test)]
mod tests {
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
}
