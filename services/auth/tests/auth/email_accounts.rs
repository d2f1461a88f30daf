//! Email and password accounts over the real gRPC server on 127.0.0.1, on SQLite and
//! PostgreSQL: sign-up, log-in, refresh rotation, log-out and profile reads.

use std::time::{Duration, Instant};

use crate::support::{
    Backend,
    server::{JWT_SECRET, TestServer, anonymous, as_app_user, as_operator},
};
use clawfleet_contracts::{
    auth::v1::{
        GetUserRequest, LogInRequest, LogOutRequest, RefreshRequest, SignUpRequest, TokenPair,
    },
    common::v1::Plan,
};
use clawfleet_kit::{access_token::AccessTokenKeys, error::ServiceError};
use tonic::{Code, Request, Status};

const PASSWORD: &str = "correct horse battery";

fn sign_up_request(email: &str) -> Request<SignUpRequest> {
    anonymous(SignUpRequest {
        email: email.into(),
        password: PASSWORD.into(),
        name: "Ada".into(),
    })
}

async fn sign_up(server: &mut TestServer, email: &str) -> TokenPair {
    server
        .client
        .sign_up(sign_up_request(email))
        .await
        .expect("sign-up succeeds")
        .into_inner()
        .tokens
        .expect("tokens")
}

async fn log_in(server: &mut TestServer, email: &str, password: &str) -> Result<TokenPair, Status> {
    let request = anonymous(LogInRequest {
        email: email.into(),
        password: password.into(),
    });
    Ok(server
        .client
        .log_in(request)
        .await?
        .into_inner()
        .tokens
        .unwrap())
}

async fn refresh(server: &mut TestServer, refresh_token: &str) -> Result<TokenPair, Status> {
    let request = anonymous(RefreshRequest {
        refresh_token: refresh_token.into(),
    });
    Ok(server
        .client
        .refresh(request)
        .await?
        .into_inner()
        .tokens
        .unwrap())
}

