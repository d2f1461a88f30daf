//! The App API's instance routes (docs/product/app-api.md#instances): the same operations as the manager API,
//! for the app user the access token names. Services enforce ownership, so another
//! user's instance is 404 on every route; creating is held to the user's current plan.

use std::collections::HashMap;

use axum::{Json, extract::State, response::Response};
use clawfleet_contracts::lifecycle::v1::CreateInstanceRequest;
use clawfleet_kit::plan::Plan;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{
    ToSchema,
    openapi::{
        RefOr, Schema,
        schema::{ObjectBuilder, Type},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    channels::{
        self, ApproveBody, LogoutBody, PairingQuery, ProbeQuery, QrBody, SetupBody, WaitBody,
    },
    instances::{self, DeleteQuery, ListQuery},
    rpc::{self, RpcBody},
    subscriptions, with_json_405,
};
use crate::{
    error::ApiError,
    extract::{ApiJson, ApiQuery, InstanceId, OptionalApiJson},
    openapi::schemas::{
        AppInstancePath, DeletedJson, ErrorResponses, InstanceJson, InstanceListJson,
        PairingApprovedJson, PairingListJson, TelegramLogoutJson, TelegramSetupJson,
        TelegramStatusJson, WhatsAppQrJson, WhatsAppStatusJson, WhatsAppWaitJson, secrets_schema,
    },
    principal::Principal,
    state::EdgeState,
};

/// Gateway methods an app user may call through `/instances/{id}/rpc` (the bridge
/// enforces the same list for app callers).
pub use clawfleet_kit::app_rpc::APP_RPC_METHODS;

/// Instance routes answered within the handler timeout.
pub fn instance_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(create_instance, list_instances)))
        .routes(with_json_405(routes!(get_instance, delete_instance)))
}

/// Routes that wait on a gateway (their own deadlines).
pub fn gateway_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(telegram_setup)))
        .routes(with_json_405(routes!(telegram_status)))
        .routes(with_json_405(routes!(telegram_logout)))
        .routes(with_json_405(routes!(whatsapp_qr)))
        .routes(with_json_405(routes!(whatsapp_wait)))
        .routes(with_json_405(routes!(whatsapp_status)))
        .routes(with_json_405(routes!(pairing_list)))
        .routes(with_json_405(routes!(pairing_approve)))
        .routes(with_json_405(routes!(call_gateway)))
}

/// What the app may set on a new instance; the id is generated and the plan is the user's.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppCreateBody {
    #[serde(default)]
    #[schema(schema_with = secrets_schema)]
    secrets: Option<HashMap<String, String>>,
    /// The default model, e.g. `anthropic/claude-sonnet-4-5`.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._/:@-]*$", max_length = 200)]
    model: Option<String>,
}

/// Creates my instance (within my plan's quota) and starts its gateway.
#[utoipa::path(operation_id = "app_create_instance", post, path = "/instances", tag = "app", security(("accessToken" = [])),
    request_body(content = Option<AppCreateBody>),
    responses((status = 201, description = "created", body = InstanceJson), ErrorResponses))]
async fn create_instance(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    OptionalApiJson(body): OptionalApiJson<AppCreateBody>,
) -> Result<Response, ApiError> {
    if let Some(secrets) = &body.secrets {
        instances::check_secret_values(secrets)?;
    }
    // The plan now, not the one in the access token: a subscription bought or lapsed
    // since the sign-in applies at once (docs/product/subscriptions.md).
    let (subscription, _) = subscriptions::current_plan(&state, &caller).await?;
    let plan = Plan::from_proto(subscription.plan).unwrap_or(Plan::DEFAULT);
    let request = CreateInstanceRequest {
        // The lifecycle service generates the id and makes the caller the owner.
        id: String::new(),
        owner: String::new(),
        plan: plan.to_proto() as i32,
        secrets: body.secrets.unwrap_or_default(),
        model: body.model.unwrap_or_default(),
    };
    instances::created(&state, &caller, request).await
}

/// My instances.
#[utoipa::path(operation_id = "app_list_instances", get, path = "/instances", tag = "app", security(("accessToken" = [])),
    params(ListQuery), responses((status = 200, body = InstanceListJson), ErrorResponses))]
async fn list_instances(
    state: State<EdgeState>,
    principal: Principal,
    query: ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    instances::list_instances(state, principal, query).await
}

/// Declares an App API handler for an operation the manager API already has: same
/// handler (ownership is enforced by the services for the app caller), its own path under
/// `/instances/{id}` and its own OpenAPI entry.
macro_rules! app_alias {
    (
        $(#[doc = $doc:literal])*
        $method:ident $path:literal, $name:ident => $target:path,
        query [$($query:ty),*], ($($arg:ident: $ty:ty),*) -> $out:ty, body = $body:ty,
        $($spec:tt)*
    ) => {
        $(#[doc = $doc])*
        #[utoipa::path($method, path = $path, operation_id = concat!("app_", stringify!($name)),
            tag = "app", security(("accessToken" = [])),
            params(AppInstancePath $(, $query)*),
            $($spec)*
            responses((status = 200, body = $body), ErrorResponses))]
        async fn $name(
            state: State<EdgeState>,
            principal: Principal,
            id: InstanceId,
            $($arg: $ty),*
        ) -> Result<$out, ApiError> {
            $target(state, principal, id, $($arg),*).await
        }
    };
}

