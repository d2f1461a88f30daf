//! Benchmark (not a test): is the edge's cache of verified access tokens worth keeping?
//! Side by side in one run, on the same 1,000 tokens: the full check (HS256 HMAC and
//! claim parsing, `AccessTokenKeys::verify`) against the cached check
//! (`VerifiedTokens::verify`, a map lookup after the first sight of a token), on one
//! thread and on 64, in interleaved rounds whose median is reported.
//!
//! Run: `cargo build --release -p clawfleet-tests && target/release/bench-token-check`

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use clawfleet_edge::verified_tokens::VerifiedTokens;
use clawfleet_kit::{access_token::AccessTokenKeys, plan::Plan, secret::ExposeSecret};

const TOKENS: usize = 1_000;
const CHECKS_PER_THREAD: usize = 200_000;
const ROUNDS: usize = 7;
const SECRET: &[u8] = b"bench-jwt-secret-0123456789-0123456789-abcdef";

fn main() -> anyhow::Result<()> {
    let keys = AccessTokenKeys::from_secret(SECRET)?;
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..TOKENS)
            .map(|user| {
                keys.issue(&format!("usr_{user}"), Plan::Free, SystemTime::now())
                    .map(|issued| issued.token.expose_secret().to_owned())
            })
            .collect::<Result<_, _>>()?,
    );
    let cached = Arc::new(VerifiedTokens::new(keys.clone()));
    let plain = Arc::new(keys);
    println!("token check, {TOKENS} distinct tokens, ns per check (median of {ROUNDS} rounds)");
    println!(
        "{:>8} {:>12} {:>12} {:>8}",
        "threads", "full check", "cached", "ratio"
    );
    for threads in [1usize, 64] {
        let mut full_rounds = Vec::new();
        let mut cached_rounds = Vec::new();
        for _ in 0..ROUNDS {
            let plain = Arc::clone(&plain);
            full_rounds.push(per_check(threads, &tokens, move |token| {
                plain.verify(token).is_ok()
            }));
            let cached = Arc::clone(&cached);
            cached_rounds.push(per_check(threads, &tokens, move |token| {
                cached.verify(token).is_ok()
            }));
        }
        let full = median(full_rounds);
        let cache = median(cached_rounds);
        println!(
            "{threads:>8} {:>12.0} {:>12.0} {:>7.2}x",
            full,
            cache,
            full / cache
        );
    }
    Ok(())
}

/// Nanoseconds of wall time per check with `threads` threads checking at once.
fn per_check(
    threads: usize,
    tokens: &Arc<Vec<String>>,
    check: impl Fn(&str) -> bool + Send + Sync + Clone + 'static,
) -> f64 {
    let checks = CHECKS_PER_THREAD / threads.max(1) * threads;
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let (tokens, check) = (Arc::clone(tokens), check.clone());
            std::thread::spawn(move || {
                for index in 0..checks / threads {
                    let token = &tokens[(index * 7 + thread) % tokens.len()];
                    assert!(check(token), "a valid token was refused");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("bench thread");
    }
    elapsed_ns(started.elapsed()) / checks as f64
}

fn elapsed_ns(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e9
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
