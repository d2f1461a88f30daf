//! Request extractors whose rejections are the edge's JSON errors instead of axum's
//! plain-text ones.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::{HeaderMap, header, request::Parts},
};
use clawfleet_kit::error::ErrorCode;
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
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected content-type application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
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
            })?;
        // Every body the edge takes is an object; serde would also read a struct from
        // an array of its fields, which no client means.
        let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
        if first.is_some_and(|byte| *byte != b'{') {
            serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(json_error)?;
            return Err(ApiError::invalid_argument(
                "invalid request body: expected a json object",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(json_error)
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`; otherwise as
/// [`ApiJson`].
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
        ApiJson::<T>::from_request(request, state)
            .await
            .map(|ApiJson(value)| OptionalApiJson(value))
    }
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

/// The `{userId}` path segment: the instance id. The lifecycle service validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceId(pub String);

impl<S> FromRequestParts<S> for InstanceId
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| InstanceId(id))
            .map_err(|_| {
                ApiError::invalid_argument("the instance id in the path is not valid utf-8")
            })
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
