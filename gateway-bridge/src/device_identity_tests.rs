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
