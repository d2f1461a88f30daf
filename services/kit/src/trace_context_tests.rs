use super::*;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn a_traceparent_header_is_read_as_the_remote_parent() {
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
    headers.insert("authorization", HeaderValue::from_static("Bearer secret"));
    let context = extract(&headers);
    let span = context.span();
    let parent = span.span_context();
    assert!(parent.is_valid() && parent.is_remote());
    assert_eq!(
        parent.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
}

#[test]
fn no_or_malformed_traceparent_gives_no_parent() {
    assert!(!extract(&HeaderMap::new()).span().span_context().is_valid());
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", HeaderValue::from_static("00-not-a-trace-01"));
    assert!(!extract(&headers).span().span_context().is_valid());
}

#[test]
fn outside_an_exported_trace_nothing_is_injected() {
    let mut headers = HeaderMap::new();
    headers.insert("x-kept", HeaderValue::from_static("yes"));
    inject_current(&mut headers);
    assert!(headers.get("traceparent").is_none());
    assert_eq!(headers.get("x-kept").unwrap(), "yes");
    assert!(current_ids().is_none());
}

#[test]
fn the_injector_writes_valid_headers_only() {
    let mut headers = HeaderMap::new();
    let mut injector = HeaderInjector(&mut headers);
    injector.set("traceparent", TRACEPARENT.to_owned());
    injector.set("bad header", "x".to_owned());
    injector.set("tracestate", "bad\nvalue".to_owned());
    assert_eq!(headers.len(), 1);
    assert_eq!(headers.get("traceparent").unwrap(), TRACEPARENT);
}
