//! Accounts made and found by Google and Apple sign-in over the real gRPC server: first
//! sign-in creates the user, verified emails link to existing accounts, unverified
//! ones never do, on SQLite and PostgreSQL.

#[macro_use]
mod support;

use clawfleet_contracts::auth::v1::LogInRequest;
use serde_json::json;
use support::{
    Backend,
    jwks_server::JwksServer,
    keys::TestKey,
    providers::{KID, PASSWORD, apple, apple_claims, google, google_claims, server_with, sign_up},
    server::anonymous,
};
use tonic::Code;

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

async fn a_verified_provider_email_links_to_the_existing_account(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    let user_id = sign_up(&mut server, "link@example.com").await;
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
    assert_eq!(linked.providers, vec!["email", "google"]);
    assert!(linked.email_verified);
    let apple_linked = apple(
        &mut server,
        &key.sign(KID, &apple_claims("a-5", "link@example.com", "true")),
        "",
        "",
    )
    .await
    .unwrap()
    .user
    .unwrap();
    assert_eq!(apple_linked.id, user_id);
    assert_eq!(apple_linked.providers, vec!["email", "apple", "google"]);
    let password_still_works = server
        .client
        .log_in(anonymous(LogInRequest {
            email: "link@example.com".into(),
            password: PASSWORD.into(),
        }))
        .await;
    assert!(password_still_works.is_ok());
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    server.stop().await;
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
    a_verified_provider_email_links_to_the_existing_account,
    an_unverified_provider_email_never_takes_over_an_account,
    an_unverified_email_is_not_claimed_by_a_new_provider_account,
);
