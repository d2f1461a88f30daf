//! The stand-in alone, spoken to over raw HTTP/1.1: paths, tokens, bodies of every
//! content type, long polling and the error envelope, as Telegram answers them.

use std::time::{Duration, Instant};

use clawfleet_tests::telegram_standin::TelegramStandIn;
use serde_json::{Value, json};

use crate::random_alphanumeric;

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
