//! `DELETE /users/me` (docs/product/app-api.md#account-deletion): the app user confirms
//! with their password or a fresh Google/Apple token; then every instance of theirs is
//! deleted with its data through the lifecycle, the edge waits until none is left, and
//! only then are the auth records (user, identities, sessions, subscription) deleted.
//! A wrong confirmation changes nothing; a deletion that could not finish can be
//! repeated with the same request.

use std::time::Duration;

use axum::{Json, extract::State};
use clawfleet_contracts::auth::v1::Reauthentication;
use clawfleet_kit::{error::ErrorCode, identity::Caller};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{app_auth, with_json_405};
use crate::{
    error::ApiError,
    extract::ApiJson,
    openapi::schemas::{AccountDeletedJson, ErrorResponses},
    principal::Principal,
    state::EdgeState,
};

/// How long the edge waits for the user's instances to be gone before answering 503
/// (the client repeats the request; deleting again is harmless).
const TEARDOWN_WAIT: Duration = Duration::from_secs(120);
/// Between two looks at what is left.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Largest page asked for while listing the user's instances.
const PAGE_SIZE: u32 = 100;

/// `/users/me`: my profile (GET, one bounded auth call) and deleting my account (DELETE,
/// bounded by [`TEARDOWN_WAIT`] rather than the quick routes' handler timeout).
pub fn routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new().routes(with_json_405(routes!(app_auth::me, delete_account)))
}

/// The confirmation: my password, or a fresh token of a linked Google or Apple identity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DeleteAccountBody {
    Password(PasswordProof),
    Provider(ProviderProof),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordProof {
    #[schema(min_length = 1, max_length = 256)]
    password: String,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Google,
    Apple,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderProof {
    provider: ProviderName,
    /// A Google ID token or Apple identity token issued in the last 10 minutes.
    #[schema(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
    token: String,
    /// The nonce the app used to get the token, if any.
    #[serde(default)]
    #[schema(max_length = 256)]
    nonce: Option<String>,
}

impl DeleteAccountBody {
    fn into_proof(self) -> Result<Reauthentication, ApiError> {
        match self {
            DeleteAccountBody::Password(PasswordProof { password }) if !password.is_empty() => {
                Ok(Reauthentication {
                    password,
                    ..Reauthentication::default()
                })
            }
            DeleteAccountBody::Provider(proof) => Ok(Reauthentication {
                password: String::new(),
                provider: match proof.provider {
                    ProviderName::Google => "google",
                    ProviderName::Apple => "apple",
                }
                .to_owned(),
                provider_token: proof.token,
                nonce: proof.nonce.unwrap_or_default(),
            }),
            DeleteAccountBody::Password(_) => {
                Err(ApiError::invalid_argument("password must not be empty"))
            }
        }
    }
}

/// Deletes my account and everything of mine: instances with their data, sessions,
/// sign-in identities and subscription records. Answers only when nothing is left.
#[utoipa::path(delete, path = "/users/me", tag = "auth", security(("accessToken" = [])),
    request_body = DeleteAccountBody,
    responses((status = 200, body = AccountDeletedJson), ErrorResponses))]
async fn delete_account(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    ApiJson(body): ApiJson<DeleteAccountBody>,
) -> Result<Json<Value>, ApiError> {
    let proof = body.into_proof()?;
    state
        .auth()
        .verify_reauthentication(&caller, proof.clone())
        .await?;
    let deleted_instances = delete_every_instance(&state, &caller).await?;
    let deleted = state.auth().delete_account(&caller, proof).await?;
    tracing::info!(
        user_id = %caller.subject,
        instances = deleted_instances,
        "account and everything of it deleted"
    );
    Ok(Json(json!({
        "deleted": true,
        "instancesDeleted": deleted_instances,
        "identitiesDeleted": deleted.identities_deleted,
        "sessionsDeleted": deleted.refresh_tokens_deleted,
    })))
}

/// Deletes (without keeping data) every instance `caller` owns and waits until the
/// lifecycle lists none. Returns how many deletions were asked for.
async fn delete_every_instance(state: &EdgeState, caller: &Caller) -> Result<usize, ApiError> {
    let deadline = tokio::time::Instant::now() + TEARDOWN_WAIT;
    let mut asked = std::collections::HashSet::new();
    loop {
        let left = owned_ids(state, caller).await?;
        if left.is_empty() {
            return Ok(asked.len());
        }
        for id in left {
            if asked.contains(&id) {
                continue;
            }
            match state.lifecycle().delete(caller, id.clone(), false).await {
                Ok(response) => {
                    if let Some(instance) = &response.instance {
                        state.instances().remember(instance);
                    }
                }
                // Gone between the list and the delete.
                Err(error) if error.code == ErrorCode::NotFound => {}
                Err(error) => return Err(error),
            }
            asked.insert(id);
        }
        if tokio::time::Instant::now() >= deadline {
            let mut error = ApiError::new(
                ErrorCode::Unavailable,
                "your instances are still being deleted; nothing else was deleted yet; repeat the request to finish",
            );
            error.retry_after_seconds = Some(10);
            return Err(error);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Ids of every instance `caller` owns, page by page.
async fn owned_ids(state: &EdgeState, caller: &Caller) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = state
            .lifecycle()
            .list(caller, PAGE_SIZE, page_token)
            .await?;
        ids.extend(page.instances.into_iter().map(|instance| instance.id));
        page_token = page
            .page
            .map(|page| page.next_page_token)
            .unwrap_or_default();
        if page_token.is_empty() {
            return Ok(ids);
        }
    }
}
