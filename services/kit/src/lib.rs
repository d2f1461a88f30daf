//! Shared plumbing for every clawfleet service, and nothing else:

pub mod access_layer; // the access check of every gRPC server: who calls, and whether the table lets them
pub mod access_token;
pub mod app_rpc; // the gateway methods app users may call, enforced by the edge and the bridge // the app's HS256 access JWT, issued by auth and verified by the edge
pub mod backoff; // the one retry delay policy (exponential, jittered, resettable)
pub mod backup_id; // the form of a backup id, checked before it reaches a store
pub mod client; // gRPC channels between services: lazy, keepalive on HTTP/2 and TCP
pub mod config; // env keys as named constants, read through an env map
pub mod error; // the one table from error codes to gRPC and HTTP statuses
pub mod grpc_client_tracing; // the tracing layer of every gRPC client channel: client spans, context injected
pub mod grpc_tracing; // the tracing layer of every gRPC server: spans continuing the caller's trace
pub mod identity; // who is calling (platform API key, service tokens, caller metadata)
pub mod instance_access; // whether a caller may use an instance, for services asking as themselves
pub mod instance_id; // the instance id rule: one type and its pattern
pub mod log_trace_ids; // trace_id and span_id on every log line written inside a traced span
pub mod method_access; // the table: every gRPC method and who may call it
pub mod metrics; // Prometheus: one registry, the gRPC and kube layers, process metrics, /metrics
pub mod otel_settings; // what the standard OTEL_* variables ask of trace export
pub mod plan; // plan names, the proto enum and what each plan allows
pub mod principal; // who presented a credential: the operator or one calling service
pub mod private_file; // owner-only files and folders, written atomically
pub mod secret; // random tokens, constant-time comparison, redacted secrets
pub mod server; // gRPC bootstrap: health, reflection (v1 and v1alpha), graceful shutdown
pub mod service_keys; // which environment keys each service requires and which it reads
pub mod service_token; // each calling service's token, its derivation and the digests servers hold
pub mod shutdown; // one cancellation token watched by every server and task
pub mod telemetry; // logs (text or JSON) and OTLP trace export
pub mod tls; // service-to-service TLS: certificates from files, mutual authentication
pub mod trace_context; // W3C traceparent/tracestate in and out of headers and gRPC metadata
