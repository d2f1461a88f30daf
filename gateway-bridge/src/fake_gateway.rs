//! A scripted in-process gateway for unit tests of timing and failure paths that a real
//! gateway cannot produce on demand (silence, payload limits, out-of-order replies, closes
//! with chosen codes). The real gateway is exercised by the integration tests in `tests/`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::TcpListener,
    sync::{broadcast, mpsc},
    task::JoinHandle,
};
use tokio_tungstenite::{
    accept_async,
    tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::protocol::REQUIRED_SCOPES;

/// How the fake gateway behaves.
#[derive(Clone)]
pub struct Script {
    pub token: String,
    pub tick_interval_ms: u64,
    pub max_payload: u64,
    pub scopes: Vec<String>,
    pub device_token: Option<String>,
    /// Whether requests are answered at all.
    pub answer: bool,
    /// How many `busy` requests are turned away before one is admitted.
    pub busy_rejections: usize,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            token: "fake-token".to_owned(),
            tick_interval_ms: 30_000,
            max_payload: 1024 * 1024,
            scopes: REQUIRED_SCOPES
                .iter()
                .map(|scope| (*scope).to_owned())
                .collect(),
            device_token: None,
            answer: true,
            busy_rejections: 0,
        }
    }
}

#[derive(Clone, Debug)]
enum Command {
    Close(u16, String),
    Event(String, Value),
    Raw(Arc<String>),
    Flood(usize),
    Ping,
    Abort,
}

struct FakeState {
    script: Mutex<Script>,
    connects: Mutex<Vec<Value>>,
    commands: broadcast::Sender<Command>,
    busy_seen: AtomicUsize,
    pong_seen: AtomicBool,
    outstanding: AtomicUsize,
    most_outstanding: AtomicUsize,
}

/// A listening fake gateway; dropping it aborts every connection.
pub struct FakeGateway {
    pub url: String,
    state: Arc<FakeState>,
    accept_task: JoinHandle<()>,
}

impl FakeGateway {
    pub async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let state = Arc::new(FakeState {
            script: Mutex::new(script),
            connects: Mutex::new(Vec::new()),
            commands: broadcast::channel(64).0,
            busy_seen: AtomicUsize::new(0),
            pong_seen: AtomicBool::new(false),
            outstanding: AtomicUsize::new(0),
            most_outstanding: AtomicUsize::new(0),
        });
        let accept_state = state.clone();
        let accept_task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(accept_state.clone(), stream));
            }
        });
        Self {
            url,
            state,
            accept_task,
        }
    }

    /// The params of every `connect` received, in order.
    pub fn connects(&self) -> Vec<Value> {
        self.state.connects.lock().unwrap().clone()
    }

    pub fn set_script(&self, script: Script) {
        *self.state.script.lock().unwrap() = script;
    }

    /// Closes every open connection with this close code.
    pub fn close_all(&self, code: u16, reason: &str) {
        let _ = self
            .state
            .commands
            .send(Command::Close(code, reason.to_owned()));
    }

    /// Drops every open connection without a close frame.
    pub fn abort_all(&self) {
        let _ = self.state.commands.send(Command::Abort);
    }

    pub fn emit(&self, event: &str, payload: Value) {
        let _ = self
            .state
            .commands
            .send(Command::Event(event.to_owned(), payload));
    }

    /// Sends `text` as one text frame, whatever it holds (a hostile gateway's frames).
    pub fn send_raw_all(&self, text: String) {
        let _ = self.state.commands.send(Command::Raw(Arc::new(text)));
    }

    /// Sends `events` small events as fast as the socket takes them, while still reading.
    pub fn flood_all(&self, events: usize) {
        let _ = self.state.commands.send(Command::Flood(events));
    }

    pub fn ping_all(&self) {
        let _ = self.state.commands.send(Command::Ping);
    }

    /// The most requests that were received but not yet answered at one time.
    pub fn most_outstanding(&self) -> usize {
        self.state.most_outstanding.load(Ordering::SeqCst)
    }

    pub fn pong_seen(&self) -> bool {
        self.state.pong_seen.load(Ordering::SeqCst)
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.accept_task.abort();
        let _ = self.state.commands.send(Command::Abort);
    }
}

