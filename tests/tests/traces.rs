//! Traces end to end: a real OTLP/gRPC trace receiver (the OpenTelemetry proto's
//! `TraceService` served with tonic) on loopback receives the spans of an in-process
//! platform exporting with the kit's telemetry. One `POST /api/instances` sent with a
//! known `traceparent` yields the edge's route span and the lifecycle's gRPC server span
//! in that one trace, each the child of the one before; a refused create records the
//! gRPC status (`ALREADY_EXISTS`) and the 409; a gateway call through
//! `POST /api/instances/{userId}/rpc` yields the edge span and the bridge's `Call` span
//! under it; no planted secret reaches a span.
//!
//! The process has one global subscriber, so this file holds one test.

use clawfleet_kit::principal::Principal;
use std::time::SystemTime;

use clawfleet_contracts::lifecycle::v1::ResolveGatewayRequest;
use clawfleet_kit::{
    access_token::AccessTokenKeys, config::EnvMap, plan::Plan, secret::ExposeSecret, telemetry,
};
use clawfleet_tests::{
    grpc::lifecycle_client,
    http::{client, send},
    otlp_receiver::{OtlpReceiver as Receiver, hex},
    platform::{Platform, PlatformOptions, TEST_JWT_SECRET},
    scenario::Operator,
};
use http::{Method, StatusCode};
use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::{Span, span::SpanKind},
};
use serde_json::json;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const DUPLICATE_TRACE_ID: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
const RPC_TRACE_ID: &str = "6bf92f3577b34da6a3ce929d0e0e4738";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";
const PROVIDER_KEY: &str = "sk-ant-planted-provider-key-0123456789";
const LOGIN_TRACE_ID: &str = "7bf92f3577b34da6a3ce929d0e0e4739";
const PASSWORD: &str = "planted-password-0123456789";
const BOT_TOKEN: &str = "123456789:AAplanted-bot-token-0123456789abcdef";

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
}

fn text(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::StringValue(text)) => Some(text),
        _ => None,
    }
}

fn number(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::IntValue(number)) => Some(*number),
        _ => None,
    }
}

/// Every string in every attribute and event of `spans`, with its span's name.
fn attribute_texts(spans: &[Span]) -> Vec<(String, String)> {
    fn texts(owner: &str, attributes: &[KeyValue], out: &mut Vec<(String, String)>) {
        for attribute in attributes {
            out.push((owner.to_owned(), attribute.key.clone()));
            if let Some(AnyValue { value: Some(value) }) = &attribute.value {
                out.push((owner.to_owned(), format!("{value:?}")));
            }
        }
    }
    let mut out = Vec::new();
    for span in spans {
        out.push((span.name.clone(), span.name.clone()));
        texts(&span.name, &span.attributes, &mut out);
        for event in &span.events {
            out.push((span.name.clone(), event.name.clone()));
            texts(&span.name, &event.attributes, &mut out);
        }
    }
    out
}

fn named<'a>(spans: &'a [Span], name: &str) -> Option<&'a Span> {
    spans.iter().find(|span| span.name == name)
}

/// The span named `name` of `kind` (a gRPC call has a client and a server span of one
/// name).
fn named_kind<'a>(spans: &'a [Span], name: &str, kind: SpanKind) -> Option<&'a Span> {
    spans
        .iter()
        .find(|span| span.name == name && span.kind == kind as i32)
}

/// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
fn descends_from(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let mut parent = span.parent_span_id.clone();
    while !parent.is_empty() {
        if parent == ancestor.span_id {
            return true;
        }
        match spans.iter().find(|candidate| candidate.span_id == parent) {
            Some(next) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_trace_across_the_edge_the_lifecycle_and_the_bridge() {
    let (receiver, address) = Receiver::serve().await;
    let _telemetry = telemetry::init(
        "clawfleet",
        &EnvMap::from_pairs([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                format!("http://{address}"),
            ),
            ("CLAWFLEET_LOG_FORMAT".to_owned(), "json".to_owned()),
        ]),
    );
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 29500)).unwrap();
    let jwt = AccessTokenKeys::from_secret(TEST_JWT_SECRET.as_bytes())
        .unwrap()
        .issue("u-traced", Plan::Free, SystemTime::now())
        .unwrap()
        .token
        .expose_secret()
        .to_owned();

    let http = client();
    let post_traced = |path: &str, body: serde_json::Value, trace_id: &str| {
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", platform.edge_url))
            .header(
                "authorization",
                format!("Bearer {}", platform.options.api_key),
            )
            .header("content-type", "application/json")
            .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN_ID}-01"))
            .header("x-planted-jwt", jwt.as_str())
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .unwrap();
        http.request(request)
    };
    let create_traced = |trace_id: &'static str| {
        let body = json!({"userId": "traced", "secrets": {"ANTHROPIC_API_KEY": PROVIDER_KEY}});
        post_traced("/api/instances", body, trace_id)
    };
    let reply = create_traced(TRACE_ID).await.unwrap();
    assert_eq!(reply.status(), StatusCode::CREATED);
    // The same id again: the lifecycle refuses it, and its span says so.
    let reply = create_traced(DUPLICATE_TRACE_ID).await.unwrap();
    assert_eq!(reply.status(), StatusCode::CONFLICT);
    // A gateway call: edge, then the bridge, then (resolving the gateway) the lifecycle.
    Operator::new(&platform).wait_running("traced").await;
    let reply = post_traced(
        "/api/instances/traced/rpc",
        json!({"method": "status"}),
        RPC_TRACE_ID,
    )
    .await
    .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);

    // A bot token handed to the gateway (whatever the gateway makes of it).
    let _ = post_traced(
        "/api/instances/traced/telegram/setup",
        json!({"botToken": BOT_TOKEN}),
        "8bf92f3577b34da6a3ce929d0e0e4740",
    )
    .await
    .unwrap();
    // The gateway token, as the bridge gets it.
    let gateway_token = lifecycle_client(
        &platform.lifecycle_address,
        &platform.options.service_token(Principal::Bridge),
    )
    .await
    .unwrap()
    .resolve_gateway(ResolveGatewayRequest {
        instance_id: "traced".into(),
    })
    .await
    .unwrap()
    .into_inner()
    .gateway_token;

    // An app sign-up, then a traced sign-in: edge, then auth, then the password check.
    let credentials = json!({"email": "traced@example.com", "password": PASSWORD});
    let signed_up = post_traced(
        "/auth/signup",
        credentials.clone(),
        "9bf92f3577b34da6a3ce929d0e0e4741",
    )
    .await
    .unwrap();
    assert_eq!(signed_up.status(), StatusCode::CREATED);
    let logged_in = post_traced("/auth/login", credentials, LOGIN_TRACE_ID)
        .await
        .unwrap();
    assert_eq!(logged_in.status(), StatusCode::OK);
    let session = http_body_util::BodyExt::collect(logged_in.into_body())
        .await
        .unwrap()
        .to_bytes();
    let session: serde_json::Value = serde_json::from_slice(&session).unwrap();
    let app_tokens = [
        session["accessToken"].as_str().unwrap().to_owned(),
        session["refreshToken"].as_str().unwrap().to_owned(),
    ];

    // A second request without a traceparent starts its own trace.
    let listed = send(
        &http,
        Method::GET,
        &format!("{}/api/instances", platform.edge_url),
        Some(&platform.options.api_key),
        None,
        "",
    )
    .await
    .unwrap();
    assert_eq!(listed.status, StatusCode::OK);

    let create = "clawfleet.lifecycle.v1.InstanceService/CreateInstance";
    let spans = receiver
        .trace(TRACE_ID, |spans| {
            named(spans, "POST /api/instances").is_some()
                && named_kind(spans, create, SpanKind::Server).is_some()
                && named(spans, "runtime apply").is_some()
                && named(spans, "INSERT instances").is_some()
        })
        .await;
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();

    // The edge continues the caller's trace with a span named by the route template.
    let edge = named(&spans, "POST /api/instances")
        .unwrap_or_else(|| panic!("no edge span in the trace: {names:?}"));
    assert_eq!(hex(&edge.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(edge.kind, SpanKind::Server as i32);
    assert_eq!(text(attribute(edge, "http.request.method")), Some("POST"));
    assert_eq!(
        text(attribute(edge, "url.template")),
        Some("/api/instances")
    );
    assert_eq!(
        number(attribute(edge, "http.response.status_code")),
        Some(201),
        "{edge:?}"
    );

    // The edge's client span is the route span's child, and the lifecycle's server span
    // the client span's, across the gRPC hop.
    let edge_client = named_kind(&spans, create, SpanKind::Client)
        .unwrap_or_else(|| panic!("no client span: {names:?}"));
    assert_eq!(edge_client.parent_span_id, edge.span_id, "spans: {names:?}");
    assert_eq!(text(attribute(edge_client, "rpc.system")), Some("grpc"));
    assert_eq!(
        number(attribute(edge_client, "rpc.grpc.status_code")),
        Some(0)
    );
    let lifecycle = named_kind(&spans, create, SpanKind::Server)
        .unwrap_or_else(|| panic!("no lifecycle span: {names:?}"));
    assert_eq!(
        lifecycle.parent_span_id, edge_client.span_id,
        "spans: {names:?}"
    );
    assert_eq!(text(attribute(lifecycle, "rpc.system")), Some("grpc"));
    assert_eq!(
        text(attribute(lifecycle, "rpc.service")),
        Some("clawfleet.lifecycle.v1.InstanceService")
    );
    assert_eq!(
        text(attribute(lifecycle, "rpc.method")),
        Some("CreateInstance")
    );
    assert_eq!(
        number(attribute(lifecycle, "rpc.grpc.status_code")),
        Some(0)
    );
    assert_eq!(
        text(attribute(lifecycle, "clawfleet.caller.role")),
        Some("operator")
    );
    // Inside the lifecycle: the store's insert and the runtime's apply, both under it.
    let insert = named(&spans, "INSERT instances").expect("store span");
    assert!(descends_from(&spans, insert, lifecycle), "spans: {names:?}");
    assert_eq!(text(attribute(insert, "db.system.name")), Some("sqlite"));
    assert_eq!(
        text(attribute(insert, "db.collection.name")),
        Some("instances")
    );
    let apply = named(&spans, "runtime apply").expect("runtime span");
    assert!(descends_from(&spans, apply, lifecycle), "spans: {names:?}");
    assert_eq!(text(attribute(apply, "clawfleet.runtime")), Some("local"));
    assert_eq!(
        text(attribute(apply, "clawfleet.instance.id")),
        Some("traced")
    );

    // A refused call records its gRPC status (ALREADY_EXISTS) and the edge's 409.
    let refused = receiver
        .trace(DUPLICATE_TRACE_ID, |spans| {
            named(spans, "POST /api/instances").is_some()
                && named_kind(spans, create, SpanKind::Server).is_some()
        })
        .await;
    let refused_edge = named(&refused, "POST /api/instances").expect("edge span");
    assert_eq!(
        number(attribute(refused_edge, "http.response.status_code")),
        Some(409)
    );
    let refused_client = named_kind(&refused, create, SpanKind::Client).expect("client span");
    assert_eq!(refused_client.parent_span_id, refused_edge.span_id);
    assert_eq!(
        number(attribute(refused_client, "rpc.grpc.status_code")),
        Some(6)
    );
    let refused_call = named_kind(&refused, create, SpanKind::Server).expect("lifecycle span");
    assert_eq!(refused_call.parent_span_id, refused_client.span_id);
    assert_eq!(
        number(attribute(refused_call, "rpc.grpc.status_code")),
        Some(6)
    );

    let call = "clawfleet.bridge.v1.GatewayBridgeService/Call";
    let resolve = "clawfleet.lifecycle.v1.InstanceService/ResolveGateway";
    let rpc = receiver
        .trace(RPC_TRACE_ID, |spans| {
            named(spans, "POST /api/instances/{userId}/rpc").is_some()
                && named_kind(spans, call, SpanKind::Server).is_some()
                && named(spans, "gateway status").is_some()
                && named_kind(spans, resolve, SpanKind::Server).is_some()
        })
        .await;
    let names: Vec<&str> = rpc.iter().map(|span| span.name.as_str()).collect();
    let rpc_edge = named(&rpc, "POST /api/instances/{userId}/rpc")
        .unwrap_or_else(|| panic!("no edge span for the gateway call: {names:?}"));
    assert_eq!(hex(&rpc_edge.parent_span_id), CALLER_SPAN_ID);
    let bridge_call = named_kind(&rpc, call, SpanKind::Server)
        .unwrap_or_else(|| panic!("no bridge span: {names:?}"));
    assert!(descends_from(&rpc, bridge_call, rpc_edge), "{names:?}");
    assert_eq!(
        number(attribute(bridge_call, "rpc.grpc.status_code")),
        Some(0)
    );
    // The bridge's gateway call, with its method, instance and outcome...
    let gateway_call = named(&rpc, "gateway status").expect("gateway call span");
    assert_eq!(
        gateway_call.parent_span_id, bridge_call.span_id,
        "{names:?}"
    );
    assert_eq!(
        text(attribute(gateway_call, "clawfleet.gateway.method")),
        Some("status")
    );
    assert_eq!(
        text(attribute(gateway_call, "clawfleet.instance.id")),
        Some("traced")
    );
    assert_eq!(
        text(attribute(gateway_call, "clawfleet.gateway.outcome")),
        Some("ok")
    );
    // ...which connected first: the connect, and the lifecycle resolving the gateway
    // for it, are in the same trace.
    let connect = named(&rpc, "gateway connect").expect("connect span");
    assert!(descends_from(&rpc, connect, gateway_call), "{names:?}");
    assert_eq!(
        text(attribute(connect, "clawfleet.gateway.outcome")),
        Some("connected")
    );
    let resolved = named_kind(&rpc, resolve, SpanKind::Server).expect("ResolveGateway span");
    assert!(descends_from(&rpc, resolved, connect), "{names:?}");
    assert_eq!(
        text(attribute(resolved, "clawfleet.caller.role")),
        Some("service")
    );
    assert!(named(&rpc, "gateway handshake").is_some(), "{names:?}");

    let log_in = "clawfleet.auth.v1.AuthService/LogIn";
    let login = receiver
        .trace(LOGIN_TRACE_ID, |spans| {
            named_kind(spans, log_in, SpanKind::Server).is_some()
                && named(spans, "password verify").is_some()
                && named(spans, "SELECT users").is_some()
        })
        .await;
    let names: Vec<&str> = login.iter().map(|span| span.name.as_str()).collect();
    let login_edge = named(&login, "POST /auth/login")
        .unwrap_or_else(|| panic!("no edge span for the sign-in: {names:?}"));
    assert_eq!(hex(&login_edge.parent_span_id), CALLER_SPAN_ID);
    let auth = named_kind(&login, log_in, SpanKind::Server)
        .unwrap_or_else(|| panic!("no auth span: {names:?}"));
    assert!(descends_from(&login, auth, login_edge), "{names:?}");
    let verify = named(&login, "password verify").expect("password span");
    assert!(descends_from(&login, verify, auth), "{names:?}");
    let lookup = named(&login, "SELECT users").expect("auth store span");
    assert!(descends_from(&login, lookup, auth), "{names:?}");
    assert_eq!(text(attribute(lookup, "db.collection.name")), Some("users"));

    // The list started a trace of its own, named by its route.
    let everything = receiver.all();
    let list = everything
        .iter()
        .find(|span| span.name == "GET /api/instances")
        .expect("the list request has a span");
    assert_ne!(hex(&list.trace_id), TRACE_ID);
    assert!(list.parent_span_id.is_empty());

    // No planted secret is in any span name, attribute or event.
    let planted = [
        platform.options.api_key.as_str(),
        platform.options.internal_token.as_str(),
        jwt.as_str(),
        PROVIDER_KEY,
        PASSWORD,
        BOT_TOKEN,
        gateway_token.as_str(),
        app_tokens[0].as_str(),
        app_tokens[1].as_str(),
    ];
    for (span, value) in attribute_texts(&everything) {
        for secret in planted {
            assert!(
                !value.contains(secret),
                "span {span} carries a secret: {value}"
            );
        }
    }
    drop(platform);
}
