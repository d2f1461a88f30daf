//! What is known of a backup without opening it (docs/product/backups.md#manifest): the
//! manifest is written next to the archive, after it, so a backup is listed only once its
//! archive is complete.

use serde::{Deserialize, Serialize};

/// The archive format this build writes and reads.
pub const FORMAT: u32 = 1;

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupReason {
    /// Asked for by the app or an operator.
    Manual,
    /// Taken by the plan's schedule.
    Scheduled,
    /// Taken before the instance's data was purged.
    BeforePurge,
    /// Taken before the instance's gateway was upgraded.
    BeforeUpgrade,
}

/// One backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Unique per instance, sorts by time (`20261207T231500Z-1a2b3c`).
    pub backup_id: String,
    pub instance_id: String,
    /// The gateway version that wrote the state (the openclaw package version).
    pub gateway_version: String,
    pub reason: BackupReason,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Bytes of the sealed archive as stored.
    pub archive_bytes: u64,
    /// Bytes of the state as an uncompressed tar stream.
    pub state_bytes: u64,
    /// Hex SHA-256 of the sealed archive as stored.
    pub archive_sha256: String,
    /// [`crate::key::PlatformKey::fingerprint`] of the key that sealed it.
    pub key_fingerprint: String,
}
