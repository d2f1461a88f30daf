//! `/auth/*` and `/users/me` (docs/product/app-api.md#sign-in-and-tokens): sign-up and sign-in (email, Google, Apple),
//! token refresh and logout through the auth service; the token pair as the app expects
//! it. Passwords and tokens pass through and are never logged.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse, response::Response};
use clawfleet_contracts::auth::v1::{
    LogInRequest, LogOutRequest, RefreshRequest, SignInWithAppleRequest, SignInWithGoogleRequest,
    SignUpRequest, TokenPair, User,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::with_json_405;
use crate::{
    error::ApiError,
    extract::{ApiJson, OptionalApiJson},
    instance_json::{Rfc3339, plan_name},
    limits::too_many,
    openapi::schemas::{ErrorResponses, LoggedOutJson, TokensJson, UserJson},
    principal::Principal,
    state::EdgeState,
};

/// Sign-in routes: no token needed, rate limited.
pub fn sign_in_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(sign_up)))
        .routes(with_json_405(routes!(log_in)))
        .routes(with_json_405(routes!(google)))
        .routes(with_json_405(routes!(apple)))
        .routes(with_json_405(routes!(refresh)))
}

/// Routes for a signed-in user (`GET /users/me` is served with `DELETE /users/me`, in
/// `account_deletion`, which has no handler timeout).
pub fn user_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new().routes(with_json_405(routes!(log_out)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpBody {
    #[schema(
        pattern = r"^[A-Za-z0-9_%+-]{1,20}(\.[A-Za-z0-9_%+-]{1,20}){0,2}@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,10}$",
        max_length = 254
    )]
    email: String,
    /// 8 to 64 characters.
    #[schema(min_length = 8, max_length = 64)]
    password: String,
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
    )]
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInBody {
    #[schema(
        pattern = r"^[A-Za-z0-9_%+-]{1,20}(\.[A-Za-z0-9_%+-]{1,20}){0,2}@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,10}$",
        max_length = 254
    )]
    email: String,
    #[schema(min_length = 1, max_length = 256)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GoogleBody {
    /// The ID token from Google Sign-In (a compact JWT).
    #[schema(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
    id_token: String,
    #[serde(default)]
    nonce: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppleBody {
    /// The identity token from Sign in with Apple (a compact JWT).
    #[schema(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
    identity_token: String,
    #[serde(default)]
    nonce: Option<String>,
    /// Apple sends the name only on the first sign-in.
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
    )]
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshBody {
    /// The refresh token of the last sign-in or refresh (base64url).
    #[schema(pattern = r"^[A-Za-z0-9_-]+$")]
    refresh_token: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogOutBody {
    /// The refresh token whose family ends; without it, nothing is revoked server-side.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_-]+$")]
    refresh_token: Option<String>,
}

/// Creates an account with email and password.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignUpBody,
    responses((status = 201, body = TokensJson), ErrorResponses))]
async fn sign_up(
    State(state): State<EdgeState>,
    ApiJson(body): ApiJson<SignUpBody>,
) -> Result<Response, ApiError> {
    check_new_password_length(&body.password)?;
    let tokens = state
        .auth()
        .sign_up(SignUpRequest {
            email: body.email,
            password: body.password,
            name: body.name.unwrap_or_default(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(tokens_json(tokens))).into_response())
}

/// Signs in with email and password; a wrong password and an unknown email get the same 401.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LogInBody,
    responses((status = 200, body = TokensJson), ErrorResponses))]
async fn log_in(
    State(state): State<EdgeState>,
    ApiJson(body): ApiJson<LogInBody>,
) -> Result<Json<Value>, ApiError> {
    if let Err(seconds) = state.account_logins().acquire(&body.email) {
        return Err(too_many(
            "account",
            format!("too many sign-in attempts for this account; retry in {seconds} s"),
            seconds,
        ));
    }
    let tokens = state
        .auth()
        .log_in(LogInRequest {
            email: body.email,
            password: body.password,
        })
        .await?;
    Ok(Json(tokens_json(tokens)))
}

/// Signs in with a Google ID token (the account is created on first use).
#[utoipa::path(post, path = "/auth/google", tag = "auth", request_body = GoogleBody,
    responses((status = 200, body = TokensJson), ErrorResponses))]
async fn google(
    State(state): State<EdgeState>,
    ApiJson(body): ApiJson<GoogleBody>,
) -> Result<Json<Value>, ApiError> {
    let tokens = state
        .auth()
        .google(SignInWithGoogleRequest {
            id_token: body.id_token,
            nonce: body.nonce.unwrap_or_default(),
        })
        .await?;
    Ok(Json(tokens_json(tokens)))
}

/// Signs in with an Apple identity token (the account is created on first use).
#[utoipa::path(post, path = "/auth/apple", tag = "auth", request_body = AppleBody,
    responses((status = 200, body = TokensJson), ErrorResponses))]