app_alias! {
    /// One of my instances with its phase.
    get "/instances/{id}", get_instance => instances::get_instance,
    query [], () -> Response, body = InstanceJson,
}

app_alias! {
    /// Deletes one of my instances; its data is kept unless `preservePvc=false`.
    delete "/instances/{id}", delete_instance => instances::delete_instance,
    query [DeleteQuery], (query: ApiQuery<DeleteQuery>) -> Response, body = DeletedJson,
}

app_alias! {
    /// Sets the Telegram bot token (never echoed).
    post "/instances/{id}/telegram/setup", telegram_setup => channels::telegram_setup,
    query [], (body: ApiJson<SetupBody>) -> Json<Value>, body = TelegramSetupJson,
    request_body = SetupBody,
}

app_alias! {
    /// Telegram channel status; `probe=true` asks Telegram live.
    get "/instances/{id}/telegram/status", telegram_status => channels::telegram_status,
    query [ProbeQuery], (query: ApiQuery<ProbeQuery>) -> Json<Value>, body = TelegramStatusJson,
}

app_alias! {
    /// Disconnects Telegram and clears its stored credentials.
    post "/instances/{id}/telegram/logout", telegram_logout => channels::telegram_logout,
    query [], (body: OptionalApiJson<LogoutBody>) -> Json<Value>, body = TelegramLogoutJson,
    request_body(content = Option<LogoutBody>),
}

app_alias! {
    /// Starts linking WhatsApp; returns the QR code as a data URL.
    post "/instances/{id}/whatsapp/qr", whatsapp_qr => channels::whatsapp_qr,
    query [], (body: OptionalApiJson<QrBody>) -> Json<Value>, body = WhatsAppQrJson,
    request_body(content = Option<QrBody>),
}

app_alias! {
    /// Waits until WhatsApp is linked or the timeout passes.
    post "/instances/{id}/whatsapp/wait", whatsapp_wait => channels::whatsapp_wait,
    query [], (body: OptionalApiJson<WaitBody>) -> Json<Value>, body = WhatsAppWaitJson,
    request_body(content = Option<WaitBody>),
}

app_alias! {
    /// WhatsApp channel status.
    get "/instances/{id}/whatsapp/status", whatsapp_status => channels::whatsapp_status,
    query [ProbeQuery], (query: ApiQuery<ProbeQuery>) -> Json<Value>, body = WhatsAppStatusJson,
}

app_alias! {
    /// Pending DM pairing requests with the codes the bot sent.
    get "/instances/{id}/pairing/list", pairing_list => channels::pairing_list,
    query [PairingQuery], (query: ApiQuery<PairingQuery>) -> Json<Value>, body = PairingListJson,
}

app_alias! {
    /// Approves a DM pairing request by the code the bot sent.
    post "/instances/{id}/pairing/approve", pairing_approve => channels::pairing_approve,
    query [], (body: ApiJson<ApproveBody>) -> Json<Value>, body = PairingApprovedJson,
    request_body = ApproveBody,
}

/// The App API's RPC body: [`RpcBody`] with `method` one of [`APP_RPC_METHODS`]
/// (documentation only; the handler reads an [`RpcBody`] and checks the list).
struct AppRpcBody;

impl utoipa::PartialSchema for AppRpcBody {
    fn schema() -> RefOr<Schema> {
        let mut schema = <RpcBody as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let methods = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(APP_RPC_METHODS.iter().copied()))
                .description(Some("A gateway method an app may call."));
            object
                .properties
                .insert("method".to_owned(), methods.into());
            object.description =
                Some("A gateway RPC from the allow-list: the method and its params.".to_owned());
        }
        schema
    }
}

impl ToSchema for AppRpcBody {}

/// A gateway RPC limited to read and channel methods (see the allow-list).
#[utoipa::path(operation_id = "app_call_gateway", post, path = "/instances/{id}/rpc", tag = "app", security(("accessToken" = [])),
    params(AppInstancePath), request_body = AppRpcBody,
    responses((status = 200, description = "the gateway's result", body = Object), ErrorResponses))]
async fn call_gateway(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
    ApiJson(body): ApiJson<RpcBody>,
) -> Result<Response, ApiError> {
    if !APP_RPC_METHODS.contains(&body.method.as_str()) {
        return Err(ApiError::new(
            clawfleet_kit::error::ErrorCode::PermissionDenied,
            format!(
                "method {:?} is not available to apps; allowed: {}",
                body.method,
                APP_RPC_METHODS.join(", ")
            ),
        ));
    }
    rpc::forward(&state, &caller, id, body).await
}
