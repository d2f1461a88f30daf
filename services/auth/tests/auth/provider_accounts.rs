//! Accounts made and found by Google and Apple sign-in over the real gRPC server: first
//! sign-in creates the user, verified emails link to existing accounts (claiming them
//! from an unverified password sign-up), unverified ones never do, on SQLite and
//! PostgreSQL.

use crate::support::{
    Backend,
    jwks_server::JwksServer,
    keys::TestKey,
    providers::{KID, PASSWORD, apple, apple_claims, google, google_claims, server_with, sign_up},
    server::{TestServer, anonymous},
};
use clawfleet_contracts::auth::v1::{LogInRequest, RefreshRequest, SignUpRequest, TokenPair};
use serde_json::json;
use tonic::{Code, Status};

async fn first_google_sign_in_creates_the_user_and_the_next_finds_it(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    let token = key.sign(KID, &google_claims("g-1", "Gina@Gmail.com", true));
    let first = google(&mut server, &token, "").await.unwrap();
    let user = first.user.unwrap();
    assert_eq!(user.email, "gina@gmail.com");
    assert!(user.email_verified);
    assert_eq!(user.name, "Gina Google");
    assert_eq!(user.providers, vec!["google"]);
    let mut claims = google_claims("g-1", "gina@gmail.com", true);
    claims["iss"] = json!("accounts.google.com");
    let second = google(&mut server, &key.sign(KID, &claims), "")
        .await
        .unwrap();
    assert_eq!(second.user.unwrap().id, user.id);
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    assert_eq!(jwks.hits(), 1, "keys are cached");
    server.stop().await;
}
async fn first_apple_sign_in_keeps_the_name_the_app_sends(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    let token = key.sign(
        KID,
        &apple_claims("a-1", "relay@privaterelay.appleid.com", "true"),
    );
    let first = apple(&mut server, &token, "", "Ada Apple").await.unwrap();
    let user = first.user.unwrap();
    assert_eq!(user.name, "Ada Apple");
    assert_eq!(user.email, "relay@privaterelay.appleid.com");
    assert!(
        user.email_verified,
        "the string \"true\" counts as verified"
    );
    assert_eq!(user.providers, vec!["apple"]);
    let again = apple(&mut server, &token, "", "")
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!((again.id, again.name), (user.id, "Ada Apple".to_owned()));
    server.stop().await;
}

/// Email sign-ups are not verified, so whoever signed up may not own the address. When
/// its verified owner arrives through Google, the account becomes theirs: the identity
/// links, and the unverified password and every session of the earlier sign-up die.
async fn a_verified_provider_email_claims_an_unverified_account(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    let signed_up = server
        .client
        .sign_up(anonymous(SignUpRequest {
            email: "link@example.com".into(),
            password: PASSWORD.into(),
            name: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let user_id = signed_up.user.unwrap().id;
    let linked = google(
        &mut server,
        &key.sign(KID, &google_claims("g-5", "LINK@example.com", true)),
        "",
    )
    .await
    .unwrap()
    .user
    .unwrap();
    assert_eq!(linked.id, user_id);
    assert_eq!(linked.providers, vec!["google"], "the password is gone");
    assert!(linked.email_verified);
    let password_login = log_in(&mut server, "link@example.com").await.unwrap_err();
    assert_eq!(password_login.code(), Code::Unauthenticated);
    let old_session = server
        .client
        .refresh(anonymous(RefreshRequest {
            refresh_token: signed_up.refresh_token,
        }))
        .await
        .unwrap_err();
    assert_eq!(old_session.code(), Code::Unauthenticated);
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    server.stop().await;
}

/// Once the email is verified, further providers only link: nothing is revoked.
async fn a_verified_provider_email_links_to_a_verified_account(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    let first = google(
        &mut server,
        &key.sign(KID, &google_claims("g-8", "both@example.com", true)),
        "",
    )
    .await
    .unwrap();
    let apple_linked = apple(
        &mut server,
        &key.sign(KID, &apple_claims("a-8", "both@example.com", "true")),
        "",
        "",
    )
    .await
    .unwrap()
    .user
    .unwrap();
    assert_eq!(apple_linked.id, first.user.unwrap().id);
    assert_eq!(apple_linked.providers, vec!["apple", "google"]);
    let google_session = server
        .client
        .refresh(anonymous(RefreshRequest {
            refresh_token: first.refresh_token,
        }))
        .await;
    assert!(google_session.is_ok(), "{google_session:?}");
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    server.stop().await;
}

async fn log_in(server: &mut TestServer, email: &str) -> Result<TokenPair, Status> {
    let response = server
        .client
        .log_in(anonymous(LogInRequest {
            email: email.into(),
            password: PASSWORD.into(),
        }))
        .await?;
    Ok(response.into_inner().tokens.unwrap())
}

async fn an_unverified_provider_email_never_takes_over_an_account(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    sign_up(&mut server, "victim@example.com").await;
    let google_status = google(
        &mut server,
        &key.sign(KID, &google_claims("g-6", "victim@example.com", false)),
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(google_status.code(), Code::AlreadyExists);
    assert!(
        google_status
            .message()
            .contains("has not verified the email"),
        "{}",
        google_status.message()
    );
    let apple_status = apple(
        &mut server,
        &key.sign(KID, &apple_claims("a-6", "victim@example.com", "false")),
        "",
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(apple_status.code(), Code::AlreadyExists);
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    assert_eq!(
        server
            .store
            .user_by_identity("google", "g-6")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        server.store.user_by_identity("apple", "a-6").await.unwrap(),
        None
    );
    server.stop().await;
}

async fn an_unverified_email_is_not_claimed_by_a_new_provider_account(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    let user = google(
        &mut server,
        &key.sign(KID, &google_claims("g-7", "free@example.com", false)),
        "",
    )
    .await
    .unwrap()
    .user
    .unwrap();
    assert_eq!(user.email, "");
    assert!(!user.email_verified);
    // The address's real owner can still sign up with it.
    let owner = sign_up(&mut server, "free@example.com").await;
    assert_ne!(owner, user.id);
    server.stop().await;
}

on_both_backends!(
    first_google_sign_in_creates_the_user_and_the_next_finds_it,
    first_apple_sign_in_keeps_the_name_the_app_sends,
    a_verified_provider_email_claims_an_unverified_account,
    a_verified_provider_email_links_to_a_verified_account,
    an_unverified_provider_email_never_takes_over_an_account,
    an_unverified_email_is_not_claimed_by_a_new_provider_account,
);
