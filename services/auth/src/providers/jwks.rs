//! A provider's signing keys (JWKS), fetched over HTTP(S) and cached by `kid`.
//!
//! Providers rotate keys by publishing the new one before signing with it, so an
//! unknown `kid` triggers a refetch, but at most once per [`MIN_REFETCH_INTERVAL`]: a
//! stream of tokens with made-up `kid`s must not turn into a stream of requests to the
//! provider (the interval is configurable so tests need not wait). Keys are also refreshed when older than [`MAX_KEY_AGE`], so a key the
//! provider withdrew stops being trusted.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use jsonwebtoken::{DecodingKey, jwk::Jwk};
use tokio::sync::Mutex;

/// Default shortest time between two fetches caused by unknown `kid`s.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Cached keys older than this are refetched before use.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(6 * 60 * 60);
/// Upper bound on one JWKS fetch, connect to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The HTTP(S) client shared by the JWKS caches (ring + webpki roots; plain http is
/// allowed for loopback stand-ins in tests and air-gapped mirrors).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Builds the client that fetches JWKS documents.
pub fn http_client() -> Result<HttpClient, rustls::Error> {
    let connector = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Why a key could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("no signing key with this kid")]
    UnknownKey,
    #[error("cannot fetch signing keys: {0}")]
    Fetch(String),
}

#[derive(Debug, Default)]
struct CachedKeys {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// Last successful fetch.
    fetched_at: Option<Instant>,
    /// Last fetch attempt, successful or not: the rate limit counts from here, so an
    /// unreachable provider is not retried by every request.
    attempted_at: Option<Instant>,
}

/// The keys of one JWKS URL (public keys: nothing here is secret).
#[derive(Debug)]
pub struct JwksCache {
    url: http::Uri,
    client: HttpClient,
    min_refetch_interval: Duration,
    cached: Mutex<CachedKeys>,
    fetch_count: std::sync::atomic::AtomicU64,
}

impl JwksCache {
    /// A cache that refetches for unknown `kid`s at most once per `min_refetch_interval`.
    pub fn new(url: http::Uri, client: HttpClient, min_refetch_interval: Duration) -> Self {
        Self {
            url,
            client,
            min_refetch_interval,
            cached: Mutex::new(CachedKeys::default()),
            fetch_count: Default::default(),
        }
    }

    /// How many fetches were attempted (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetch_count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key named `kid`, fetching the JWKS when it is unknown or stale. The lock is
    /// held across the fetch so concurrent sign-ins wait for one fetch instead of
    /// each starting their own.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwksError> {
        let mut cached = self.cached.lock().await;
        let stale = cached
            .fetched_at
            .is_none_or(|fetched_at| fetched_at.elapsed() >= MAX_KEY_AGE);
        let may_fetch = cached
            .attempted_at
            .is_none_or(|attempted_at| attempted_at.elapsed() >= self.min_refetch_interval);
        let known = cached.keys.contains_key(kid);
        if may_fetch && (stale || !known) {
            cached.attempted_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    cached.keys = keys;
                    cached.fetched_at = Some(Instant::now());
                }
                // A stale set still serves the keys it has.
                Err(error) => tracing::warn!(url = %self.url, %error, "jwks fetch failed"),
            }
        }
        if cached.keys.is_empty() {
            return Err(JwksError::Fetch("no signing keys available".to_owned()));
        }
        cached.keys.get(kid).cloned().ok_or(JwksError::UnknownKey)
    }

    #[tracing::instrument(name = "jwks.fetch", skip_all, fields(otel.name = "jwks fetch"))]
    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, JwksError> {
        self.fetch_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.fetch_body())
            .await
            .map_err(|_| JwksError::Fetch("timed out".to_owned()))??;
        parse_jwks(&body)
    }

    async fn fetch_body(&self) -> Result<Bytes, JwksError> {
        let response = self
            .client
            .get(self.url.clone())
            .await
            .map_err(|error| JwksError::Fetch(error.to_string()))?;
        if !response.status().is_success() {
            return Err(JwksError::Fetch(format!("status {}", response.status())));
        }
        Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .map_err(|error| JwksError::Fetch(error.to_string()))
    }
}

/// The usable RSA signature keys of a JWKS document, by `kid`. Keys of other types or
/// uses, or without a `kid`, are skipped rather than failing the whole set.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, JwksError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(body)
        .map_err(|error| JwksError::Fetch(format!("invalid jwks: {error}")))?;
    let mut keys = HashMap::new();
    for value in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let is_rsa = matches!(
            jwk.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
        );
        let for_signing = jwk
            .common
            .public_key_use
            .as_ref()
            .is_none_or(|key_use| *key_use == jsonwebtoken::jwk::PublicKeyUse::Signature);
        let (Some(kid), true, true) = (jwk.common.key_id.clone(), is_rsa, for_signing) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Arc::new(key));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsa_signature_keys_with_a_kid_are_kept() {
        let body = br#"{"keys":[
            {"kty":"RSA","kid":"good","use":"sig","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
            {"kty":"RSA","use":"sig","n":"sXch","e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"sXch","e":"AQAB"},
            {"kty":"EC","kid":"ec","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"weird","kid":"weird"}
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["good"]);
    }

    #[tokio::test]
    async fn a_provider_that_never_answers_times_out_and_is_not_retried_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        // Accepts connections and never answers.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let cache = JwksCache::new(
            url.parse().unwrap(),
            http_client().unwrap(),
            MIN_REFETCH_INTERVAL,
        );
        let started = Instant::now();
        let error = cache.key("any").await.unwrap_err();
        let waited = started.elapsed();
        assert!(matches!(error, JwksError::Fetch(_)), "{error:?}");
        assert!(
            waited >= FETCH_TIMEOUT && waited < FETCH_TIMEOUT * 2,
            "{waited:?}"
        );
        let again = Instant::now();
        assert!(cache.key("any").await.is_err());
        assert!(
            again.elapsed() < Duration::from_secs(1),
            "the failed fetch is rate limited"
        );
        assert_eq!(cache.fetch_count(), 1);
        silent.abort();
    }

    #[test]
    fn a_document_that_is_not_a_jwks_is_an_error() {
        assert!(parse_jwks(b"<html>").is_err());
        assert!(parse_jwks(br#"{"no":"keys"}"#).is_err());
    }
}