async fn apple(
    State(state): State<EdgeState>,
    ApiJson(body): ApiJson<AppleBody>,
) -> Result<Json<Value>, ApiError> {
    let tokens = state
        .auth()
        .apple(SignInWithAppleRequest {
            identity_token: body.identity_token,
            nonce: body.nonce.unwrap_or_default(),
            name: body.name.unwrap_or_default(),
        })
        .await?;
    Ok(Json(tokens_json(tokens)))
}

/// Exchanges a refresh token for a new pair; a token works once, and presenting a used
/// one ends every session of its family.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = TokensJson), ErrorResponses))]
async fn refresh(
    State(state): State<EdgeState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<Value>, ApiError> {
    check_refresh_token(&body.refresh_token)?;
    let tokens = state
        .auth()
        .refresh(RefreshRequest {
            refresh_token: body.refresh_token,
        })
        .await?;
    Ok(Json(tokens_json(tokens)))
}

/// Ends the session: the refresh token's family is revoked.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("accessToken" = [])),
    request_body(content = Option<LogOutBody>),
    responses((status = 200, body = LoggedOutJson), ErrorResponses))]
async fn log_out(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    OptionalApiJson(body): OptionalApiJson<LogOutBody>,
) -> Result<Json<Value>, ApiError> {
    let revoked = match body.refresh_token {
        Some(refresh_token) => {
            check_refresh_token(&refresh_token)?;
            state
                .auth()
                .log_out(&caller, LogOutRequest { refresh_token })
                .await?
        }
        None => false,
    };
    Ok(Json(json!({ "revoked": revoked })))
}

/// My profile.
#[utoipa::path(get, path = "/users/me", tag = "auth", security(("accessToken" = [])),
    responses((status = 200, body = UserJson), ErrorResponses))]
pub(super) async fn me(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(user_json(state.auth().me(&caller).await?)))
}

/// Longest new password, in characters. The auth service bounds passwords at 256 bytes
/// (its hashing input); the document can only count characters, so the edge holds new
/// passwords to 64, which always fit.
const MAX_NEW_PASSWORD_CHARS: usize = 64;

fn check_new_password_length(password: &str) -> Result<(), ApiError> {
    if password.chars().count() > MAX_NEW_PASSWORD_CHARS {
        return Err(ApiError::invalid_argument(format!(
            "password must be at most {MAX_NEW_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Refresh tokens are what the auth service issues: base64url, so anything else is
/// refused as malformed (400) rather than looked up.
fn check_refresh_token(token: &str) -> Result<(), ApiError> {
    let well_formed = !token.is_empty()
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(
            "refreshToken must be the refresh token a sign-in or refresh returned",
        ))
    }
}

fn tokens_json(tokens: TokenPair) -> Value {
    json!({
        "accessToken": tokens.access_token,
        "refreshToken": tokens.refresh_token,
        "expiresIn": tokens.expires_in,
        "tokenType": "Bearer",
        "user": tokens.user.map(user_json).unwrap_or(Value::Null),
    })
}

fn user_json(user: User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "plan": plan_name(user.plan),
        "emailVerified": user.email_verified,
        "createdAt": Rfc3339::from_timestamp(user.created_at.as_ref()),
        "providers": user.providers,
    })
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{Request, StatusCode, header},
    };
    use serde_json::json;
    use tower::ServiceExt;

    use super::check_refresh_token;
    use crate::test_support::{json_of, test_router};

    async fn sign_up(password: &str) -> (StatusCode, serde_json::Value) {
        let body = json!({"email": "a@example.com", "password": password}).to_string();
        let response = test_router()
            .await
            .oneshot(
                Request::post("/auth/signup")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        (status, json_of(response).await)
    }

    #[tokio::test]
    async fn malformed_refresh_tokens_are_refused_before_the_auth_service() {
        for (token, status) in [
            ("", StatusCode::BAD_REQUEST),
            (" ", StatusCode::BAD_REQUEST),
            ("a b", StatusCode::BAD_REQUEST),
            ("tok\u{e9}n", StatusCode::BAD_REQUEST),
            (
                "U_a4j-Sa2aG1T1TGg1k_czsrEiQYqxZ-3ni4_oGWjKg",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ] {
            let body = json!({ "refreshToken": token }).to_string();
            let response = test_router()
                .await
                .oneshot(
                    Request::post("/auth/refresh")
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{token:?}");
        }
        assert!(check_refresh_token("a b").is_err());
        assert!(check_refresh_token("abc-_09").is_ok());
    }

    #[tokio::test]
    async fn new_passwords_are_at_most_64_characters() {
        // 64 characters of 4 bytes each pass the edge (the auth service is down here).
        let (status, _) = sign_up(&"\u{1f600}".repeat(64)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, body) = sign_up(&"p".repeat(65)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "password must be at most 64 characters", "code": "invalid_argument"})
        );
    }
}
