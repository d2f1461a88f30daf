//! The JSON shapes the edge answers with, as OpenAPI schemas. Handlers build these
//! bodies with `serde_json`/`InstanceView`; schemathesis checks every response against
//! these schemas, so a shape that drifts from what the handlers send fails CI.

use std::collections::BTreeMap;

use clawfleet_kit::{
    instance_id::{INSTANCE_ID_PATTERN, MAX_INSTANCE_ID_LENGTH},
    plan::Plan,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::{
    IntoParams, IntoResponses, ToSchema,
    openapi::{
        RefOr, Schema,
        path::{Parameter, ParameterBuilder, ParameterIn},
        schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type},
    },
};

/// Channel account ids, as the channels service checks them; empty is the default account.
/// Never starting with `-` (no CLI may read one as an option).
pub const ACCOUNT_ID_PATTERN: &str = r"^([A-Za-z0-9_][A-Za-z0-9_-]{0,63})?$";
/// Channel names (`telegram`, `whatsapp`, ...), as the channels service checks them.
/// Never starting with `-`.
pub const CHANNEL_PATTERN: &str = r"^[a-z0-9][a-z0-9-]{0,31}$";
/// Most secrets an instance may have (the lifecycle service's limit).
pub const MAX_SECRETS: usize = 32;
/// Longest secret value in characters: the lifecycle service stores at most 8 KiB, and
/// 2048 characters of up to 4 UTF-8 bytes always fit, so the document can say it.
pub const MAX_SECRET_VALUE_CHARS: usize = 2048;
/// Secret names: environment names the platform does not reserve for itself (the
/// lifecycle service's rule).
pub const SECRET_NAME_PATTERN: &str = r"^(?!(OPENCLAW_|CLAWFLEET_|NODE_|LD_)|(PATH|HOME|USER|SHELL|TMPDIR|PWD)$)[A-Z][A-Z0-9_]{0,127}$";

/// An instance id, as the kit's rule defines it (the one pattern every service checks).
pub fn instance_id_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("instance id"))
        .pattern(Some(INSTANCE_ID_PATTERN))
        .min_length(Some(1))
        .max_length(Some(MAX_INSTANCE_ID_LENGTH))
        .build()
        .into()
}

/// A page token: an instance id (the last of the previous page), or empty.
pub fn page_token_schema() -> Schema {
    let inner = INSTANCE_ID_PATTERN
        .strip_prefix('^')
        .and_then(|rest| rest.strip_suffix('$'))
        .unwrap_or(INSTANCE_ID_PATTERN);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "The `nextPageToken` of the previous page (the last instance id it listed); empty or left out for the first page.",
        ))
        .pattern(Some(format!("^({inner})?$")))
        .max_length(Some(MAX_INSTANCE_ID_LENGTH))
        .build()
        .into()
}

/// A plan name, from the kit's plan table.
pub fn plan_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Plan::ALL.map(Plan::as_str)))
        .build()
        .into()
}

/// A plan name or `null` (the default plan).
pub fn optional_plan_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            Plan::ALL
                .map(|plan| Value::from(plan.as_str()))
                .into_iter()
                .chain([Value::Null]),
        ))
        .build()
        .into()
}

fn instance_path_parameter(name: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(utoipa::openapi::Required::True)
        .description(Some("instance id"))
        .schema(Some(instance_id_schema()))
        .build()
}

/// The `{userId}` path segment of the manager's `/api/instances/{userId}/...` routes.
pub struct ManagerInstancePath;

impl IntoParams for ManagerInstancePath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![instance_path_parameter("userId")]
    }
}

/// The `{id}` path segment of the app's `/instances/{id}/...` routes.
pub struct AppInstancePath;

impl IntoParams for AppInstancePath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![instance_path_parameter("id")]
    }
}

/// The `secrets` map of a create body (or `null`): provider keys for the gateway.
pub fn secrets_schema() -> Schema {
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_SECRET_VALUE_CHARS))
        .pattern(Some(r"^[^\x00]*$"));
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(SECRET_NAME_PATTERN));
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some(
            "Provider API keys for the gateway by environment name, e.g. `ANTHROPIC_API_KEY`.",
        ))
        .property_names(Some(name))
        .additional_properties(Some(value))
        .max_properties(Some(MAX_SECRETS))
        .build()
        .into()
}

/// `pageSize`: a u32, or empty for the default page (as if left out).
pub fn page_size_schema() -> Schema {
    utoipa::openapi::schema::OneOfBuilder::new()
        .description(Some(
            "Instances per page; 0, empty or left out is the default (100), and larger pages than the service serves (1000) are cut to that.",
        ))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(u32::MAX)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0)),
        )
        .build()
        .into()
}

