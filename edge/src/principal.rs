//! Who a request acts for. The authentication layer in front of a route (API key for
//! `/api`, access JWT for the App API) puts a [`Caller`] into the request extensions;
//! handlers take it with the [`Principal`] extractor and pass it on to the services,
//! which enforce ownership for app users.

use axum::{extract::FromRequestParts, http::request::Parts};
use clawfleet_kit::identity::Caller;

use crate::error::ApiError;

/// The caller the edge authenticated for this request.
#[derive(Debug, Clone)]
pub struct Principal(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Principal)
            // A route without an authentication layer is a wiring bug, not the caller's.
            .ok_or_else(|| ApiError::internal("no authenticated caller for this route"))
    }
}
