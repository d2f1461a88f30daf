//! The database of the services that own tables (auth, lifecycle): SQLite, the embedded
//! default, or PostgreSQL in production, chosen by the URL's scheme. Every statement is
//! written once with `$n` placeholders, which both drivers accept, and run on whichever
//! pool is open through [`on_backend!`]. Each service's migrations are embedded, one
//! folder per backend, and recorded in a table of its own, so two services sharing one
//! database never mistake each other's migrations.

mod pool; // opening either backend and migrating it
#[cfg(feature = "test-support")]
pub mod testing; // a fresh database per test, on either backend

pub use pool::{Database, DatabaseError, Migrations, is_unique_violation};
