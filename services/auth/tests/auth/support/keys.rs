//! RSA keys that sign test ID tokens. They are committed test fixtures (generated with
//! `openssl genrsa -traditional 2048`), used nowhere but these tests; generating 2048-bit
//! keys at test time is slow in debug builds.

use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};

/// A private key that can sign tokens and publish its public half.
pub struct TestKey {
    encoding: EncodingKey,
}

impl TestKey {
    fn from_pem(pem: &str) -> Self {
        Self {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key pem"),
        }
    }

    /// The key the stand-in providers publish.
    pub fn signing() -> Self {
        Self::from_pem(include_str!("keys/test_signing_key.pem"))
    }

    /// A second key: unpublished (forged signatures) or published later (rotation).
    pub fn other() -> Self {
        Self::from_pem(include_str!("keys/test_other_key.pem"))
    }

    /// The public JWK of this key under `kid`, as a provider publishes it.
    pub fn public_jwk(&self, kid: &str) -> serde_json::Value {
        let jwk = Jwk::from_encoding_key(&self.encoding, Algorithm::RS256).expect("public jwk");
        let mut value = serde_json::to_value(jwk).expect("jwk json");
        value["kid"] = kid.into();
        value["use"] = "sig".into();
        value
    }

    /// An RS256 token over `claims` with `kid` in its header.
    pub fn sign(&self, kid: &str, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign test token")
    }
}
