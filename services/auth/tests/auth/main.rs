//! The auth service over its real gRPC server and store, on SQLite and PostgreSQL. One
//! test binary, so the service, sqlx and both drivers are linked once.

// The macros in `support` (on_both_backends!) must be visible in the modules after it.
#[macro_use]
mod support;

mod email_accounts;
mod provider_accounts;
mod provider_tokens;
mod store;
mod subscriptions;
