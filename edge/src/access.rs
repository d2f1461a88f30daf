//! The access-token check in front of the App API. The edge verifies the JWT itself
//! (HMAC and claims, no round trip to the auth service) and records the app user as
//! the request's [`Caller`](clawfleet_kit::identity::Caller), so services see who calls
//! and enforce ownership. Tokens seen before are answered from
//! [`VerifiedTokens`](crate::verified_tokens::VerifiedTokens).

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use clawfleet_kit::{access_token::AccessTokenError, error::ErrorCode};

use crate::{auth::bearer_token, error::ApiError, state::EdgeState};

/// Lets the request through with its app user attached, or answers 401.
pub async fn require_access_token(
    State(state): State<EdgeState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return unauthenticated("missing access token: send Authorization: Bearer <accessToken>");
    };
    match state.access_tokens().verify(token) {
        Ok(verified) => {
            // The token's plan claim is not used: plans change between sign-ins, so
            // handlers ask the auth service (docs/product/subscriptions.md).
            request.extensions_mut().insert(verified.caller);
            next.run(request).await
        }
        Err(AccessTokenError::Expired) => {
            unauthenticated("access token expired: refresh it with POST /auth/refresh")
        }
        Err(_) => unauthenticated("invalid access token"),
    }
}

fn unauthenticated(message: &str) -> Response {
    let mut response = ApiError::new(ErrorCode::Unauthenticated, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
