use std::convert::Infallible;

use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, StreamBody};
use tower::{ServiceExt, service_fn};

use super::*;
use crate::metrics::exposition::{Format, encode};

fn scrape() -> String {
    encode(Format::PrometheusText).unwrap()
}

fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn request(path: &str) -> Request<()> {
    Request::builder().uri(path).body(()).unwrap()
}

type TestBody =
    StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<&'static [u8]>, Infallible>>>>;

/// A server answering every call with `grpc-status: code` in its trailers.
fn trailers_answer(code: &'static str) -> Response<TestBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(code));
    let frames = vec![
        Ok(Frame::data(&b"reply"[..])),
        Ok(Frame::trailers(trailers)),
    ];
    Response::new(StreamBody::new(tokio_stream::iter(frames)))
}

#[tokio::test]
async fn a_streamed_answer_is_counted_by_the_status_in_its_trailers() {
    let layer = server_layer(&["test.streamed.Service"]);
    let service = layer.layer(service_fn(|_request: Request<()>| async {
        Ok::<_, Infallible>(trailers_answer("0"))
    }));
    let response = service
        .oneshot(request("/test.streamed.Service/Get"))
        .await
        .unwrap();
    let in_flight =
        r#"clawfleet_grpc_server_in_flight_requests{rpc_service="test.streamed.Service"}"#;
    assert_eq!(
        value(&scrape(), in_flight),
        Some(1.0),
        "counted until the end"
    );
    response.into_body().collect().await.unwrap();

    let scrape = scrape();
    let ok = r#"clawfleet_grpc_server_requests_total{rpc_service="test.streamed.Service",rpc_method="Get",status_class="ok"}"#;
    assert_eq!(value(&scrape, ok), Some(1.0), "{scrape}");
    assert_eq!(value(&scrape, in_flight), Some(0.0));
    let count = r#"clawfleet_grpc_server_request_duration_seconds_count{rpc_service="test.streamed.Service",rpc_method="Get"}"#;
    assert_eq!(value(&scrape, count), Some(1.0), "{scrape}");
}

#[tokio::test]
async fn a_trailers_only_error_is_counted_at_once_and_unknown_names_become_other() {
    let layer = server_layer(&["test.errors.Service"]);
    let service = layer.layer(service_fn(|request: Request<()>| async move {
        let code = if request.uri().path().ends_with("/Missing") {
            "12"
        } else {
            "5"
        };
        let mut response: Response<TestBody> =
            Response::new(StreamBody::new(tokio_stream::iter(Vec::new())));
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static(code));
        Ok::<_, Infallible>(response)
    }));
    for path in [
        "/test.errors.Service/Get",
        "/test.errors.Service/Missing",
        "/not.served.Service/Anything",
    ] {
        // Not reading the body: trailers-only answers are counted with the headers.
        let _ = service.clone().oneshot(request(path)).await.unwrap();
    }
    let scrape = scrape();
    let not_found = r#"clawfleet_grpc_server_requests_total{rpc_service="test.errors.Service",rpc_method="Get",status_class="client_error"}"#;
    assert_eq!(value(&scrape, not_found), Some(1.0), "{scrape}");
    assert!(
        !scrape.contains("Missing"),
        "an unknown method is not a label: {scrape}"
    );
    assert!(
        !scrape.contains("not.served"),
        "an unknown service is not a label: {scrape}"
    );
    assert!(
        scrape.contains(r#"rpc_service="other",rpc_method="other""#),
        "{scrape}"
    );
}

#[tokio::test]
async fn a_call_dropped_before_its_status_is_cancelled_and_probes_are_not_counted() {
    let layer = server_layer(&["test.dropped.Service", "grpc.health.v1.Health"]);
    let service = layer.layer(service_fn(|_request: Request<()>| async {
        Ok::<_, Infallible>(Response::new(StreamBody::new(tokio_stream::iter(vec![
            Ok::<_, Infallible>(Frame::data(&b"partial"[..])),
        ]))))
    }));
    let response = service
        .clone()
        .oneshot(request("/test.dropped.Service/Watch"))
        .await
        .unwrap();
    drop(response);
    let _ = service
        .oneshot(request("/grpc.health.v1.Health/Check"))
        .await
        .unwrap();
    let scrape = scrape();
    let cancelled = r#"clawfleet_grpc_server_requests_total{rpc_service="test.dropped.Service",rpc_method="Watch",status_class="cancelled"}"#;
    assert_eq!(value(&scrape, cancelled), Some(1.0), "{scrape}");
    assert!(!scrape.contains("grpc.health"), "{scrape}");
}

#[test]
fn status_classes_follow_the_server_error_codes() {
    assert_eq!(status_class(0), "ok");
    assert_eq!(status_class(3), "client_error");
    assert_eq!(status_class(16), "client_error");
    for code in [2, 4, 12, 13, 14, 15] {
        assert_eq!(status_class(code), "server_error");
    }
}
