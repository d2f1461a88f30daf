//! The client of RevenueCat's subscriber API: `GET {base}/v1/subscribers/{app_user_id}`
//! with `Authorization: Bearer <secret key>`, answering
//! `{"request_date_ms", "subscriber": {"entitlements": {"<id>": {"expires_date",
//! "grace_period_expires_date", "product_identifier", "purchase_date"}}, ...}}`
//! (docs/product/subscriptions.md#reading-entitlements). Failures are typed so the
//! caller can say whether a retry may help; the key never appears in them.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use clawfleet_kit::secret::{ExposeSecret, SecretString};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::entitlements::Entitlement;
use crate::providers::jwks::HttpClient;

/// Largest subscriber document accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Said when RevenueCat asks for a pause without saying how long.
const DEFAULT_RETRY_AFTER_SECONDS: u32 = 30;

/// Why a subscriber could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevenueCatError {
    /// The secret key was refused: the platform's configuration, not the user's fault.
    #[error("revenuecat refused the platform's secret key (status {0})")]
    Unauthorized(u16),
    #[error("revenuecat is rate limiting the platform")]
    RateLimited { retry_after_seconds: u32 },
    #[error("revenuecat answered status {0}")]
    Unavailable(u16),
    #[error("revenuecat did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach revenuecat: {0}")]
    Connect(String),
    #[error("revenuecat sent an unreadable subscriber: {0}")]
    Malformed(String),
}

/// What one read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRead {
    pub entitlements: Vec<Entitlement>,
    /// RevenueCat's own time of the answer (ours when absent).
    pub request_date_ms: i64,
}

#[derive(Deserialize)]
struct Document {
    request_date_ms: Option<i64>,
    subscriber: Subscriber,
}

#[derive(Deserialize)]
struct Subscriber {
    #[serde(default)]
    entitlements: HashMap<String, EntitlementJson>,
}

#[derive(Deserialize)]
struct EntitlementJson {
    expires_date: Option<String>,
    grace_period_expires_date: Option<String>,
}

/// Reads subscribers from one RevenueCat API root with one secret key.
#[derive(Debug, Clone)]
pub struct RevenueCatClient {
    http: HttpClient,
    base_url: String,
    secret_key: SecretString,
    timeout: Duration,
}

impl RevenueCatClient {
    pub fn new(
        http: HttpClient,
        base_url: &str,
        secret_key: SecretString,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret_key,
            timeout,
        }
    }

    /// The subscriber's entitlements (RevenueCat creates unknown subscribers, so an id
    /// it never saw has none).
    pub async fn subscriber(
        &self,
        app_user_id: &str,
        now_ms: i64,
    ) -> Result<SubscriberRead, RevenueCatError> {
        let body = tokio::time::timeout(self.timeout, self.fetch(app_user_id))
            .await
            .map_err(|_| RevenueCatError::Timeout(self.timeout))??;
        parse_subscriber(&body, now_ms)
    }

    async fn fetch(&self, app_user_id: &str) -> Result<Bytes, RevenueCatError> {
        let uri = format!(
            "{}/v1/subscribers/{}",
            self.base_url,
            utf8_percent_encode(app_user_id, NON_ALPHANUMERIC)
        );
        let request = Request::get(uri)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.secret_key.expose_secret()),
            )
            .header(header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|error| RevenueCatError::Connect(error.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|error| RevenueCatError::Connect(error.to_string()))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RevenueCatError::Unauthorized(status.as_u16()));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after_seconds = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u32>().ok())
                .unwrap_or(DEFAULT_RETRY_AFTER_SECONDS);
            return Err(RevenueCatError::RateLimited {
                retry_after_seconds,
            });
        }
        if !status.is_success() {
            return Err(RevenueCatError::Unavailable(status.as_u16()));
        }
        Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .map_err(|error| RevenueCatError::Connect(error.to_string()))
    }
}

/// Reads a subscriber document.
pub fn parse_subscriber(body: &[u8], now_ms: i64) -> Result<SubscriberRead, RevenueCatError> {
    let document: Document = serde_json::from_slice(body)
        .map_err(|error| RevenueCatError::Malformed(error.to_string()))?;
    let mut entitlements = Vec::with_capacity(document.subscriber.entitlements.len());
    for (id, entitlement) in document.subscriber.entitlements {
        entitlements.push(Entitlement {
            expires_at_ms: date_ms(&id, entitlement.expires_date.as_deref())?,
            grace_until_ms: date_ms(&id, entitlement.grace_period_expires_date.as_deref())?,
            id,
        });
    }
    entitlements.sort_by(|left, right| left.id.cmp(&right.id));
    Ok(SubscriberRead {
        entitlements,
        request_date_ms: document.request_date_ms.unwrap_or(now_ms),
    })
}

fn date_ms(entitlement: &str, date: Option<&str>) -> Result<Option<i64>, RevenueCatError> {
    let Some(date) = date else {
        return Ok(None);
    };
    let parsed = OffsetDateTime::parse(date, &Rfc3339).map_err(|_| {
        RevenueCatError::Malformed(format!("entitlement {entitlement:?} has a bad date"))
    })?;
    Ok(Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_subscriber_shape() {
        let body = br#"{
            "request_date": "2019-07-26T17:40:10Z",
            "request_date_ms": 1564162810884,
            "subscriber": {
                "entitlements": {
                    "pro": {"expires_date": "2019-08-14T21:07:40Z", "grace_period_expires_date": null,
                            "product_identifier": "monthly", "purchase_date": "2019-07-14T21:07:40Z"},
                    "lifetime": {"expires_date": null, "grace_period_expires_date": null,
                                 "product_identifier": "onetime", "purchase_date": "2019-04-05T21:52:45Z"}
                },
                "first_seen": "2019-02-21T00:08:41Z",
                "original_app_user_id": "usr_1",
                "subscriptions": {}, "non_subscriptions": {}, "other_purchases": {}
            }
        }"#;
        let read = parse_subscriber(body, 0).unwrap();
        assert_eq!(read.request_date_ms, 1_564_162_810_884);
        assert_eq!(read.entitlements.len(), 2);
        assert_eq!(read.entitlements[0].id, "lifetime");
        assert_eq!(read.entitlements[0].expires_at_ms, None);
        assert_eq!(read.entitlements[1].expires_at_ms, Some(1_565_816_860_000));
    }

    #[test]
    fn unreadable_documents_are_malformed_not_empty() {
        assert!(matches!(
            parse_subscriber(b"{}", 0),
            Err(RevenueCatError::Malformed(_))
        ));
        let bad_date = br#"{"subscriber":{"entitlements":{"pro":{"expires_date":"soon"}}}}"#;
        assert!(matches!(
            parse_subscriber(bad_date, 0),
            Err(RevenueCatError::Malformed(_))
        ));
    }
}
