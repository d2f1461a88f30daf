//! Telegram and WhatsApp through the whole platform (edge -> channels -> bridge /
//! lifecycle exec -> real gateway), with a Telegram Bot API stand-in on loopback:
//! setup, probe, a stranger's DM, pairing list with codes, approval by code and by
//! request id, the approved sender's next message, logout that survives a restart,
//! racing setups, and WhatsApp answering clearly without a route to WhatsApp.

use std::time::{Duration, Instant};

use clawfleet_tests::{
    platform::{Platform, PlatformOptions},
    scenario::Operator,
    telegram_standin::TelegramStandIn,
};
use http::StatusCode;
use serde_json::{Value, json};

const BOT_TOKEN: &str = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ab";
const BOT_USERNAME: &str = "clawfleet_test_bot";
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The code inside the bot's pairing reply (`<pre><code>CODE\n</code></pre>`).
fn pairing_code(reply: &str) -> String {
    let start = reply.find("<pre><code>").expect("a code block") + "<pre><code>".len();
    reply[start..]
        .split(['\n', '<'])
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

async fn wait_until(
    operator: &Operator<'_>,
    path: &str,
    what: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = operator.get(path).await;
        if reply.status == StatusCode::OK && accept(&reply.json()) {
            return reply.json();
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Stops the instance's gateway, waits until it is down, and asks for it to start again.
async fn stop_then_start(operator: &Operator<'_>) {
    assert_eq!(
        operator
            .post("/api/instances/tg/stop", json!({}))
            .await
            .status,
        StatusCode::OK
    );
    operator
        .wait_for("tg", Duration::from_secs(60), "stopped", |instance| {
            instance["phase"] == "stopped"
        })
        .await;
    assert_eq!(
        operator
            .post("/api/instances/tg/start", json!({}))
            .await
            .status,
        StatusCode::OK
    );
}

/// Restarts the instance's gateway (stop, then start) and waits until it is running.
async fn restart(operator: &Operator<'_>) {
    stop_then_start(operator).await;
    operator.wait_running("tg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_and_whatsapp_end_to_end() {
    let standin = TelegramStandIn::start(BOT_TOKEN, BOT_USERNAME).await;
    let data = tempfile::tempdir().unwrap();
    let mut options = PlatformOptions::new(data.path(), 29000);
    options
        .extra_env
        .push(("CLAWFLEET_TELEGRAM_API_ROOT".into(), standin.api_root()));
    let platform = Platform::start(options).unwrap();
    let operator = Operator::new(&platform);
    assert_eq!(
        operator
            .post("/api/instances", json!({"userId": "tg"}))
            .await
            .status,
        StatusCode::CREATED
    );
    operator.wait_running("tg").await;

    // An unknown instance is 404 on every channel route.
    for (method, path, body) in [
        ("POST", "telegram/setup", json!({"botToken": BOT_TOKEN})),
        ("GET", "telegram/status?probe=true", Value::Null),
        ("POST", "telegram/logout", json!({})),
        ("POST", "whatsapp/qr", json!({"force": true})),
        ("POST", "whatsapp/wait", json!({"timeoutMs": 1000})),
        ("GET", "whatsapp/status", Value::Null),
        ("GET", "pairing/list?channel=telegram", Value::Null),
        (
            "POST",
            "pairing/approve",
            json!({"channel": "telegram", "code": "ABCDEFGH"}),
        ),
    ] {
        let path = format!("/api/instances/nobody/{path}");
        let reply = if method == "GET" {
            operator.get(&path).await
        } else {
            operator.post(&path, body).await
        };
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }

    // A malformed token is refused before any call and never echoed.
    let bad = operator
        .post(
            "/api/instances/tg/telegram/setup",
            json!({"botToken": "12345:tooShortSecretValue"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(!String::from_utf8_lossy(&bad.body).contains("tooShortSecretValue"));
    assert!(standin.calls().is_empty());

    // Before setup, listing Telegram's pairing requests names the step that comes first;
    // WhatsApp's plugin is always loaded, so an unlinked WhatsApp simply has none.
    let early = operator
        .get("/api/instances/tg/pairing/list?channel=telegram")
        .await;
    let body = String::from_utf8_lossy(&early.body).into_owned();
    assert_eq!(early.status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert!(body.contains("telegram/setup"), "{body}");
    let early = operator
        .get("/api/instances/tg/pairing/list?channel=whatsapp")
        .await;
    assert_eq!(early.status, StatusCode::OK);
    assert_eq!(early.json()["requests"], json!([]));

    // Setup: the token is stored, redacted in the answer, and the bot starts polling.
    let setup = operator
        .post(
            "/api/instances/tg/telegram/setup",
            json!({"botToken": BOT_TOKEN}),
        )
        .await;
    assert_eq!(
        setup.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&setup.body)
    );
    assert_eq!(setup.json()["ok"], true);
    assert!(
        !String::from_utf8_lossy(&setup.body).contains(BOT_TOKEN),
        "the token was echoed"
    );
    assert!(
        standin
            .wait_for_calls("getUpdates", 2, MESSAGE_TIMEOUT)
            .await,
        "the bot never polled"
    );

    // Status with a live probe names the bot.
    let status = operator
        .get("/api/instances/tg/telegram/status?probe=true")
        .await;
    assert_eq!(status.status, StatusCode::OK);
    let status = status.json();
    assert_eq!(status["userId"], "tg");
    assert_eq!(status["telegram"]["running"], true, "{status}");
    assert_eq!(
        status["telegram"]["probe"]["bot"]["username"], BOT_USERNAME,
        "{status}"
    );
    assert_eq!(status["accounts"][0]["accountId"], "default");

    // A stranger writes; the bot answers with a pairing code; the list shows it.
    standin.send_private_message(4242, "Ada", "ada_l", "hello");
    let reply = standin
        .wait_for_message(4242, "Pairing code", MESSAGE_TIMEOUT)
        .await
        .expect("a pairing reply");
    let code = pairing_code(&reply);
    assert_eq!(code.len(), 8, "{reply}");
    let listed = operator
        .get("/api/instances/tg/pairing/list?channel=telegram")
        .await;
    assert_eq!(
        listed.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&listed.body)
    );
    let listed = listed.json();
    assert_eq!(listed["channel"], "telegram");
    let request = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|request| request["senderId"] == "4242")
        .expect("ada's request")
        .clone();
    assert_eq!(request["code"], code.as_str(), "{listed}");
    assert_eq!(request["id"].as_str().unwrap().len(), 32, "{request}");
    assert_eq!(request["metadata"]["username"], "ada_l");

    // Approve by the code, telling the sender.
    let approved = operator
        .post(
            "/api/instances/tg/pairing/approve",
            json!({"channel": "telegram", "code": code.to_lowercase(), "notify": true}),
        )
        .await;
    assert_eq!(
        approved.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&approved.body)
    );
    assert_eq!(approved.json()["approved"], true);
    assert_eq!(approved.json()["senderId"], "4242");
    standin
        .wait_for_message(4242, "access approved", MESSAGE_TIMEOUT)
        .await
        .expect("the approval notice");
    let again = operator
        .post(
            "/api/instances/tg/pairing/approve",
            json!({"channel": "telegram", "code": code}),
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::NOT_FOUND,
        "a used code: {}",
        String::from_utf8_lossy(&again.body)
    );

    // The approved sender's next message is accepted: the gateway starts answering (typing),
    // instead of sending a new pairing code.
    let polls_before = standin.calls_to("getUpdates").len();
    assert!(
        standin
            .wait_for_calls("getUpdates", polls_before + 1, MESSAGE_TIMEOUT)
            .await
    );
    standin.send_private_message(4242, "Ada", "ada_l", "hi again");
    assert!(
        standin
            .wait_for_calls("sendChatAction", 1, MESSAGE_TIMEOUT)
            .await,
        "the message was not taken up"
    );
    let codes_sent = standin
        .messages_to(4242)
        .iter()
        .filter(|text| text.contains("Pairing code"))
        .count();
    assert_eq!(codes_sent, 1, "an approved sender got another pairing code");

    // A second stranger, approved by request id.
    standin.send_private_message(5151, "Bob", "bob_b", "hey");
    standin
        .wait_for_message(5151, "Pairing code", MESSAGE_TIMEOUT)
        .await
        .expect("bob's pairing reply");
    let listed = operator
        .get("/api/instances/tg/pairing/list?channel=telegram")
        .await
        .json();
    let bob = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|request| request["senderId"] == "5151")
        .expect("bob's request")
        .clone();
    let approved = operator
        .post(
            "/api/instances/tg/pairing/approve",
            json!({"channel": "telegram", "requestId": bob["id"], "notify": true}),
        )
        .await;
    assert_eq!(
        approved.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&approved.body)
    );
    assert_eq!(approved.json()["notification"], "sent");
    standin
        .wait_for_message(5151, "access approved", MESSAGE_TIMEOUT)
        .await
        .expect("bob's approval notice");

    // Logout: gone now, and still gone after the gateway restarts.
    let logout = operator
        .post("/api/instances/tg/telegram/logout", json!({}))
        .await;
    assert_eq!(
        logout.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&logout.body)
    );
    assert_eq!(
        logout.json(),
        json!({"channel": "telegram", "cleared": true, "loggedOut": true})
    );
    wait_until(
        &operator,
        "/api/instances/tg/telegram/status",
        "telegram not configured",
        |status| status["telegram"]["configured"] == false,
    )
    .await;
    restart(&operator).await;
    let calls_after_restart = standin.calls().len();
    let status = wait_until(
        &operator,
        "/api/instances/tg/telegram/status",
        "status after restart",
        |_| true,
    )
    .await;
    assert_eq!(status["telegram"]["configured"], false, "{status}");
    assert_eq!(status["telegram"]["running"], false, "{status}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        standin.calls().len(),
        calls_after_restart,
        "the logged-out bot came back: {:?}",
        &standin.calls()[calls_after_restart..]
    );

    // Two setups racing on one instance both land.
    let other_token = "987654321:BBEhBOweik6ad9r_QXMENQjcrGbqCr4K-cd";
    let (first, second) = tokio::join!(
        operator.post(
            "/api/instances/tg/telegram/setup",
            json!({"botToken": BOT_TOKEN, "accountId": "first"})
        ),
        operator.post(
            "/api/instances/tg/telegram/setup",
            json!({"botToken": other_token, "accountId": "second"})
        ),
    );
    assert_eq!(
        first.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(
        second.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    let config = operator
        .post("/api/instances/tg/rpc", json!({"method": "config.get"}))
        .await
        .json();
    let accounts = &config["config"]["channels"]["telegram"]["accounts"];
    assert!(
        accounts.get("first").is_some() && accounts.get("second").is_some(),
        "a racing setup was lost: {accounts}"
    );
    // The second bot's token is unknown to Telegram (the stand-in), which makes the gateway
    // unready, as it should; log both accounts out again.
    for account in ["first", "second"] {
        let logout = operator
            .post(
                "/api/instances/tg/telegram/logout",
                json!({"accountId": account}),
            )
            .await;
        assert_eq!(
            logout.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&logout.body)
        );
    }

    // A setup while the gateway restarts succeeds or fails with a clear retryable error.
    stop_then_start(&operator).await;
    let during = operator
        .post(
            "/api/instances/tg/telegram/setup",
            json!({"botToken": BOT_TOKEN}),
        )
        .await;
    let retryable = matches!(
        during.status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::CONFLICT
    ) && during.headers.contains_key(http::header::RETRY_AFTER);
    assert!(
        during.status == StatusCode::OK || retryable,
        "{} {:?}",
        during.status,
        String::from_utf8_lossy(&during.body)
    );
    operator.wait_running("tg").await;

    // WhatsApp: the plugin is there; with no route to WhatsApp the answers are clear and timely.
    let started = Instant::now();
    let qr = operator
        .post(
            "/api/instances/tg/whatsapp/qr",
            json!({"force": true, "timeoutMs": 10000}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "qr took {:?}",
        started.elapsed()
    );
    let body = String::from_utf8_lossy(&qr.body).to_string();
    assert!(
        !body.contains("not available"),
        "the whatsapp plugin is missing: {body}"
    );
    if qr.status == StatusCode::OK {
        assert!(
            qr.json()["qrDataUrl"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,"),
            "{body}"
        );
    } else {
        assert_eq!(qr.status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            qr.json()["error"]
                .as_str()
                .unwrap()
                .contains("whatsapp login"),
            "{body}"
        );
    }
    let started = Instant::now();
    let wait = operator
        .post(
            "/api/instances/tg/whatsapp/wait",
            json!({"timeoutMs": 3000}),
        )
        .await;
    assert_eq!(
        wait.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&wait.body)
    );
    assert_eq!(wait.json()["connected"], false);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "wait took {:?}",
        started.elapsed()
    );
    let status = operator.get("/api/instances/tg/whatsapp/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(
        status.json()["whatsapp"]["linked"],
        false,
        "{}",
        status.json()
    );
}
