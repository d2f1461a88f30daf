//! Benchmark (not a test) of the App API's token check, side by side in one run:
//! `GET /instances` with an access JWT vs `GET /api/instances` with the API key, both
//! listing through the lifecycle service, at concurrency 1 and 64, in interleaved
//! rounds whose median cost is reported; then the p50 of
//! `POST /auth/login` with the argon2id parameters in use.
//!
//! Run: `cargo build --release -p clawfleet -p clawfleet-tests && target/release/bench-auth`

use std::{sync::Arc, time::Instant};

use clawfleet_auth::password::{ARGON2_ITERATIONS, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM};
use clawfleet_tests::{
    app_user::{AppUser, PASSWORD, anonymous},
    http::{client, send},
    load::{self, Side, Summary},
    platform::{Platform, PlatformOptions},
};
use http::{Method, StatusCode};
use serde_json::json;

/// Rounds of about a second each: shorter ones mostly measure the machine's jitter.
const ROUNDS: usize = 9;
const WARMUP_REQUESTS: usize = 2_000;
const LOGINS: usize = 40;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let platform = Platform::start_binary(PlatformOptions::new(data.path(), 25500))?;
    let user = AppUser::sign_up(&platform, "bench@example.com").await;
    let http = client();
    let list = |url: String, credential: String| {
        let (http, url, credential) = (
            http.clone(),
            Arc::<str>::from(url),
            Arc::<str>::from(credential),
        );
        move || {
            let (http, url, credential) = (http.clone(), url.clone(), credential.clone());
            async move {
                send(&http, Method::GET, &url, Some(&credential), None, "")
                    .await
                    .is_ok_and(|reply| reply.status == StatusCode::OK)
            }
        }
    };
    let with_jwt = list(
        format!("{}/instances", platform.edge_url),
        user.access_token.clone(),
    );
    let with_key = list(
        format!("{}/api/instances", platform.edge_url),
        platform.options.api_key.clone(),
    );
    println!(
        "\n== list instances: access JWT (App API) vs API key (/api), {ROUNDS} interleaved rounds per concurrency"
    );
    Summary::header();
    for (concurrency, requests_per_round) in [(1usize, 4_000), (64, 16_000)] {
        load::print_interleaved_cost(
            concurrency,
            requests_per_round,
            WARMUP_REQUESTS,
            ROUNDS,
            Side {
                label: "GET /instances (jwt)",
                operation: with_jwt.clone(),
            },
            Side {
                label: "GET /api/instances (key)",
                operation: with_key.clone(),
            },
            "<= 10 % at 64",
        )
        .await;
    }

    let mut latencies = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let started = Instant::now();
        let reply = anonymous(
            &platform,
            &http,
            "/auth/login",
            json!({"email": "bench@example.com", "password": PASSWORD}),
        )
        .await;
        anyhow::ensure!(
            reply.status == StatusCode::OK,
            "login failed: {}",
            reply.status
        );
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    println!(
        "\n== login: p50 {:.1} ms, p99 {:.1} ms over {LOGINS} sequential logins; argon2id m={} KiB, t={}, p={} (OWASP minimum: m=19456 KiB, t=2, p=1)",
        latencies[LOGINS / 2].as_secs_f64() * 1e3,
        latencies[LOGINS * 99 / 100].as_secs_f64() * 1e3,
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
    );
    Ok(())
}