/// `timeoutMs` of the WhatsApp login steps: a `u32` (read with
/// [`optional_integer`](crate::extract::optional_integer)), `null` or left out.
pub fn login_timeout_schema() -> Schema {
    optional_unsigned(
        u64::from(u32::MAX),
        "How long to wait, in milliseconds, held to 1 s to 5 min; 0 or left out: the default (30 s for the QR code, 2 min for the link).",
    )
}

/// `timeoutMs` of an RPC: a `u64`, `null` or left out.
pub fn rpc_timeout_schema() -> Schema {
    optional_unsigned(
        u64::MAX,
        "How long to wait for the gateway, in milliseconds, held to 1 s to 5 min; 0 or left out: the method's own `timeoutMs` in `params` plus 5 s, else 30 s.",
    )
}

fn optional_unsigned(maximum: u64, description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(usize::try_from(maximum).unwrap_or(usize::MAX)))
        .description(Some(description))
        .build()
        .into()
}

/// A nullable string with `pattern`.
pub fn nullable_string(pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(pattern))
}

/// The body of `pairing/approve`: the code the bot sent or the request id `pairing/list`
/// returned, exactly one of them (the other left out or `null`).
pub fn pairing_approve_schema() -> RefOr<Schema> {
    let by = |title: &str, target: &str, pattern: &str, other: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .title(Some(title))
            .property(
                "channel",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(CHANNEL_PATTERN)),
            )
            .required("channel")
            .property(
                target,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(pattern)),
            )
            .required(target)
            .property(other, ObjectBuilder::new().schema_type(Type::Null))
            .property(
                "notify",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some("Tell the sender they were approved.")),
            )
            .property("accountId", nullable_string(ACCOUNT_ID_PATTERN))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
    };
    utoipa::openapi::schema::OneOfBuilder::new()
        .description(Some(
            "Approve by the code the bot sent (letters in any case) or by the request id pairing/list returned: exactly one of them.",
        ))
        .item(by("by code", "code", r"^[A-Za-z0-9]{4,16}$", "requestId"))
        .item(by("by request id", "requestId", r"^[!-~]{1,128}$", "code"))
        .into()
}

/// Every error: a lowercase message and a snake_case code (the manager's 401 has no code).
#[derive(Serialize, ToSchema)]
pub struct ErrorJson {
    pub error: String,
    pub code: Option<String>,
}

/// The errors any route may answer with, with the status the error table gives them.
#[allow(dead_code)] // Only its derived documentation is used.
#[derive(IntoResponses)]
pub enum ErrorResponses {
    /// Invalid input: the message names the field or rule.
    #[response(status = 400)]
    BadRequest(ErrorJson),
    /// Missing, wrong or expired credentials.
    #[response(status = 401)]
    Unauthorized(ErrorJson),
    /// Not allowed for this caller (e.g. an RPC method outside the app allow-list).
    #[response(status = 403)]
    Forbidden(ErrorJson),
    /// No such instance, or not yours.
    #[response(status = 404)]
    NotFound(ErrorJson),
    /// The method is not supported on this path.
    #[response(status = 405)]
    MethodNotAllowed(ErrorJson),
    /// Already exists, or a concurrent change won.
    #[response(status = 409)]
    Conflict(ErrorJson),
    /// The instance or account is not in a state that allows this (e.g. plan quota).
    #[response(status = 412)]
    PreconditionFailed(ErrorJson),
    /// The body is larger than the limit.
    #[response(status = 413)]
    PayloadTooLarge(ErrorJson),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorJson),
    /// Rate limited (per client address on `/auth/*`, per account on sign-in, per user
    /// on instance routes, or too many requests of this user in progress).
    #[response(status = 429, headers(
        ("Retry-After" = u32, description = "Seconds until a retry may be admitted")
    ))]
    TooManyRequests(ErrorJson),
    /// Something failed inside the platform; no internals are given.
    #[response(status = 500)]
    Internal(ErrorJson),
    /// The instance's gateway could not be reached.
    #[response(status = 502)]
    BadGateway(ErrorJson),
    /// A service or the gateway is not available right now; see `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorJson),
    /// An upstream did not answer in time.
    #[response(status = 504)]
    Timeout(ErrorJson),
}

