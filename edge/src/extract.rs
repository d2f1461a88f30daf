//! Request extractors whose rejections are the edge's JSON errors instead of axum's
//! plain-text ones.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::{HeaderMap, header, request::Parts},
};
use clawfleet_kit::error::{ErrorCode, ServiceError};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body. Wrong content type → 415, body over the limit → 413, syntax
/// errors → 400 `invalid json: ...`, wrong shapes → 400 naming the field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body_bytes(request, state).await?;
        json_object(&bytes).map(ApiJson)
    }
}

/// The body of a request that says it is JSON: wrong content type → 415, over the
/// limit → 413.
async fn json_body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    if !has_json_content_type(request.headers()) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected content-type application/json",
        ));
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "request body exceeds the size limit",
                )
            } else {
                ApiError::invalid_argument("cannot read the request body")
            }
        })
}

/// Reads a JSON object into `T`.
fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body the edge takes is an object; serde would also read a struct from
    // an array of its fields, which no client means.
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|byte| *byte != b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(json_error)?;
        return Err(ApiError::invalid_argument(
            "invalid request body: expected a json object",
        ));
    }
    serde_json::from_slice(bytes).map_err(json_error)
}

/// A JSON body that may be left out: an empty body, or the JSON `null` the document
/// allows in its place, is `T::default()`; otherwise as [`ApiJson`].
#[derive(Debug)]
pub struct OptionalApiJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalApiJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declares_body = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|length| length != "0")
            && (request.headers().contains_key(header::CONTENT_LENGTH)
                || request.headers().contains_key(header::TRANSFER_ENCODING));
        if !declares_body {
            return Ok(OptionalApiJson(T::default()));
        }
        let bytes = json_body_bytes(request, state).await?;
        if bytes.trim_ascii() == b"null" {
            return Ok(OptionalApiJson(T::default()));
        }
        json_object(&bytes).map(OptionalApiJson)
    }
}

/// Reads an optional integer field the way JSON Schema counts integers: `730` and
/// `730.0` are both the integer 730 (serde's own integers refuse the second), while
/// `730.5`, negatives and values out of range are refused. Use with
/// `#[serde(default, deserialize_with = "optional_integer")]` on an `Option<u32>` or
/// `Option<u64>`.
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::{Error, Unexpected, Visitor};

    struct Integral<T>(std::marker::PhantomData<T>);

    impl<T: TryFrom<u64>> Integral<T> {
        fn fit<E: Error>(value: u64, unexpected: Unexpected<'_>) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::invalid_value(unexpected, &"a smaller integer"))
        }
    }

    impl<'de, T: TryFrom<u64>> Visitor<'de> for Integral<T> {
        type Value = Option<T>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a non-negative integer")
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }

        fn visit_u64<E: Error>(self, value: u64) -> Result<Self::Value, E> {
            Self::fit(value, Unexpected::Unsigned(value)).map(Some)
        }

        fn visit_i64<E: Error>(self, value: i64) -> Result<Self::Value, E> {
            let unsigned = u64::try_from(value)
                .map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))?;
            Self::fit(unsigned, Unexpected::Signed(value)).map(Some)
        }

        fn visit_f64<E: Error>(self, value: f64) -> Result<Self::Value, E> {
            // 2^64 is the first float past u64::MAX; below it an integral float converts exactly.
            const TWO_TO_THE_64: f64 = 18_446_744_073_709_551_616.0;
            if value.fract() != 0.0 || !(0.0..TWO_TO_THE_64).contains(&value) {
                return Err(E::invalid_value(Unexpected::Float(value), &self));
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let integer = value as u64;
            Self::fit(integer, Unexpected::Float(value)).map(Some)
        }
    }

    deserializer.deserialize_option(Integral(std::marker::PhantomData))
}

fn json_error(error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof => {
            ApiError::invalid_argument(format!("invalid json: {error}"))
        }
        Category::Data => ApiError::invalid_argument(format!("invalid request body: {error}")),
        Category::Io => ApiError::invalid_argument("cannot read the request body"),
    }
}

/// `application/json` or any `application/*+json`, parameters (charset) ignored.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let structured_json = subtype
        .len()
        .checked_sub("+json".len())
        .and_then(|start| subtype.get(start..))
        .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"));
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || structured_json)
}

