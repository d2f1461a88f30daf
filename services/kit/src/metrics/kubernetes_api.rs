//! `clawfleet_kubernetes_api_requests_total` by verb and status code: a tower layer
//! on the lifecycle's kube client, so every request it sends (applies, deletes, lists,
//! watches, exec, the leader lease) is counted once, after kube's own retries — a 429
//! here is throttling the client could not wait out.

use std::{
    pin::Pin,
    sync::LazyLock,
    task::{Context, Poll, ready},
};

use http::{Method, Request, Response};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use tower::{Layer, Service};

use super::registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    verb: &'static str,
    code: String,
}

/// Verbs the runtime uses, each exported with a zero count of 429s from the start, so
/// the throttling alert's first increase is seen as one.
const VERBS: [&str; 6] = ["get", "watch", "create", "update", "patch", "delete"];

static REQUESTS: LazyLock<Family<CallLabels, Counter>> = LazyLock::new(|| {
    let family: Family<CallLabels, Counter> = registry::counter(
        "clawfleet_kubernetes_api_requests",
        "Requests to the Kubernetes API, by verb and HTTP status code (error: no answer).",
    );
    for verb in VERBS {
        family
            .get_or_create(&CallLabels {
                verb,
                code: "429".to_owned(),
            })
            .inc_by(0);
    }
    family
});

/// Registers the family so a scrape lists it before the first call.
pub fn register() {
    LazyLock::force(&REQUESTS);
}

/// The Kubernetes verb of a request: from its method, and for a GET whether it watches.
pub fn verb(method: &Method, query: Option<&str>) -> &'static str {
    match *method {
        Method::GET => {
            let watching = query
                .unwrap_or_default()
                .split('&')
                .any(|pair| pair == "watch=true" || pair == "watch=1");
            if watching { "watch" } else { "get" }
        }
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}

fn count(verb: &'static str, code: String) {
    REQUESTS.get_or_create(&CallLabels { verb, code }).inc();
}

/// The layer for a kube `ClientBuilder` (`with_layer`).
#[derive(Clone, Copy, Debug, Default)]
pub struct KubernetesApiMetricsLayer;

impl<S> Layer<S> for KubernetesApiMetricsLayer {
    type Service = KubernetesApiMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        register();
        KubernetesApiMetrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct KubernetesApiMetrics<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for KubernetesApiMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CountedCall<S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let verb = verb(request.method(), request.uri().query());
        CountedCall {
            inner: self.inner.call(request),
            verb,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct CountedCall<F> {
        #[pin]
        inner: F,
        verb: &'static str,
    }
}

impl<F, B, E> Future for CountedCall<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(context));
        match &result {
            Ok(response) => count(this.verb, response.status().as_u16().to_string()),
            Err(_) => count(this.verb, "error".to_owned()),
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::metrics::exposition::{Format, encode};

    fn count_of(series: &str) -> f64 {
        encode(Format::PrometheusText)
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    #[tokio::test]
    async fn every_answer_is_counted_by_verb_and_code_and_a_failure_as_error() {
        let throttled = r#"clawfleet_kubernetes_api_requests_total{verb="delete",code="429"}"#;
        let failed = r#"clawfleet_kubernetes_api_requests_total{verb="update",code="error"}"#;
        let before = (count_of(throttled), count_of(failed));
        let apiserver =
            KubernetesApiMetricsLayer.layer(service_fn(|request: Request<()>| async move {
                if request.method() == Method::PUT {
                    return Err("connection reset");
                }
                let mut response = Response::new(());
                *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                Ok::<_, &str>(response)
            }));
        let delete = Request::builder()
            .method(Method::DELETE)
            .uri("/api/v1/namespaces/n/pods/p")
            .body(())
            .unwrap();
        let _ = apiserver.clone().oneshot(delete).await;
        let update = Request::builder()
            .method(Method::PUT)
            .uri("/api/v1/namespaces/n/pods/p")
            .body(())
            .unwrap();
        let _ = apiserver.oneshot(update).await;
        assert_eq!(count_of(throttled), before.0 + 1.0);
        assert_eq!(count_of(failed), before.1 + 1.0);
    }

    #[test]
    fn verbs_follow_the_method_and_a_watch_query() {
        assert_eq!(
            verb(&Method::GET, Some("labelSelector=a&watch=true")),
            "watch"
        );
        assert_eq!(verb(&Method::GET, Some("labelSelector=a")), "get");
        assert_eq!(verb(&Method::GET, None), "get");
        assert_eq!(verb(&Method::PATCH, None), "patch");
        assert_eq!(verb(&Method::DELETE, None), "delete");
        assert_eq!(verb(&Method::POST, None), "create");
        assert_eq!(verb(&Method::OPTIONS, None), "other");
    }
}
