//! Instance backups (docs/product/backups.md): a gateway's state dir as an encrypted,
//! streaming archive with a manifest, kept in a local directory or an S3-compatible
//! object store. The lifecycle service decides when to take and restore them; this crate
//! knows only archives and stores.

pub mod archive; // tar + gzip + sealing of a state dir, both directions, streaming
pub mod crypt; // XChaCha20-Poly1305 STREAM segments: sealing and opening
pub mod key; // the platform key that seals every archive
pub mod manifest; // what a backup is, without opening it
#[cfg(feature = "test-support")]
pub mod moto; // a real S3 wire-format server (moto) on loopback, for tests
pub mod operations; // taking a backup of a state dir, checking and unpacking one
pub mod pipe; // bounded chunk channels between blocking archive code and async stores
pub mod store; // the local directory and S3-compatible stores
pub mod tally; // byte counts and SHA-256 of bytes passing through
pub mod version; // gateway versions compared, to refuse state from a newer gateway
