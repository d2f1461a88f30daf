use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use axum::{Router, body::Body, routing::get};
use http::StatusCode;
use tower::ServiceExt;
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{Layer, layer::Context, layer::SubscriberExt};

use super::*;

type Fields = BTreeMap<String, String>;

/// The fields of every span made while it is the default subscriber, by span id.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<HashMap<u64, Fields>>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber> Layer<S> for Spans {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Fields::new();
        attributes.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().insert(id.into_u64(), fields);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(fields) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Visitor(fields));
        }
    }
}

/// The fields of the one span made while `uri` is answered by a small router.
async fn span_of(uri: &str) -> Fields {
    let spans = Spans::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let router = Router::new()
        .route("/things/{id}", get(|| async { "ok" }))
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .layer(layer());
    let request = Request::builder()
        .uri(uri)
        .header("authorization", "Bearer planted-secret-key")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    router.oneshot(request).await.unwrap();
    let spans = spans.0.lock().unwrap();
    assert_eq!(spans.len(), 1, "{spans:?}");
    spans.values().next().unwrap().clone()
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_span_is_named_by_its_route_template_not_its_path() {
    let fields = span_of("/things/planted-path-value?token=planted-query").await;
    assert_eq!(fields["otel.name"], "GET /things/{id}");
    assert_eq!(fields["url.template"], "/things/{id}");
    assert_eq!(fields["http.request.method"], "GET");
    assert_eq!(fields["http.response.status_code"], "200");
    assert_eq!(fields["otel.kind"], "server");
    assert!(!fields.contains_key("otel.status_code"));
    for value in fields.values() {
        assert!(!value.contains("planted"), "{fields:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_unmatched_request_is_named_by_its_method_alone() {
    let fields = span_of("/planted/unknown/path").await;
    assert_eq!(fields["otel.name"], "GET");
    assert!(!fields.contains_key("url.template"));
    assert_eq!(fields["http.response.status_code"], "404");
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_error_marks_the_span_as_an_error() {
    let fields = span_of("/broken").await;
    assert_eq!(fields["http.response.status_code"], "500");
    assert_eq!(fields["otel.status_code"], "ERROR");
}