async fn sign_up_log_in_refresh_log_out_and_get_user(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let keys = AccessTokenKeys::from_secret(JWT_SECRET.as_bytes()).unwrap();

    let signed_up = sign_up(&mut server, "  Ada@Example.COM ").await;
    let user = signed_up.user.clone().unwrap();
    assert!(user.id.starts_with("usr_"));
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.name, "Ada");
    assert_eq!(user.plan, Plan::Free as i32);
    assert_eq!(user.providers, vec!["email"]);
    assert!(!user.email_verified);
    assert!(user.created_at.unwrap().seconds > 1_700_000_000);
    assert_eq!(signed_up.token_type, "Bearer");
    assert_eq!(signed_up.expires_in, 900);
    let claims = keys.verify(&signed_up.access_token).unwrap();
    assert_eq!(claims.sub, user.id);
    assert_eq!(claims.plan, "free");

    let logged_in = log_in(&mut server, "ADA@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(logged_in.user.unwrap().id, user.id);
    assert_ne!(logged_in.refresh_token, signed_up.refresh_token);

    let refreshed = refresh(&mut server, &logged_in.refresh_token)
        .await
        .unwrap();
    assert_ne!(refreshed.refresh_token, logged_in.refresh_token);
    assert_eq!(keys.verify(&refreshed.access_token).unwrap().sub, user.id);
    assert_eq!(refreshed.user.unwrap().id, user.id);

    let me = server
        .client
        .get_user(as_app_user(GetUserRequest::default(), &user.id))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me, user);
    let by_operator = server
        .client
        .get_user(as_operator(GetUserRequest {
            user_id: user.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(by_operator.id, user.id);
    let operator_without_id = server
        .client
        .get_user(as_operator(GetUserRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(operator_without_id.code(), Code::InvalidArgument);

    let logged_out = server
        .client
        .log_out(as_app_user(
            LogOutRequest {
                refresh_token: refreshed.refresh_token.clone(),
            },
            &user.id,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(logged_out.revoked);
    let after_log_out = refresh(&mut server, &refreshed.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(after_log_out.code(), Code::Unauthenticated);
    // The sign-up's own family is a different session and still works.
    refresh(&mut server, &signed_up.refresh_token)
        .await
        .unwrap();
    server.stop().await;
}

async fn duplicate_emails_are_already_exists(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    sign_up(&mut server, "dup@example.com").await;
    for variant in ["dup@example.com", " DUP@Example.com"] {
        let status = server
            .client
            .sign_up(sign_up_request(variant))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            status.message(),
            "an account with this email already exists"
        );
        assert_eq!(ServiceError::from_status(&status).code.http_status(), 409);
    }
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    server.stop().await;
}

async fn timed_log_in(server: &mut TestServer, email: &str, password: &str) -> (Status, Duration) {
    let started = Instant::now();
    let status = log_in(server, email, password).await.unwrap_err();
    (status, started.elapsed())
}

async fn wrong_password_and_unknown_email_look_the_same(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    sign_up(&mut server, "known@example.com").await;
    let mut wrong_password_times = Vec::new();
    let mut unknown_email_times = Vec::new();
    for _ in 0..3 {
        let (wrong, wrong_time) =
            timed_log_in(&mut server, "known@example.com", "not the password").await;
        let (unknown, unknown_time) =
            timed_log_in(&mut server, "nobody@example.com", "not the password").await;
        let (malformed, _) = timed_log_in(&mut server, "not-an-email", "not the password").await;
        for status in [&wrong, &unknown, &malformed] {
            assert_eq!(status.code(), Code::Unauthenticated);
            assert_eq!(status.message(), "invalid email or password");
            assert_eq!(
                status.metadata().get("x-clawfleet-error-code").unwrap(),
                "unauthenticated"
            );
        }
        wrong_password_times.push(wrong_time);
        unknown_email_times.push(unknown_time);
    }
    wrong_password_times.sort();
    unknown_email_times.sort();
    let ratio = unknown_email_times[1].as_secs_f64() / wrong_password_times[1].as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "unknown email took {:?} (median), wrong password {:?}: the hash is skipped somewhere",
        unknown_email_times[1],
        wrong_password_times[1]
    );
    server.stop().await;
}

async fn refresh_reuse_kills_the_family(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let first = sign_up(&mut server, "reuse@example.com").await;
    let other_session = log_in(&mut server, "reuse@example.com", PASSWORD)
        .await
        .unwrap();
    let second = refresh(&mut server, &first.refresh_token).await.unwrap();
    let third = refresh(&mut server, &second.refresh_token).await.unwrap();

    let replayed = refresh(&mut server, &first.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(replayed.code(), Code::Unauthenticated);
    assert_eq!(replayed.message(), "invalid or expired refresh token");
    assert!(!replayed.message().contains(&first.refresh_token));
    let newest = refresh(&mut server, &third.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(
        newest.code(),
        Code::Unauthenticated,
        "the newest token died with its family"
    );
    // Another sign-in is another family and is untouched.
    refresh(&mut server, &other_session.refresh_token)
        .await
        .unwrap();
    server.stop().await;
}

async fn racing_refreshes_share_one_successor(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let tokens = sign_up(&mut server, "race@example.com").await;
    let mut first_client = server.client.clone();
    let mut second_client = server.client.clone();
    let request = || {
        anonymous(RefreshRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
    };
    let (first, second) = tokio::join!(
        first_client.refresh(request()),
        second_client.refresh(request())
    );
    // One rotation wins; the other call is a retry within the grace and gets the same
    // successor, so the family never forks into two live tokens.
    let successors: Vec<String> = [first, second]
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|response| response.into_inner().tokens)
        .map(|tokens| tokens.refresh_token)
        .collect();
    assert!(!successors.is_empty());
    assert!(
        successors
            .iter()
            .all(|successor| *successor == successors[0]),
        "two different successors of one token"
    );
    refresh(&mut server, &successors[0]).await.unwrap();
    server.stop().await;
}

async fn a_retry_within_the_grace_gets_the_same_successor(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let first = sign_up(&mut server, "retry@example.com").await;
    let second = refresh(&mut server, &first.refresh_token).await.unwrap();
    // The response was lost; the app retries with the token it still holds.
    let retried = refresh(&mut server, &first.refresh_token).await.unwrap();
    assert_eq!(retried.refresh_token, second.refresh_token);
    assert!(!retried.access_token.is_empty());
    // The family is intact and moves on.
    let third = refresh(&mut server, &second.refresh_token).await.unwrap();
    // Once the successor was used, its predecessor is a stolen copy: the family ends.
    let replayed = refresh(&mut server, &first.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(replayed.code(), Code::Unauthenticated);
    assert!(refresh(&mut server, &third.refresh_token).await.is_err());
    server.stop().await;
}

async fn a_retry_after_the_grace_revokes_the_family(backend: Backend) {
    let mut server = TestServer::start_with(backend, |config| {
        config.refresh_retry_grace = Duration::from_millis(50);
    })
    .await;
    let first = sign_up(&mut server, "late-retry@example.com").await;
    let second = refresh(&mut server, &first.refresh_token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(refresh(&mut server, &first.refresh_token).await.is_err());
    assert!(
        refresh(&mut server, &second.refresh_token).await.is_err(),
        "the successor died with its family"
    );
    server.stop().await;
}

async fn a_session_ends_at_its_absolute_lifetime(backend: Backend) {
    let mut server = TestServer::start_with(backend, |config| {
        config.session_lifetime = Duration::from_millis(700);
    })
    .await;
    let mut tokens = sign_up(&mut server, "lifetime@example.com").await;
    let digest = clawfleet_auth::digest::sha256_hex(&tokens.refresh_token);
    let first = server.store.refresh_token(&digest).await.unwrap().unwrap();
    // Refreshing keeps working inside the lifetime, but never extends it.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = refresh(&mut server, &tokens.refresh_token).await.unwrap();
        let digest = clawfleet_auth::digest::sha256_hex(&next.refresh_token);
        let stored = server.store.refresh_token(&digest).await.unwrap().unwrap();
        assert!(
            stored.expires_at_ms <= first.expires_at_ms,
            "the lifetime was extended"
        );
        tokens.refresh_token = next.refresh_token;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = refresh(&mut server, &tokens.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    server.stop().await;
}

async fn expired_refresh_tokens_are_refused(backend: Backend) {
    let mut server = TestServer::start_with(backend, |config| {
        config.refresh_ttl = Duration::from_millis(300);
    })
    .await;
    let tokens = sign_up(&mut server, "late@example.com").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = refresh(&mut server, &tokens.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "invalid or expired refresh token");
    server.stop().await;
}

/// The running service deletes families that can never be refreshed again.
async fn expired_refresh_tokens_are_purged_while_serving(backend: Backend) {
    let mut server = TestServer::start_with(backend, |config| {
        config.refresh_ttl = Duration::from_millis(200);
        config.refresh_purge_interval = Duration::from_millis(100);
    })
    .await;
    let tokens = sign_up(&mut server, "gone@example.com").await;
    let digest = clawfleet_auth::digest::sha256_hex(&tokens.refresh_token);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.store.refresh_token(&digest).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "expired token still stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

async fn hostile_emails_are_refused_and_nothing_is_stored(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    for email in [
        "a'--@x.com",
        "x@x.com'; DROP TABLE users; --",
        "\" OR 1=1 --@x.com",
        "a\u{ff20}x.com",
        "admin\u{202e}moc.x@evil.com",
        "a\0@x.com",
        "a b@x.com",
        "ａ@x.com",
        "",
        &format!("{}@x.com", "a".repeat(250)),
    ] {
        let status = server
            .client
            .sign_up(sign_up_request(email))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{email:?}");
        assert!(!status.message().contains(PASSWORD));
    }
    assert_eq!(server.store.count_users().await.unwrap(), 0);
    server.stop().await;
}

async fn weak_and_oversized_passwords_are_refused(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    for password in ["", "short", "1234567", &"x".repeat(257)] {
        let status = server
            .client
            .sign_up(anonymous(SignUpRequest {
                email: "p@example.com".into(),
                password: password.to_owned(),
                name: String::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(password.is_empty() || !status.message().contains(password));
    }
    assert_eq!(server.store.count_users().await.unwrap(), 0);
    server.stop().await;
}

async fn app_users_see_and_log_out_only_themselves(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let alice = sign_up(&mut server, "alice@example.com").await;
    let bob = sign_up(&mut server, "bob@example.com").await;
    let alice_id = alice.user.unwrap().id;
    let bob_id = bob.user.unwrap().id;
    let peek = server
        .client
        .get_user(as_app_user(
            GetUserRequest {
                user_id: bob_id.clone(),
            },
            &alice_id,
        ))
        .await
        .unwrap_err();
    assert_eq!(peek.code(), Code::NotFound);
    let missing = server
        .client
        .get_user(as_app_user(
            GetUserRequest {
                user_id: "usr_nobody".into(),
            },
            &alice_id,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), missing.message()),
        (peek.code(), peek.message())
    );
    let foreign_log_out = server
        .client
        .log_out(as_app_user(
            LogOutRequest {
                refresh_token: bob.refresh_token.clone(),
            },
            &alice_id,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!foreign_log_out.revoked);
    refresh(&mut server, &bob.refresh_token).await.unwrap();
    server.stop().await;
}

async fn callers_without_credentials_are_refused(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let status = server
        .client
        .sign_up(Request::new(SignUpRequest {
            email: "x@example.com".into(),
            password: PASSWORD.into(),
            name: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(server.store.count_users().await.unwrap(), 0);
    server.stop().await;
}

on_both_backends!(
    sign_up_log_in_refresh_log_out_and_get_user,
    duplicate_emails_are_already_exists,
    wrong_password_and_unknown_email_look_the_same,
    refresh_reuse_kills_the_family,
    racing_refreshes_share_one_successor,
    a_retry_within_the_grace_gets_the_same_successor,
    a_retry_after_the_grace_revokes_the_family,
    a_session_ends_at_its_absolute_lifetime,
    expired_refresh_tokens_are_refused,
    expired_refresh_tokens_are_purged_while_serving,
    hostile_emails_are_refused_and_nothing_is_stored,
    weak_and_oversized_passwords_are_refused,
    app_users_see_and_log_out_only_themselves,
    callers_without_credentials_are_refused,
);
