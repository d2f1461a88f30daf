//! The whole flow against a real gateway, one step after another (each step depends on
//! the state the previous one left).

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use clawfleet_gateway_bridge::CallError;
use clawfleet_tests::telegram_standin::TelegramStandIn;
use serde_json::{Value, json};

use crate::{
    gateway::{
        CALL_TIMEOUT, Gateway, call, cli_pairing_list, patch_config, stdout, wait_for_status,
    },
    pairing::{APPROVED_MESSAGE, expected_pairing_reply, pairing_code},
    random_alphanumeric,
};

const SENDER: i64 = 4242;

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
