//! The platform key that seals every backup (docs/product/backups.md#platform-key): 32
//! random bytes, hex in a 0600 file in the data dir (created on first use) or in a file
//! the deployment mounts (a Kubernetes Secret). Losing it makes every backup unreadable,
//! so the docs say to back it up apart from the store.

use std::path::Path;

use chacha20poly1305::aead::{OsRng, rand_core::RngCore};
use clawfleet_kit::{
    private_file::read_or_create_secret,
    secret::{ExposeSecret, SecretString},
};
use sha2::{Digest, Sha256};

/// Bytes of key material.
const KEY_BYTES: usize = 32;

/// Why the platform key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the backup key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("backup key file {path} does not hold 64 hex digits")]
    Malformed { path: String },
}

/// The key that seals backup archives. Its bytes are never logged; [`PlatformKey::fingerprint`]
/// names it in manifests so a backup sealed with another key is refused with a clear message.
pub struct PlatformKey {
    bytes: [u8; KEY_BYTES],
}

impl std::fmt::Debug for PlatformKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PlatformKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl PlatformKey {
    /// Reads the key at `path`, creating it (0600, random) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let (stored, _created) =
            read_or_create_secret(path, random_hex_key).map_err(|source| KeyError::Io {
                path: shown.clone(),
                source,
            })?;
        Self::from_hex(&SecretString::from(stored)).ok_or(KeyError::Malformed { path: shown })
    }

    /// A key from 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &SecretString) -> Option<Self> {
        let decoded = hex::decode(text.expose_secret().trim()).ok()?;
        let bytes: [u8; KEY_BYTES] = decoded.try_into().ok()?;
        Some(Self { bytes })
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }

    /// A short public name of the key: the first 8 bytes of SHA-256 over a label and
    /// the key, in hex. It reveals nothing usable about the key.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"clawfleet backup key fingerprint\0");
        hasher.update(self.bytes);
        hex::encode(&hasher.finalize()[..8])
    }
}

fn random_hex_key() -> String {
    let mut bytes = [0u8; KEY_BYTES];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Drop for PlatformKey {
    fn drop(&mut self) {
        self.bytes = [0; KEY_BYTES];
    }
}
