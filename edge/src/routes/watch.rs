//! `/api/instances/{userId}/watch` and `/api/watch`: instance changes as Server-Sent
//! Events (`event: snapshot|updated|deleted`, `data: <instance JSON>`), relayed from the
//! lifecycle service's WatchInstances stream.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use clawfleet_contracts::lifecycle::v1::{WatchInstancesResponse, watch_instances_response::Kind};
use clawfleet_kit::shutdown::ShutdownToken;
use futures_util::{StreamExt, stream};
use tonic::Streaming;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::with_json_405;
use crate::{
    error::ApiError,
    extract::InstanceId,
    instance_json::InstanceView,
    lifecycle::{CALL_DEADLINE, deadline_passed, upstream},
    openapi::schemas::{ErrorResponses, ManagerInstancePath},
    principal::Principal,
    state::EdgeState,
};

/// Comment lines sent this often keep proxies from closing an idle stream.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

pub fn routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(watch_instance)))
        .routes(with_json_405(routes!(watch_all)))
}

/// Server-Sent Events for one instance: a snapshot, then every change.
#[utoipa::path(get, path = "/api/instances/{userId}/watch", tag = "manager",
    security(("apiKey" = [])), params(ManagerInstancePath),
    responses((status = 200, description = "`event: snapshot|updated|deleted`, `data:` the instance JSON; `event: usage` when the AI key crosses 80 % or 100 % of its limit", content_type = "text/event-stream", body = String), ErrorResponses))]
async fn watch_instance(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(id): InstanceId,
) -> Result<Response, ApiError> {
    let mut changes = state.lifecycle().watch(&caller, id).await?;
    // The snapshot comes first. Waiting for it means an unknown id is a 404 even when the
    // service opened the stream before finding out.
    let snapshot = tokio::time::timeout(CALL_DEADLINE, changes.message())
        .await
        .map_err(|_| deadline_passed())?
        .map_err(upstream)?;
    Ok(event_stream(snapshot, changes, state.shutdown().clone()))
}

/// Server-Sent Events for every instance.
#[utoipa::path(get, path = "/api/watch", tag = "manager", security(("apiKey" = [])),
    responses((status = 200, description = "`event: snapshot|updated|deleted`, `data:` the instance JSON; `event: usage` when the AI key crosses 80 % or 100 % of its limit", content_type = "text/event-stream", body = String), ErrorResponses))]
async fn watch_all(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
) -> Result<Response, ApiError> {
    // No waiting for a first message here: with no instances there is none to wait for.
    let changes = state.lifecycle().watch(&caller, String::new()).await?;
    Ok(event_stream(None, changes, state.shutdown().clone()))
}

/// The SSE response: `first`, then every later change, until the lifecycle stream ends
/// or fails (a final `event: error` carries the JSON error) or the edge shuts down.
fn event_stream(
    first: Option<WatchInstancesResponse>,
    changes: Streaming<WatchInstancesResponse>,
    shutdown: ShutdownToken,
) -> Response {
    let later = stream::unfold(Some(changes), next_event);
    let events = stream::iter(first.and_then(change_event))
        .chain(later)
        .map(Ok::<_, Infallible>)
        .take_until(shutdown.cancelled_owned());
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL))
        .into_response()
}

type Changes = Streaming<WatchInstancesResponse>;

async fn next_event(changes: Option<Changes>) -> Option<(Event, Option<Changes>)> {
    let mut changes = changes?;
    loop {
        match changes.message().await {
            Ok(Some(change)) => {
                if let Some(event) = change_event(change) {
                    return Some((event, Some(changes)));
                }
            }
            Ok(None) => return None,
            Err(status) => return Some((error_event(&upstream(status)), None)),
        }
    }
}

/// The name of the SSE event for a change kind; unknown kinds read as updates
/// (bookmarks carry no instance, so they never become events).
fn event_name(kind: i32) -> &'static str {
    match Kind::try_from(kind) {
        Ok(Kind::Snapshot) => "snapshot",
        Ok(Kind::Deleted) => "deleted",
        Ok(Kind::Updated | Kind::Unspecified | Kind::Bookmark) | Err(_) => "updated",
    }
}