async fn serve(state: Arc<FakeState>, stream: tokio::net::TcpStream) {
    let mut commands = state.commands.subscribe();
    let Ok(mut socket) = accept_async(stream).await else {
        return;
    };
    let challenge = json!({"type":"event","event":"connect.challenge",
        "payload":{"nonce":"fake-nonce","ts":1_700_000_000_000u64}});
    if socket
        .send(Message::text(challenge.to_string()))
        .await
        .is_err()
    {
        return;
    }
    let Some(Ok(Message::Text(connect))) = socket.next().await else {
        return;
    };
    let connect: Value = serde_json::from_str(connect.as_str()).unwrap();
    let params = connect["params"].clone();
    state.connects.lock().unwrap().push(params.clone());
    let script = state.script.lock().unwrap().clone();
    let token_ok = params["auth"]["token"].as_str() == Some(script.token.as_str())
        || (script.device_token.is_some()
            && params["auth"]["deviceToken"].as_str() == script.device_token.as_deref());
    if !token_ok {
        let refusal = json!({"type":"res","id":connect["id"],"ok":false,
            "error":{"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch",
                     "details":{"code":"AUTH_TOKEN_MISMATCH"}}});
        let _ = socket.send(Message::text(refusal.to_string())).await;
        let _ = socket
            .close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "unauthorized".into(),
            }))
            .await;
        return;
    }
    let hello = json!({"type":"res","id":connect["id"],"ok":true,"payload":{
        "type":"hello-ok","protocol":4,"server":{"version":"fake"},
        "features":{"methods":["echo"]},
        "auth":{"scopes":script.scopes,"deviceToken":script.device_token},
        "policy":{"maxPayload":script.max_payload,"tickIntervalMs":script.tick_interval_ms}}});
    if socket.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }

    let (mut sink, mut stream) = socket.split();
    let (replies_tx, mut replies_rx) = mpsc::unbounded_channel::<String>();
    let mut flood_left = 0usize;
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let script = state.script.lock().unwrap().clone();
                    if script.answer {
                        let now = state.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
                        state.most_outstanding.fetch_max(now, Ordering::SeqCst);
                        answer(&state, &script, text.as_str(), replies_tx.clone());
                    }
                }
                Some(Ok(Message::Pong(_))) => state.pong_seen.store(true, Ordering::SeqCst),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            Some(reply) = replies_rx.recv() => {
                state.outstanding.fetch_sub(1, Ordering::SeqCst);
                if sink.send(Message::text(reply)).await.is_err() {
                    return;
                }
            }
            // One event at a time, so that reads (and the client's close) still get turns;
            // a send that cannot go out because the client stopped reading gives way too.
            sent = async {
                let frame = json!({"type":"event","event":"flood","payload":{"left":flood_left}});
                tokio::time::timeout(Duration::from_millis(50), sink.send(Message::text(frame.to_string()))).await
            }, if flood_left > 0 => match sent {
                Ok(Ok(())) => flood_left -= 1,
                Ok(Err(_)) => return,
                Err(_) => {}
            },
            command = commands.recv() => match command {
                Ok(Command::Close(code, reason)) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame { code: code.into(), reason: reason.into() })))
                        .await;
                    // Let the client's close reply arrive before the socket is dropped.
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
                    return;
                }
                Ok(Command::Event(event, payload)) => {
                    let frame = json!({"type":"event","event":event,"payload":payload});
                    let _ = sink.send(Message::text(frame.to_string())).await;
                }
                Ok(Command::Raw(text)) => {
                    let _ = sink.send(Message::text(text.as_str())).await;
                }
                Ok(Command::Flood(events)) => flood_left = events,
                Ok(Command::Ping) => {
                    let _ = sink.send(Message::Ping(b"are-you-there".to_vec().into())).await;
                }
                Ok(Command::Abort) | Err(_) => return,
            },
        }
    }
}

/// Replies to `echo` with `{method, params}` after `params.delayMs`; to `busy` with the
/// gateway's queue-full error for the first `busy_rejections` requests; anything else fails.
fn answer(state: &FakeState, script: &Script, text: &str, replies: mpsc::UnboundedSender<String>) {
    let request: Value = serde_json::from_str(text).unwrap();
    let id = request["id"].clone();
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    let params = request["params"].clone();
    let reply = match method.as_str() {
        "echo" => json!({"type":"res","id":id,"ok":true,
            "payload":{"method":method,"params":params}}),
        "busy" if state.busy_seen.fetch_add(1, Ordering::SeqCst) < script.busy_rejections => {
            json!({"type":"res","id":id,"ok":false,"error":{"code":"UNAVAILABLE",
                "message":"The server is busy. Please try again in a moment.","retryable":true}})
        }
        "busy" => json!({"type":"res","id":id,"ok":true,"payload":{"admitted":true}}),
        _ => json!({"type":"res","id":id,"ok":false,"error":{"code":"INVALID_REQUEST",
            "message":format!("unknown method: {method}")}}),
    };
    let delay = Duration::from_millis(params["delayMs"].as_u64().unwrap_or(0));
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = replies.send(reply.to_string());
    });
}