#[derive(Serialize, ToSchema)]
pub struct HealthJson {
    pub ok: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanJson {
    Free,
    Pro,
    Enterprise,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhaseJson {
    Pending,
    Starting,
    Running,
    Error,
    Stopped,
    Unknown,
    Deleting,
}

/// An instance (docs/product/manager-api.md#instance-json shape plus what the platform knows).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceJson {
    /// The instance id (the manager called it userId).
    pub user_id: String,
    /// The owning app user; empty for operator-created instances.
    pub owner: String,
    pub plan: PlanJson,
    /// `running` or `stopped`.
    pub desired_state: String,
    pub ready: bool,
    pub phase: PhaseJson,
    /// Why the instance is in its phase.
    pub message: Option<String>,
    pub model: Option<String>,
    /// Names of the provider secrets (never their values).
    pub secrets: Vec<String>,
    pub created_at: Option<String>,
    pub revision: u64,
    pub pods: Vec<PodJson>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodJson {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub restart_count: u32,
    pub state: PodStateJson,
    pub conditions: PodConditionsJson,
    pub created_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodStateJson {
    /// `waiting`, `running` or `terminated`.
    pub status: String,
    pub started_at: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub exit_code: Option<i32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodConditionsJson {
    pub scheduled: bool,
    pub initialized: bool,
    pub containers_ready: bool,
    pub ready: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceListJson {
    pub instances: Vec<InstanceJson>,
    pub next_page_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedJson {
    pub user_id: String,
    /// Always true: an accepted delete cannot be undone.
    pub deleted: bool,
    pub data_preserved: bool,
    /// True when the runtime's teardown outlasted the request and goes on in the
    /// background; the instance reads phase `deleting` until it is gone.
    pub in_progress: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TelegramSetupJson {
    pub ok: bool,
    /// The resulting Telegram config, secrets redacted.
    pub config: BTreeMap<String, Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelegramStatusJson {
    pub user_id: String,
    pub telegram: BTreeMap<String, Value>,
    pub accounts: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelegramLogoutJson {
    pub channel: String,
    pub cleared: bool,
    pub logged_out: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatsAppQrJson {
    /// `data:image/png;base64,...`; empty when already linked.
    pub qr_data_url: String,
    pub connected: bool,
    pub message: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatsAppWaitJson {
    pub connected: bool,
    pub message: String,
    pub qr_data_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatsAppStatusJson {
    pub user_id: String,
    pub whatsapp: BTreeMap<String, Value>,
    pub accounts: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PairingRequestJson {
    /// The gateway's request id.
    pub id: String,
    /// The code the bot sent the user.
    pub code: String,
    pub channel: String,
    pub account_id: String,
    pub sender_id: String,
    pub metadata: BTreeMap<String, Value>,
    pub created_at: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct PairingListJson {
    pub channel: String,
    pub requests: Vec<PairingRequestJson>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PairingApprovedJson {
    pub approved: bool,
    pub channel: String,
    pub request_id: Option<String>,
    pub sender_id: Option<String>,
    pub notification: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserJson {
    pub id: String,
    pub email: String,
    pub name: String,
    pub plan: PlanJson,
    pub email_verified: bool,
    pub created_at: Option<String>,
    /// Linked sign-in methods: `email`, `google`, `apple`.
    pub providers: Vec<String>,
}

/// What every successful sign-in and refresh returns.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokensJson {
    /// JWT for `Authorization: Bearer`, valid `expiresIn` seconds.
    pub access_token: String,
    /// Opaque; exchange it at `/auth/refresh` (each one works once).
    pub refresh_token: String,
    pub expires_in: u32,
    /// Always `Bearer`.
    pub token_type: String,
    pub user: UserJson,
}

#[derive(Serialize, ToSchema)]
pub struct LoggedOutJson {
    pub revoked: bool,
}

/// A user's plan and subscription (docs/product/subscriptions.md).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionJson {
    pub user_id: String,
    pub plan: PlanJson,
    /// False once a paid subscription lapsed.
    pub active: bool,
    /// The RevenueCat entitlements active now.
    pub entitlements: Vec<String>,
    pub expires_at: Option<String>,
    /// `default`, `revenuecat` or `operator`.
    pub source: String,
    /// How many instances the plan allows.
    pub instance_quota: u32,
    /// How many instances the user has (when the change was just applied).
    pub instances: Option<u32>,
    /// What to do when the user has more instances than the plan allows (nothing is
    /// deleted for a downgrade).
    pub notice: Option<String>,
}

/// What became of a webhook event, with the user's subscription after it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswerJson {
    /// `applied`, `duplicate`, `stale`, `ignored` or `unknown_user`.
    pub outcome: String,
    pub user_id: Option<String>,
    pub plan: Option<PlanJson>,
    pub active: Option<bool>,
    pub entitlements: Option<Vec<String>>,
    pub expires_at: Option<String>,
    pub source: Option<String>,
    pub instance_quota: Option<u32>,
    pub instances: Option<u32>,
    pub notice: Option<String>,
}

/// The answer of `DELETE /users/me`, given only when nothing of the user is left.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDeletedJson {
    pub deleted: bool,
    pub instances_deleted: u32,
    pub identities_deleted: u32,
    pub sessions_deleted: u32,
}
