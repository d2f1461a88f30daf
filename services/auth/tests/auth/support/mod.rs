//! Shared by the integration tests: databases on both backends, the real gRPC server on
//! loopback, test signing keys and a JWKS stand-in.
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod jwks_server;
pub mod keys;
pub mod providers;
pub mod server;

use std::{future::Future, time::Duration};

pub use clawfleet_database::testing as database;
pub use clawfleet_database::testing::Backend;

/// Upper bound on any one test, so a hang fails instead of stalling CI.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `test` with [`TEST_TIMEOUT`].
pub async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test did not finish within its time bound");
}

/// Declares, for each `async fn name(backend: Backend)`, the tests `name::sqlite` and
/// `name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::support::bounded(super::$name($crate::support::Backend::Sqlite)).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::support::bounded(super::$name($crate::support::Backend::Postgres)).await;
                }
            }
        )*
    };
}
