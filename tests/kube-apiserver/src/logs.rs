//! `pods/{name}/log`: the text a test set with `KubeApiServer::append_pod_log`, honouring
//! `container`, `tailLines` and `follow` (which streams appended text until the pod goes away).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::Value;

use crate::routing::ApiRequest;
use crate::state::ServerState;
use crate::status::ApiError;

fn log_text(state: &ServerState, ns: &str, pod: &str) -> String {
    let logs = state.pod_logs.lock().unwrap_or_else(|p| p.into_inner());
    logs.get(&(ns.to_string(), pod.to_string()))
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn serve(state: &Arc<ServerState>, req: &ApiRequest) -> Result<Response, ApiError> {
    let name = req.name.clone().unwrap_or_default();
    let pod = state
        .object(&req.rt, &req.namespace, &name)
        .ok_or_else(|| ApiError::not_found(&req.rt, &name))?;
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match req.param("container") {
        Some(c) if !containers.contains(&c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() > 1 => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
        _ => {}
    }
    let mut text = log_text(state, &req.namespace, &name);
    if let Some(tail) = req.param("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(tail);
        text = lines[start..].iter().map(|l| format!("{l}\n")).collect();
    }
    let plain = |body: Body| {
        Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .body(body)
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    if !req.flag("follow") {
        return plain(Body::from(text));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(16);
    let state = state.clone();
    let (rt, ns) = (req.rt.clone(), req.namespace.clone());
    tokio::spawn(async move {
        let mut sent = log_text(&state, &ns, &name).len();
        if tx.send(Ok(Bytes::from(text))).await.is_err() {
            return;
        }
        let mut kill = state.watch_kill.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = kill.changed() => return,
            }
            if state.object(&rt, &ns, &name).is_none() {
                return;
            }
            let now = log_text(&state, &ns, &name);
            if now.len() > sent {
                if tx
                    .send(Ok(Bytes::from(now[sent..].to_string())))
                    .await
                    .is_err()
                {
                    return;
                }
                sent = now.len();
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    plain(Body::from_stream(stream))
}
