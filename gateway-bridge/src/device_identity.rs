//! The bridge's Ed25519 device identity, and the signed `device` object of `connect`.
//!
//! A gateway keeps the scopes of a non-loopback client only when it presents a device the
//! gateway has paired (docs/reference/openclaw-gateway.md#pairing-required), so the bridge signs every `connect` with one stable key.
//! The wire rules (docs/reference/openclaw-gateway.md#device-signature): `device.id` is the lowercase hex SHA-256 of the raw 32-byte
//! public key, `publicKey` is that raw key in base64url without padding, and the signature is
//! Ed25519 over the UTF-8 v3 payload, also base64url without padding.

use std::{fs, io, os::unix::fs::PermissionsExt, path::Path};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use clawfleet_kit::{
    private_file::{create_private, create_private_dir},
    secret::Redacted,
};
use ed25519_dalek::{Signer, SigningKey};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The only version of the identity file this code writes and reads.
const IDENTITY_FILE_VERSION: u32 = 1;

/// The bridge's device keypair with its derived, wire-ready id and public key.
#[derive(Debug)]
pub struct DeviceIdentity {
    private_key: Redacted<SigningKey>,
    device_id: String,
    public_key: String,
}

/// What a `connect` signature covers besides the device itself (the v3 payload fields).
#[derive(Clone, Copy)]
pub struct DeviceAuthClaims<'a> {
    /// `client.id` of the connect params.
    pub client_id: &'a str,
    /// `client.mode` of the connect params.
    pub client_mode: &'a str,
    /// The requested role.
    pub role: &'a str,
    /// The requested scopes, in the order they are sent.
    pub scopes: &'a [&'a str],
    /// The `ts` of the `connect.challenge` event (milliseconds since the epoch).
    pub signed_at_ms: u64,
    /// `auth.token`, else `auth.deviceToken`, else empty.
    pub token: &'a str,
    /// The nonce of the `connect.challenge` event.
    pub nonce: &'a str,
    /// `client.platform` (lowercased in the payload).
    pub platform: &'a str,
    /// `client.deviceFamily` (lowercased in the payload), empty when not sent.
    pub device_family: &'a str,
}

/// The `device` object of the `connect` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedDevice {
    /// Hex SHA-256 of the raw public key.
    pub id: String,
    /// The raw public key, base64url without padding.
    pub public_key: String,
    /// Ed25519 signature over the v3 payload, base64url without padding.
    pub signature: String,
    /// The challenge `ts` that was signed.
    pub signed_at: u64,
    /// The challenge nonce that was signed.
    pub nonce: String,
}

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    version: u32,
    seed: String,
}

impl DeviceIdentity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut OsRng))
    }

    /// The identity whose secret key is this 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    fn from_signing_key(signing_key: SigningKey) -> Self {
        let raw_public_key = signing_key.verifying_key().to_bytes();
        let device_id = hex::encode(Sha256::digest(raw_public_key));
        let public_key = URL_SAFE_NO_PAD.encode(raw_public_key);
        Self {
            private_key: Redacted(signing_key),
            device_id,
            public_key,
        }
    }

    /// Reads the identity stored at `path`, or creates one there (with its parent directory)
    /// when the file does not exist. The file is `{"version":1,"seed":"<base64url seed>"}` with
    /// mode 600. This does blocking file I/O: call it from `spawn_blocking` in async code.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match fs::read(path) {
            Ok(contents) => return Self::parse_file(path, &contents),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let identity = Self::generate();
        match identity.write_new_file(path) {
            Ok(()) => Ok(identity),
            // Another process created it between our read and our link: theirs wins.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                Self::parse_file(path, &fs::read(path)?)
            }
            Err(error) => Err(error),
        }
    }

    fn parse_file(path: &Path, contents: &[u8]) -> io::Result<Self> {
        let invalid = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("invalid device identity file {}: {why}", path.display()),
            )
        };
        let file: IdentityFile =
            serde_json::from_slice(contents).map_err(|error| invalid(error.to_string()))?;
        if file.version != IDENTITY_FILE_VERSION {
            return Err(invalid(format!("unsupported version {}", file.version)));
        }
        let seed_bytes = URL_SAFE_NO_PAD
            .decode(file.seed.trim_end_matches('='))
            .map_err(|error| invalid(format!("seed is not base64url: {error}")))?;
        let seed: [u8; 32] = seed_bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format!("seed has {} bytes, not 32", seed_bytes.len())))?;
        if let Ok(metadata) = fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", metadata.permissions().mode() & 0o777),
                "device identity file is readable by group or others"
            );
        }
        Ok(Self::from_seed(&seed))
    }

    /// Writes the file whole and owner-only, never over an existing one (a concurrent
    /// creator wins with `AlreadyExists`); a missing folder is created owner-only.
    fn write_new_file(&self, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            create_private_dir(parent)?;
        }
        let contents = serde_json::to_vec(&IdentityFile {
            version: IDENTITY_FILE_VERSION,
            seed: URL_SAFE_NO_PAD.encode(self.private_key.to_bytes()),
        })
        .map_err(io::Error::other)?;
        create_private(path, &contents)
    }

    /// Lowercase hex SHA-256 of the raw public key: the gateway's `device.id`.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The raw 32-byte public key, base64url without padding.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Signs the v3 payload for these claims and returns the `device` object of `connect`.
    pub fn sign_connect(&self, claims: &DeviceAuthClaims<'_>) -> SignedDevice {
        let payload = device_auth_payload_v3(&self.device_id, claims);
        let signature = self.private_key.sign(payload.as_bytes());
        SignedDevice {
            id: self.device_id.clone(),
            public_key: self.public_key.clone(),
            signature: URL_SAFE_NO_PAD.encode(signature.to_bytes()),
            signed_at: claims.signed_at_ms,
            nonce: claims.nonce.to_owned(),
        }
    }
}

/// `v3|deviceId|clientId|clientMode|role|scopes|signedAtMs|token|nonce|platform|deviceFamily`.
pub fn device_auth_payload_v3(device_id: &str, claims: &DeviceAuthClaims<'_>) -> String {
    [
        "v3",
        device_id,
        claims.client_id,
        claims.client_mode,
        claims.role,
        &claims.scopes.join(","),
        &claims.signed_at_ms.to_string(),
        claims.token,
        claims.nonce,
        &claims.platform.trim().to_lowercase(),
        &claims.device_family.trim().to_lowercase(),
    ]
    .join("|")
}

#[cfg(test)]
#[path = "device_identity_tests.rs"]
mod tests;
