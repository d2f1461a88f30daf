//! The one access layer of every gRPC server (added by [`crate::server::serve_grpc`]):
//! it authenticates the call ([`Credentials::principal`]), checks the principal against
//! [`crate::method_access`] for the request path, and puts the [`Caller`] (and the
//! [`Principal`]) in the request extensions, where tonic hands them to the handler
//! ([`Caller::of`]). Health and reflection stay open; a method not in the table is
//! refused.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use crate::{
    identity::{Caller, Credentials, caller_of},
    method_access::{Verdict, verdict},
    principal::Principal,
};

/// The start of the message of every refusal by the table (tests tell them from a
/// handler's own PERMISSION_DENIED by it).
pub const DENIED_PREFIX: &str = "not allowed:";

/// Adds [`AccessService`] around a server's routes.
#[derive(Clone, Debug)]
pub struct AccessLayer {
    credentials: Arc<Credentials>,
}

impl AccessLayer {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials: Arc::new(credentials),
        }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            credentials: self.credentials.clone(),
        }
    }
}

/// Admits a call only for a principal the table allows.
#[derive(Clone, Debug)]
pub struct AccessService<S> {
    inner: S,
    credentials: Arc<Credentials>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<Request<B>> for AccessService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match admit(&self.credentials, &mut request) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

/// Checks one call and attaches its caller; the status refuses it.
pub fn admit<B>(credentials: &Credentials, request: &mut Request<B>) -> Result<(), Status> {
    let allowed = match verdict(request.uri().path()) {
        Verdict::Open => return Ok(()),
        Verdict::Unknown => {
            return Err(Status::permission_denied(format!(
                "{DENIED_PREFIX} {} is not a method of this platform",
                request.uri().path()
            )));
        }
        Verdict::Listed(allowed) => allowed,
    };
    let principal = credentials.principal(request.headers())?;
    if !allowed.contains(&principal) {
        tracing::warn!(
            principal = principal.name(),
            path = request.uri().path(),
            "call refused by the method access table"
        );
        return Err(Status::permission_denied(format!(
            "{DENIED_PREFIX} {} may not call {}",
            principal.name(),
            request.uri().path()
        )));
    }
    let caller: Caller = caller_of(principal, request.headers())?;
    // On the call's server span (the tracing layer runs this inside it).
    let span = tracing::Span::current();
    span.record("clawfleet.caller.role", caller.role.as_str());
    span.record("clawfleet.caller.principal", principal.name());
    request.extensions_mut().insert::<Principal>(principal);
    request.extensions_mut().insert(caller);
    Ok(())
}

#[cfg(test)]
#[path = "access_layer_tests.rs"]
mod tests;
