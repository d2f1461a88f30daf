//! Google and Apple ID-token verification over the real gRPC server: signatures, claims,
//! nonces, key rotation and provider configuration, with tokens signed by test RSA keys
//! and served by a loopback JWKS stand-in, on SQLite and PostgreSQL.

use std::time::Duration;

use crate::support::{
    Backend,
    jwks_server::JwksServer,
    keys::TestKey,
    providers::{KID, apple, apple_claims, google, google_claims, now, server_with},
    server::TestServer,
};
use clawfleet_auth::digest::sha256_hex;
use serde_json::{Value, json};
use tonic::Code;

async fn google_tokens_with_a_wrong_claim_or_signature_are_refused(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    let valid = google_claims("g-2", "g2@gmail.com", true);
    let with = |field: &str, value: Value| {
        let mut claims = valid.clone();
        claims[field] = value;
        key.sign(KID, &claims)
    };
    let without = |field: &str| {
        let mut claims = valid.clone();
        claims.as_object_mut().unwrap().remove(field);
        key.sign(KID, &claims)
    };
    let genuine = key.sign(KID, &valid);
    let (head, rest) = genuine.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_payload = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let mut claims = valid.clone();
        claims["sub"] = json!("someone-else");
        URL_SAFE_NO_PAD.encode(claims.to_string())
    };
    let refused = [
        (
            "wrong aud",
            with("aud", json!("another-app.apps.googleusercontent.com")),
        ),
        ("wrong iss", with("iss", json!("https://evil.example.com"))),
        ("apple iss", with("iss", json!("https://appleid.apple.com"))),
        ("expired", with("exp", json!(now() - 120))),
        ("no aud", without("aud")),
        ("no iss", without("iss")),
        ("no exp", without("exp")),
        ("no sub", without("sub")),
        ("unpublished key", TestKey::other().sign(KID, &valid)),
        (
            "tampered payload",
            format!("{head}.{forged_payload}.{signature}"),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (case, token) in refused {
        let status = google(&mut server, &token, "").await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
        assert_eq!(status.message(), "invalid google token", "{case}");
    }
    assert_eq!(server.store.count_users().await.unwrap(), 0);
    google(&mut server, &genuine, "").await.unwrap();
    server.stop().await;
}

async fn nonces_are_checked_when_the_request_sends_one(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let mut server = server_with(backend, &jwks).await;
    let mut claims = google_claims("g-3", "g3@gmail.com", true);
    claims["nonce"] = json!("raw-nonce");
    let token = key.sign(KID, &claims);
    google(&mut server, &token, "raw-nonce").await.unwrap();
    google(&mut server, &token, "").await.unwrap();
    assert_eq!(
        google(&mut server, &token, "other")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let no_nonce = key.sign(KID, &google_claims("g-3", "g3@gmail.com", true));
    assert_eq!(
        google(&mut server, &no_nonce, "raw-nonce")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // Google echoes the raw nonce: a digest there is not accepted.
    let mut hashed = google_claims("g-3", "g3@gmail.com", true);
    hashed["nonce"] = json!(sha256_hex("raw-nonce"));
    assert_eq!(
        google(&mut server, &key.sign(KID, &hashed), "raw-nonce")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    // Apple carries SHA-256(raw nonce) in hex when the app hashed it, else the raw nonce.
    let mut apple_hashed = apple_claims("a-3", "a3@privaterelay.appleid.com", "true");
    apple_hashed["nonce"] = json!(sha256_hex("apple-nonce"));
    let apple_token = key.sign(KID, &apple_hashed);
    apple(&mut server, &apple_token, "apple-nonce", "")
        .await
        .unwrap();
    let mut apple_raw = apple_claims("a-3", "a3@privaterelay.appleid.com", "true");
    apple_raw["nonce"] = json!("apple-nonce");
    apple(&mut server, &key.sign(KID, &apple_raw), "apple-nonce", "")
        .await
        .unwrap();
    let status = apple(&mut server, &apple_token, "wrong-nonce", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "invalid apple token");
    server.stop().await;
}

async fn a_required_nonce_must_be_sent(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let url = jwks.url().to_owned();
    let mut server = TestServer::start_with(backend, move |config| {
        config.google_jwks_url = url.clone();
        config.apple_jwks_url = url;
        config.google_require_nonce = true;
        config.apple_require_nonce = true;
    })
    .await;
    let mut claims = google_claims("g-4", "g4@gmail.com", true);
    claims["nonce"] = json!("raw-nonce");
    let token = key.sign(KID, &claims);
    // The very token that passes without a nonce elsewhere is refused here without one.
    let status = google(&mut server, &token, "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("google sign-in requires a nonce"),
        "{}",
        status.message()
    );
    google(&mut server, &token, "raw-nonce").await.unwrap();

    let mut apple_claims = apple_claims("a-4", "a4@privaterelay.appleid.com", "true");
    apple_claims["nonce"] = json!(sha256_hex("apple-nonce"));
    let apple_token = key.sign(KID, &apple_claims);
    let status = apple(&mut server, &apple_token, "", "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    apple(&mut server, &apple_token, "apple-nonce", "")
        .await
        .unwrap();
    server.stop().await;
}

async fn an_unknown_kid_triggers_one_rate_limited_refetch(backend: Backend) {
    let key = TestKey::signing();
    let rotated_key = TestKey::other();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let url = jwks.url().to_owned();
    let mut server = TestServer::start_with(backend, move |config| {
        config.google_jwks_url = url;
        config.jwks_min_refetch_interval = Duration::from_millis(800);
    })
    .await;
    google(
        &mut server,
        &key.sign(KID, &google_claims("g-4", "g4@gmail.com", true)),
        "",
    )
    .await
    .unwrap();
    assert_eq!(jwks.hits(), 1);

    jwks.publish(&[(KID, &key), ("test-key-2", &rotated_key)]);
    let rotated_token = rotated_key.sign("test-key-2", &google_claims("g-4", "g4@gmail.com", true));
    // Right after a fetch, an unknown kid does not fetch again.
    assert_eq!(
        google(&mut server, &rotated_token, "")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(jwks.hits(), 1);
    tokio::time::sleep(Duration::from_millis(900)).await;
    google(&mut server, &rotated_token, "").await.unwrap();
    assert_eq!(jwks.hits(), 2, "the unknown kid refetched the set once");
    // A made-up kid right after that is refused without another fetch.
    let made_up = rotated_key.sign("made-up", &google_claims("g-4", "g4@gmail.com", true));
    assert_eq!(
        google(&mut server, &made_up, "").await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        google(&mut server, &made_up, "").await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(jwks.hits(), 2);
    server.stop().await;
}

async fn an_unconfigured_provider_is_a_failed_precondition(backend: Backend) {
    let key = TestKey::signing();
    let jwks = JwksServer::start(&[(KID, &key)]).await;
    let url = jwks.url().to_owned();
    let mut server = TestServer::start_with(backend, move |config| {
        config.google_client_id = None;
        config.apple_client_id = None;
        config.google_jwks_url = url;
    })
    .await;
    let status = google(
        &mut server,
        &key.sign(KID, &google_claims("g-8", "g8@gmail.com", true)),
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "google sign-in is not configured");
    let status = apple(&mut server, "a.b.c", "", "").await.unwrap_err();
    assert_eq!(status.message(), "apple sign-in is not configured");
    assert_eq!(jwks.hits(), 0);
    server.stop().await;
}

async fn unreachable_signing_keys_are_unavailable(backend: Backend) {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys", closed.local_addr().unwrap());
    drop(closed);
    let mut server =
        TestServer::start_with(backend, move |config| config.google_jwks_url = url).await;
    let token = TestKey::signing().sign(KID, &google_claims("g-9", "g9@gmail.com", true));
    let status = google(&mut server, &token, "").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "google signing keys are unavailable");
    server.stop().await;
}

on_both_backends!(
    google_tokens_with_a_wrong_claim_or_signature_are_refused,
    nonces_are_checked_when_the_request_sends_one,
    a_required_nonce_must_be_sent,
    an_unknown_kid_triggers_one_rate_limited_refetch,
    an_unconfigured_provider_is_a_failed_precondition,
    unreachable_signing_keys_are_unavailable,
);
