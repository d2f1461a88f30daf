//! A client of OpenRouter's key-provisioning API (`/keys` with the management key;
//! docs/product/provider-keys.md#wire). Every call has a deadline; key values are held
//! as [`SecretString`] and never appear in errors or logs.

use std::time::Duration;

use bytes::Bytes;
use clawfleet_kit::secret::{ExposeSecret, SecretString};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest answer read from OpenRouter.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a call to OpenRouter failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("the model provider refused the platform's management key")]
    Unauthorized,
    #[error("the model provider is rate limiting the platform")]
    RateLimited { retry_after_seconds: Option<u32> },
    #[error("the model provider answered {0}")]
    Unavailable(StatusCode),
    #[error("the model provider did not answer in time")]
    Timeout,
    #[error("the model provider cannot be reached: {0}")]
    Connect(String),
    #[error("the model provider has no such key")]
    NotFound,
    #[error("the model provider's answer is not understood: {0}")]
    Protocol(String),
}

/// A key's figures as OpenRouter reports them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeyInfo {
    pub hash: String,
    #[serde(default)]
    pub name: String,
    /// Credit limit in USD; `None` is unlimited.
    pub limit: Option<f64>,
    #[serde(default)]
    pub disabled: bool,
    /// Spend in USD so far.
    #[serde(default)]
    pub usage: f64,
}

/// A key just made: its figures and its value (shown once by OpenRouter).
#[derive(Debug)]
pub struct CreatedKey {
    pub info: KeyInfo,
    pub key: SecretString,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The key-provisioning API at one base URL with one management key.
#[derive(Clone)]
pub struct OpenRouterClient {
    base_url: String,
    management_key: SecretString,
    timeout: Duration,
    http: HttpClient,
}

impl std::fmt::Debug for OpenRouterClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OpenRouterClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl OpenRouterClient {
    pub fn new(
        base_url: &str,
        management_key: SecretString,
        timeout: Duration,
    ) -> Result<Self, rustls::Error> {
        let connector = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            management_key,
            timeout,
            http: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// `POST /keys`: a new key named `name` with a credit limit of `limit_usd`.
    pub async fn create(&self, name: &str, limit_usd: f64) -> Result<CreatedKey, ProviderError> {
        #[derive(Deserialize)]
        struct Created {
            data: KeyInfo,
            key: String,
        }
        let body = json!({"name": name, "limit": limit_usd});
        let created: Created = self.call(Method::POST, "/keys", Some(body)).await?;
        Ok(CreatedKey {
            info: created.data,
            key: SecretString::from(created.key),
        })
    }

    /// `GET /keys/{hash}`.
    pub async fn get(&self, hash: &str) -> Result<KeyInfo, ProviderError> {
        Ok(self
            .call::<Data>(Method::GET, &key_path(hash)?, None)
            .await?
            .data)
    }

    /// `GET /keys`: one page (OpenRouter's page size) from `offset`, disabled keys too.
    pub async fn list(&self, offset: usize) -> Result<Vec<KeyInfo>, ProviderError> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<KeyInfo>,
        }
        let path = format!("/keys?offset={offset}&include_disabled=true");
        Ok(self.call::<Page>(Method::GET, &path, None).await?.data)
    }

    /// `PATCH /keys/{hash}` with the limit and whether it is disabled.
    pub async fn update(
        &self,
        hash: &str,
        limit_usd: f64,
        disabled: bool,
    ) -> Result<KeyInfo, ProviderError> {
        let body = json!({"limit": limit_usd, "disabled": disabled});
        Ok(self
            .call::<Data>(Method::PATCH, &key_path(hash)?, Some(body))
            .await?
            .data)
    }

    /// `DELETE /keys/{hash}`; a key already gone counts as deleted.
    pub async fn delete(&self, hash: &str) -> Result<(), ProviderError> {
        match self
            .call::<Value>(Method::DELETE, &key_path(hash)?, None)
            .await
        {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ProviderError> {
        let payload = body.map(|body| body.to_string()).unwrap_or_default();
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.management_key.expose_secret()),
            )
            .header(header::ACCEPT, "application/json");
        if !payload.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(payload)))
            .map_err(|error| ProviderError::Protocol(error.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|error| ProviderError::Connect(error.to_string()))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u32>().ok());
            let bytes = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|error| ProviderError::Connect(error.to_string()))?
                .to_bytes();
            Ok::<_, ProviderError>((status, retry_after, bytes))
        };
        let (status, retry_after, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProviderError::Timeout)??;
        match status {
            status if status.is_success() => serde_json::from_slice(&bytes)
                .map_err(|error| ProviderError::Protocol(error.to_string())),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ProviderError::Unauthorized),
            StatusCode::TOO_MANY_REQUESTS => Err(ProviderError::RateLimited {
                retry_after_seconds: retry_after,
            }),
            StatusCode::NOT_FOUND => Err(ProviderError::NotFound),
            status => Err(ProviderError::Unavailable(status)),
        }
    }
}

#[derive(Deserialize)]
struct Data {
    data: KeyInfo,
}

/// `/keys/{hash}`, refusing hashes that could change the path.
fn key_path(hash: &str) -> Result<String, ProviderError> {
    if hash.is_empty()
        || !hash
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err(ProviderError::Protocol("invalid key hash".to_owned()));
    }
    Ok(format!("/keys/{hash}"))
}
