//! `pods/{name}/exec` over WebSocket, as kube-rs 5 speaks it: the client offers
//! `v5.channel.k8s.io, v4.channel.k8s.io` in one `Sec-WebSocket-Protocol` header; every frame is
//! binary with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 status JSON, 4 resize; v5 adds
//! 255 = close a channel, used for stdin EOF). What the command does is up to the test's
//! [`ExecHandler`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};

use crate::routing::ApiRequest;
use crate::state::ServerState;
use crate::status::ApiError;

/// One exec request, as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCall {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    /// Everything the client wrote to stdin (empty unless it asked for stdin).
    pub stdin: Vec<u8>,
    pub tty: bool,
}

/// What the command printed and how it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl ExecResult {
    /// Exit 0 with `stdout`.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Self {
            stdout: stdout.into(),
            ..Self::default()
        }
    }

    /// A failure: `stderr` and a non-zero exit code.
    pub fn fail(exit_code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Self {
            stderr: stderr.into(),
            exit_code,
            ..Self::default()
        }
    }
}

/// Decides what an exec'd command does.
pub type ExecHandler = Arc<dyn Fn(ExecCall) -> ExecResult + Send + Sync>;

/// A command that takes time, as [`crate::KubeApiServer::set_async_exec_handler`] runs it.
pub(crate) type ExecFuture = Pin<Box<dyn Future<Output = ExecResult> + Send>>;

/// What runs an exec'd command.
#[derive(Clone)]
pub(crate) enum Handler {
    /// Answers at once (on a blocking thread, so it may block).
    Blocking(ExecHandler),
    /// Takes as long as its future does; dropped when the client hangs up.
    Async(Arc<dyn Fn(ExecCall) -> ExecFuture + Send + Sync>),
}

/// Counts a session as open for as long as it lives.
struct OpenSession(Arc<ServerState>);

impl OpenSession {
    fn new(state: Arc<ServerState>) -> Self {
        state.exec_sessions.fetch_add(1, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.exec_sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

/// Checks the pod and container like the apiserver and kubelet do, then upgrades.
pub(crate) fn serve(
    state: &Arc<ServerState>,
    req: &ApiRequest,
    upgrade: Option<WebSocketUpgrade>,
) -> Result<Response, ApiError> {
    let name = req.name.clone().unwrap_or_default();
    let pod = state
        .object(&req.rt, &req.namespace, &name)
        .ok_or_else(|| ApiError::not_found(&req.rt, &name))?;
    let container = pick_container(&pod, req.param("container"), &name)?;
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let running = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["name"] == container.as_str() && c.pointer("/state/running").is_some())
        });
    if !running {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        )));
    }
    let command: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let upgrade = upgrade.ok_or_else(|| ApiError::bad_request("Upgrade request required"))?;
    let upgrade = upgrade.protocols(state.options.exec_protocols.clone());
    let v5 = upgrade
        .selected_protocol()
        .is_some_and(|p| p == "v5.channel.k8s.io");
    let call = ExecCall {
        namespace: req.namespace.clone(),
        pod: name,
        container,
        command,
        stdin: Vec::new(),
        tty: req.flag("tty"),
    };
    let wants_stdin = req.flag("stdin");
    let handler = state
        .exec_handler
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let session = OpenSession::new(state.clone());
    Ok(upgrade.on_upgrade(move |socket| async move {
        run(socket, call, wants_stdin, v5, handler).await;
        drop(session);
    }))
}

fn pick_container(
    pod: &Value,
    requested: Option<&str>,
    pod_name: &str,
) -> Result<String, ApiError> {
    let names: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match requested {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

/// The status the kubelet reports on channel 3.
fn exit_status(call: &ExecCall, exit_code: i32) -> Value {
    if exit_code == 0 {
        return json!({ "metadata": {}, "status": "Success" });
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {exit_code}", call.command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": { "causes": [{ "reason": "ExitCode", "message": exit_code.to_string() }] },
    })
}

async fn run(
    mut socket: WebSocket,
    mut call: ExecCall,
    wants_stdin: bool,
    v5: bool,
    handler: Option<Handler>,
) {
    // The server announces each channel with a one-byte frame, which clients skip.
    for channel in [STDOUT, STDERR, STATUS] {
        if socket.send(frame(channel, &[])).await.is_err() {
            return;
        }
    }
    if wants_stdin {
        // Collect stdin until EOF: v5 sends [255, 0]; v4 can only close the socket.
        while let Some(Ok(message)) = socket.recv().await {
            match message {
                Message::Binary(data) if data.first() == Some(&STDIN) => {
                    call.stdin.extend_from_slice(&data[1..])
                }
                Message::Binary(data) if v5 && data.as_ref() == [CLOSE, STDIN] => break,
                Message::Close(_) => return,
                _ => {}
            }
        }
    }
    let command = run_command(handler, call.clone());
    let result = tokio::select! {
        result = command => result,
        // The client hung up while the command ran: the kubelet kills it, and so do we.
        () = hung_up(&mut socket) => return,
    };
    for (channel, data) in [(STDOUT, &result.stdout), (STDERR, &result.stderr)] {
        for chunk in data.chunks(32 * 1024) {
            if socket.send(frame(channel, chunk)).await.is_err() {
                return;
            }
        }
    }
    let status = serde_json::to_vec(&exit_status(&call, result.exit_code)).unwrap_or_default();
    if socket.send(frame(STATUS, &status)).await.is_err() {
        return;
    }
    let _ = socket.send(Message::Close(None)).await;
    // Drain until the client closes, so the close handshake completes.
    let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

async fn run_command(handler: Option<Handler>, call: ExecCall) -> ExecResult {
    match handler {
        Some(Handler::Blocking(handler)) => tokio::task::spawn_blocking(move || handler(call))
            .await
            .unwrap_or_else(|_| ExecResult::fail(1, "exec handler panicked")),
        Some(Handler::Async(handler)) => handler(call).await,
        None => ExecResult::fail(
            127,
            format!(
                "exec: \"{}\": executable file not found in $PATH (no exec handler configured)",
                call.command[0]
            ),
        ),
    }
}

/// Returns once the client closed the session or the connection dropped.
async fn hung_up(socket: &mut WebSocket) {
    loop {
        match socket.recv().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(_)) => {}
        }
    }
}
