//! `/api/instances`: create, list, get, delete, stop and start, each one lifecycle call.

use std::{collections::HashMap, time::Duration};

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
    error::ServiceError, identity::Caller, instance_id::InstanceId as KitInstanceId,
    plan::Plan as KitPlan,
};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::with_json_405;
use crate::{
    error::ApiError,
    extract::{ApiJson, ApiQuery, InstanceId, parse_flag},
    instance_cache::Lookup,
    instance_json::InstanceView,
    openapi::schemas::{
        DeletedJson, ErrorResponses, InstanceJson, InstanceListJson, MAX_SECRET_VALUE_CHARS,
        ManagerInstancePath, instance_id_schema, optional_plan_schema, page_size_schema,
        page_token_schema, secrets_schema,
    },
    principal::Principal,
    state::EdgeState,
};

/// When a caller refused for staleness may retry: the watch is reopened within seconds.
const STALE_RETRY_AFTER_SECONDS: u32 = 5;

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
    match state.instances().lookup(&id) {
        Lookup::Hit(instance) if caller.is_privileged() || instance.owner == caller.subject => {
            return Ok(Json(InstanceView(&instance)).into_response());
        }
        Lookup::Stale(silence) => return Err(stale(silence)),
        Lookup::Hit(_) | Lookup::Miss => {}
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
    in_progress: bool,
}

/// Instance state may be stale: the lifecycle service has not been heard from (a dead
/// path or a down service) for longer than the edge's bound.
fn stale(silence: Duration) -> ApiError {
    ApiError(
        ServiceError::unavailable(format!(
            "instance state may be stale: no word from the lifecycle service for {} s; try again shortly",
            silence.as_secs()
        ))
        .with_retry_after(STALE_RETRY_AFTER_SECONDS),
    )
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
    // A teardown still under way leaves the instance readable as `deleting`.
    match &deleted.instance {
        Some(deleting) if deleted.in_progress => state.instances().remember(deleting),
        _ => state.instances().remember_deleted(&id, deleted.revision),
    }
    let user_id = if deleted.id.is_empty() {
        &id
    } else {
        &deleted.id
    };
    Ok(Json(DeletedReply {
        user_id,
        deleted: true,
        data_preserved: deleted.data_preserved,
        in_progress: deleted.in_progress,
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
#[path = "instances_tests.rs"]
mod tests;