/// The event for one change; a change without an instance carries nothing to show.
fn change_event(change: WatchInstancesResponse) -> Option<Event> {
    let instance = change.instance.as_ref()?;
    // A key's spend crossed 80 % or 100 % of its limit (docs/product/provider-keys.md#usage).
    if let Some(alert) = &change.usage_alert {
        let data = serde_json::json!({
            "userId": instance.id,
            "percent": alert.percent,
            "usageUsd": alert.usage_usd,
            "limitUsd": alert.limit_usd,
            "message": alert.message,
        });
        return Event::default().event("usage").json_data(data).ok();
    }
    match Event::default()
        .event(event_name(change.kind))
        .json_data(InstanceView(instance))
    {
        Ok(event) => Some(event),
        Err(error) => {
            tracing::warn!(%error, instance = %instance.id, "cannot encode an instance change");
            None
        }
    }
}

fn error_event(error: &ApiError) -> Event {
    Event::default()
        .event("error")
        .json_data(error.body())
        .unwrap_or_else(|_| {
            Event::default()
                .event("error")
                .data(r#"{"error":"internal error","code":"internal"}"#)
        })
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{Method, StatusCode},
    };
    use clawfleet_contracts::lifecycle::v1::Instance;
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;
    use crate::test_support::{authorized, body_text, json_of, test_router};

    #[test]
    fn change_kinds_name_the_events() {
        assert_eq!(event_name(Kind::Snapshot as i32), "snapshot");
        assert_eq!(event_name(Kind::Updated as i32), "updated");
        assert_eq!(event_name(Kind::Deleted as i32), "deleted");
        assert_eq!(event_name(Kind::Unspecified as i32), "updated");
        assert_eq!(event_name(99), "updated");
    }

    #[test]
    fn changes_without_an_instance_are_skipped() {
        let change = WatchInstancesResponse {
            kind: Kind::Updated as i32,
            instance: None,
            usage_alert: None,
        };
        assert!(change_event(change).is_none());
    }

    #[tokio::test]
    async fn events_carry_the_kind_and_the_instance_json() {
        let change = WatchInstancesResponse {
            kind: Kind::Deleted as i32,
            instance: Some(Instance {
                id: "alice".to_owned(),
                ..Instance::default()
            }),
            usage_alert: None,
        };
        let event = change_event(change).unwrap();
        let response = Sse::new(stream::iter([Ok::<_, Infallible>(event)])).into_response();
        let text = body_text(response).await;
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("event: deleted"));
        let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["userId"], "alice");
        assert_eq!(data["phase"], "unknown");
    }

    #[tokio::test]
    async fn a_usage_alert_is_a_usage_event_with_its_message() {
        let change = WatchInstancesResponse {
            kind: Kind::Updated as i32,
            instance: Some(Instance {
                id: "alice".to_owned(),
                ..Instance::default()
            }),
            usage_alert: Some(clawfleet_contracts::lifecycle::v1::UsageAlert {
                percent: 80,
                usage_usd: 8.0,
                limit_usd: 10.0,
                message: "You have used 80 % of your AI credit ($8.00 of $10.00).".to_owned(),
            }),
        };
        let event = change_event(change).unwrap();
        let response = Sse::new(stream::iter([Ok::<_, Infallible>(event)])).into_response();
        let text = body_text(response).await;
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("event: usage"));
        let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            data,
            json!({"userId": "alice", "percent": 80, "usageUsd": 8.0, "limitUsd": 10.0,
                "message": "You have used 80 % of your AI credit ($8.00 of $10.00)."})
        );
    }

    #[tokio::test]
    async fn failures_end_the_stream_with_an_error_event() {
        let event = error_event(&ApiError::not_found("no instance alice"));
        let response = Sse::new(stream::iter([Ok::<_, Infallible>(event)])).into_response();
        assert_eq!(
            body_text(response).await,
            "event: error\ndata: {\"error\":\"no instance alice\",\"code\":\"not_found\"}\n\n"
        );
    }

    #[tokio::test]
    async fn watches_fail_as_json_before_the_stream_starts_when_lifecycle_is_down() {
        for path in ["/api/instances/alice/watch", "/api/watch"] {
            let response = test_router()
                .await
                .oneshot(authorized(Method::GET, path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(
                json_of(response).await,
                json!({"error": "lifecycle service is unavailable", "code": "unavailable"})
            );
        }
    }
}
