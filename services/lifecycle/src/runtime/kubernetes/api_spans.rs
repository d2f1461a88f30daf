//! A span for every call to the Kubernetes API (docs/product/traces.md, "Lifecycle"),
//! added as a layer of the kube client: named by verb and resource (`k8s patch
//! deployments`), with the HTTP method and status, so a slow create shows which object's
//! apply waited on the API server. kube's own spans are debug-level and carry the raw
//! URL; these carry only the verb and the resource kind.

use std::time::Duration;

use http::{Method, Request, Response};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{MakeSpan, OnResponse, TraceLayer},
};
use tracing::{Span, field::Empty};

/// The tracing layer of the runtime's kube client.
pub type ApiTraceLayer =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, ApiCallSpan, (), RecordApiStatus>;

pub fn layer() -> ApiTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(ApiCallSpan)
        .on_request(())
        .on_response(RecordApiStatus)
}

/// Makes the span of one API call.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiCallSpan;

impl<B> MakeSpan<B> for ApiCallSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let call = describe(
            request.method(),
            request.uri().path(),
            request.uri().query().unwrap_or(""),
        );
        tracing::info_span!(
            "k8s.api",
            otel.name = format_args!("k8s {} {}", call.verb, call.resource),
            otel.kind = "client",
            http.request.method = %request.method(),
            http.response.status_code = Empty,
            k8s.verb = call.verb,
            k8s.resource = call.resource,
            otel.status_code = Empty,
        )
    }
}

/// Records the response status; 4xx and 5xx mark the span failed.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordApiStatus;

impl<B> OnResponse<B> for RecordApiStatus {
    fn on_response(self, response: &Response<B>, _latency: Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_client_error() || status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The Kubernetes verb and resource of a request.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiCall {
    pub verb: &'static str,
    /// The resource, with its subresource when there is one (`pods/exec`); `other` for a
    /// path that is not a resource path.
    pub resource: String,
}

/// Reads verb and resource off a request to the API server, as RBAC would.
pub fn describe(method: &Method, path: &str, query: &str) -> ApiCall {
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    let rest = match rest {
        ["namespaces", _namespace, resource, more @ ..] => {
            let mut scoped = vec![*resource];
            scoped.extend_from_slice(more);
            scoped
        }
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [] => ("other".to_owned(), false),
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, subresource, ..] => (format!("{resource}/{subresource}"), true),
    };
    let watching = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    ApiCall { verb, resource }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: Method, path: &str, query: &str) -> (&'static str, String) {
        let call = describe(&method, path, query);
        (call.verb, call.resource)
    }

    #[test]
    fn verbs_and_resources_are_read_as_rbac_reads_them() {
        let apps = "/apis/apps/v1/namespaces/tenants/deployments";
        assert_eq!(
            call(Method::PATCH, &format!("{apps}/alice"), "fieldManager=x"),
            ("patch", "deployments".to_owned())
        );
        assert_eq!(
            call(Method::GET, apps, "watch=true&resourceVersion=5"),
            ("watch", "deployments".to_owned())
        );
        assert_eq!(
            call(Method::GET, apps, ""),
            ("list", "deployments".to_owned())
        );
        assert_eq!(
            call(
                Method::GET,
                "/api/v1/namespaces/tenants/pods/alice-0/exec",
                "command=ls"
            ),
            ("get", "pods/exec".to_owned())
        );
        assert_eq!(
            call(
                Method::DELETE,
                "/api/v1/namespaces/tenants/persistentvolumeclaims/alice",
                ""
            ),
            ("delete", "persistentvolumeclaims".to_owned())
        );
        assert_eq!(
            call(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/t/leases/lifecycle",
                ""
            ),
            ("update", "leases".to_owned())
        );
        assert_eq!(
            call(Method::GET, "/version", ""),
            ("list", "other".to_owned())
        );
    }
}
