//! The bridge's Ed25519 device identity, and the signed `device` object of `connect`.
//!
//! A gateway keeps the scopes of a non-loopback client only when it presents a device the
//! gateway has paired (docs/reference/openclaw-gateway.md#pairing-required), so the bridge signs every `connect` with one stable key.
//! The wire rules (docs/reference/openclaw-gateway.md#device-signature): `device.id` is the lowercase hex SHA-256 of the raw 32-byte
//! public key, `publicKey` is that raw key in base64url without padding, and the signature is
//! Ed25519 over the UTF-8 v3 payload, also base64url without padding.

use std::{
    fmt, fs,
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer, SigningKey};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The only version of the identity file this code writes and reads.
const IDENTITY_FILE_VERSION: u32 = 1;

/// The bridge's device keypair with its derived, wire-ready id and public key.
pub struct DeviceIdentity {
    signing_key: SigningKey,
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
        let device_id = hex_lower(&Sha256::digest(raw_public_key));
        let public_key = URL_SAFE_NO_PAD.encode(raw_public_key);
        Self {
            signing_key,
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

    /// Writes the file under a temporary name, then hard-links it into place so that a
    /// concurrent creator can never observe (or overwrite) a half-written identity.
    fn write_new_file(&self, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            fs::create_dir_all(parent)?;
        }
        let contents = serde_json::to_vec(&IdentityFile {
            version: IDENTITY_FILE_VERSION,
            seed: URL_SAFE_NO_PAD.encode(self.signing_key.to_bytes()),
        })
        .map_err(io::Error::other)?;
        let temporary = temporary_sibling(path);
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&contents)?;
            file.sync_all()?;
            fs::hard_link(&temporary, path)
        })();
        let _ = fs::remove_file(&temporary);
        written
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
        let signature = self.signing_key.sign(payload.as_bytes());
        SignedDevice {
            id: self.device_id.clone(),
            public_key: self.public_key.clone(),
            signature: URL_SAFE_NO_PAD.encode(signature.to_bytes()),
            signed_at: claims.signed_at_ms,
            nonce: claims.nonce.to_owned(),
        }
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
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

fn temporary_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(DIGITS[usize::from(byte >> 4)] as char);
        hex.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    hex
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier};

    use super::*;

    const SEED: [u8; 32] = [7; 32];

    fn claims<'a>(scopes: &'a [&'a str], token: &'a str) -> DeviceAuthClaims<'a> {
        DeviceAuthClaims {
            client_id: "gateway-client",
            client_mode: "backend",
            role: "operator",
            scopes,
            signed_at_ms: 1_795_247_514_358,
            token,
            nonce: "4f72e36d-nonce",
            platform: "Linux",
            device_family: "",
        }
    }

    #[test]
    fn device_id_is_hex_sha256_of_the_raw_public_key() {
        let identity = DeviceIdentity::from_seed(&SEED);
        let raw = SigningKey::from_bytes(&SEED).verifying_key().to_bytes();
        let expected: String = Sha256::digest(raw)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(identity.device_id(), expected);
        assert_eq!(identity.device_id().len(), 64);
        assert_eq!(URL_SAFE_NO_PAD.decode(identity.public_key()).unwrap(), raw);
        assert!(!identity.public_key().contains('='));
    }

    #[test]
    fn v3_payload_joins_the_fields_in_protocol_order() {
        let payload = device_auth_payload_v3(
            "abc123",
            &claims(&["operator.admin", "operator.read"], "tok"),
        );
        assert_eq!(
            payload,
            "v3|abc123|gateway-client|backend|operator|operator.admin,operator.read|\
             1795247514358|tok|4f72e36d-nonce|linux|"
        );
    }

    #[test]
    fn v3_payload_keeps_empty_token_and_lowercases_the_device_family() {
        let mut claims = claims(&[], "");
        claims.device_family = " Server ";
        let payload = device_auth_payload_v3("id", &claims);
        assert_eq!(
            payload,
            "v3|id|gateway-client|backend|operator||1795247514358||4f72e36d-nonce|linux|server"
        );
    }

    #[test]
    fn signature_verifies_over_the_v3_payload() {
        let identity = DeviceIdentity::from_seed(&SEED);
        let claims = claims(&["operator.read"], "secret-token");
        let device = identity.sign_connect(&claims);
        assert_eq!(device.id, identity.device_id());
        assert_eq!(device.signed_at, 1_795_247_514_358);
        assert_eq!(device.nonce, "4f72e36d-nonce");
        let signature_bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(&device.signature)
            .unwrap()
            .try_into()
            .unwrap();
        let payload = device_auth_payload_v3(identity.device_id(), &claims);
        SigningKey::from_bytes(&SEED)
            .verifying_key()
            .verify(payload.as_bytes(), &Signature::from_bytes(&signature_bytes))
            .unwrap();
        let wire = serde_json::to_value(&device).unwrap();
        for key in ["id", "publicKey", "signature", "signedAt", "nonce"] {
            assert!(wire.get(key).is_some(), "missing {key} in {wire}");
        }
    }

    #[test]
    fn load_or_create_writes_a_private_file_and_reads_it_back() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested/dir/device.json");
        let created = DeviceIdentity::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let file: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(file["version"], 1);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(file["seed"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        let loaded = DeviceIdentity::load_or_create(&path).unwrap();
        assert_eq!(created.device_id(), loaded.device_id());
        assert_eq!(created.public_key(), loaded.public_key());
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary file left behind");
    }

    #[test]
    fn load_rejects_a_malformed_seed() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("device.json");
        fs::write(&path, r#"{"version":1,"seed":"c2hvcnQ"}"#).unwrap();
        let error = DeviceIdentity::load_or_create(&path).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("not 32"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_seed() {
        let identity = DeviceIdentity::from_seed(&SEED);
        let printed = format!("{identity:?}");
        assert!(printed.contains(identity.device_id()));
        assert!(!printed.contains(&URL_SAFE_NO_PAD.encode(SEED)));
        assert!(!printed.contains("signing_key"));
    }
}
