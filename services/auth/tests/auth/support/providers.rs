//! Stand-in Google and Apple tokens and the calls that present them.

use std::time::{SystemTime, UNIX_EPOCH};

use clawfleet_contracts::auth::v1::{
    SignInWithAppleRequest, SignInWithGoogleRequest, SignUpRequest, TokenPair,
};
use serde_json::{Value, json};
use tonic::Status;

use super::{
    Backend,
    jwks_server::JwksServer,
    server::{APPLE_CLIENT_ID, GOOGLE_CLIENT_ID, TestServer, anonymous},
};

pub const KID: &str = "test-key-1";
pub const PASSWORD: &str = "correct horse battery";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn google_claims(subject: &str, email: &str, email_verified: bool) -> Value {
    json!({
        "iss": "https://accounts.google.com",
        "aud": GOOGLE_CLIENT_ID,
        "sub": subject,
        "email": email,
        "email_verified": email_verified,
        "name": "Gina Google",
        "iat": now(),
        "exp": now() + 600,
    })
}

pub fn apple_claims(subject: &str, email: &str, email_verified: &str) -> Value {
    json!({
        "iss": "https://appleid.apple.com",
        "aud": APPLE_CLIENT_ID,
        "sub": subject,
        "email": email,
        "email_verified": email_verified,
        "is_private_email": "true",
        "iat": now(),
        "exp": now() + 600,
    })
}

/// A server whose Google and Apple JWKS point at `jwks`.
pub async fn server_with(backend: Backend, jwks: &JwksServer) -> TestServer {
    let url = jwks.url().to_owned();
    TestServer::start_with(backend, move |config| {
        config.google_jwks_url = url.clone();
        config.apple_jwks_url = url;
    })
    .await
}

pub async fn google(
    server: &mut TestServer,
    token: &str,
    nonce: &str,
) -> Result<TokenPair, Status> {
    let request = anonymous(SignInWithGoogleRequest {
        id_token: token.into(),
        nonce: nonce.into(),
    });
    Ok(server
        .client
        .sign_in_with_google(request)
        .await?
        .into_inner()
        .tokens
        .unwrap())
}

pub async fn apple(
    server: &mut TestServer,
    token: &str,
    nonce: &str,
    name: &str,
) -> Result<TokenPair, Status> {
    let request = anonymous(SignInWithAppleRequest {
        identity_token: token.into(),
        nonce: nonce.into(),
        name: name.into(),
    });
    Ok(server
        .client
        .sign_in_with_apple(request)
        .await?
        .into_inner()
        .tokens
        .unwrap())
}

/// Signs up with email and [`PASSWORD`]; returns the user id.
pub async fn sign_up(server: &mut TestServer, email: &str) -> String {
    let request = anonymous(SignUpRequest {
        email: email.into(),
        password: PASSWORD.into(),
        name: String::new(),
    });
    server
        .client
        .sign_up(request)
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap()
        .user
        .unwrap()
        .id
}