/// The `{userId}` (or `{id}`) path segment: an instance id, held to the platform's one
/// rule here so a bad id is refused before any service is called, with the message
/// every service gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceId(pub String);

impl<S> FromRequestParts<S> for InstanceId
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::invalid_argument("the instance id in the path is not valid utf-8")
            })?;
        let id = clawfleet_kit::instance_id::InstanceId::parse(&id)
            .map_err(|error| ApiError::from(ServiceError::from(error)))?;
        Ok(InstanceId(id.into_string()))
    }
}

/// Query parameters; a query string that cannot be decoded is a 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                let detail = std::error::Error::source(&rejection)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                ApiError::invalid_argument(format!("invalid query string: {detail}"))
            })
    }
}

/// Parses a `true`/`false` query flag; anything else names the parameter.
pub fn parse_flag(name: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "{name} must be true or false, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_with(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    #[test]
    fn json_content_types_are_recognised_with_or_without_parameters() {
        for accepted in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(has_json_content_type(&headers_with(accepted)), "{accepted}");
        }
        for refused in ["text/plain", "application/xml", "json", "application/+jso"] {
            assert!(!has_json_content_type(&headers_with(refused)), "{refused}");
        }
        assert!(!has_json_content_type(&HeaderMap::new()));
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        #[serde(default)]
        force: bool,
    }

    async fn optional_body(body: &'static str) -> Result<Options, ApiError> {
        let request = Request::post("/")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .body(axum::body::Body::from(body))
            .unwrap();
        OptionalApiJson::<Options>::from_request(request, &())
            .await
            .map(|OptionalApiJson(options)| options)
    }

    #[tokio::test]
    async fn an_optional_body_may_be_empty_or_null() {
        assert!(!optional_body("").await.unwrap().force);
        assert!(!optional_body("null").await.unwrap().force);
        assert!(!optional_body(" null\n").await.unwrap().force);
        assert!(optional_body(r#"{"force":true}"#).await.unwrap().force);
        for refused in ["[]", "\"null\"", "nul", "0", r#"{"force":null}"#] {
            let error = optional_body(refused).await.unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidArgument, "{refused}");
        }
    }

    #[tokio::test]
    async fn a_null_body_still_needs_the_json_content_type() {
        let request = Request::post("/")
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::CONTENT_LENGTH, 4)
            .body(axum::body::Body::from("null"))
            .unwrap();
        let error = OptionalApiJson::<Options>::from_request(request, &())
            .await
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::UnsupportedMediaType);
    }

    #[derive(Debug, serde::Deserialize)]
    struct Timeouts {
        #[serde(default, deserialize_with = "optional_integer")]
        small: Option<u32>,
        #[serde(default, deserialize_with = "optional_integer")]
        large: Option<u64>,
    }

    fn timeouts(text: &str) -> Result<(Option<u32>, Option<u64>), serde_json::Error> {
        serde_json::from_str::<Timeouts>(text).map(|t| (t.small, t.large))
    }

    #[test]
    fn integers_may_be_written_as_integral_floats() {
        assert_eq!(timeouts("{}").unwrap(), (None, None));
        assert_eq!(
            timeouts(r#"{"small":null,"large":null}"#).unwrap(),
            (None, None)
        );
        assert_eq!(
            timeouts(r#"{"small":730,"large":730.0}"#).unwrap(),
            (Some(730), Some(730))
        );
        assert_eq!(
            timeouts(r#"{"small":4294967295.0,"large":1e3}"#).unwrap(),
            (Some(u32::MAX), Some(1000))
        );
        for refused in [
            r#"{"small":730.5}"#,
            r#"{"small":-1}"#,
            r#"{"small":-1.0}"#,
            r#"{"small":4294967296}"#,
            r#"{"large":1e20}"#,
            r#"{"small":"730"}"#,
            r#"{"small":true}"#,
        ] {
            assert!(timeouts(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn flags_accept_only_true_and_false() {
        assert_eq!(parse_flag("preservePvc", None, true), Ok(true));
        assert_eq!(parse_flag("preservePvc", Some("false"), true), Ok(false));
        let error = parse_flag("preservePvc", Some("nope"), true).unwrap_err();
        assert_eq!(
            error.message,
            r#"preservePvc must be true or false, got "nope""#
        );
    }
}
