//! A Telegram Bot API stand-in on loopback, for gateways whose `channels.telegram.apiRoot`
//! points at it.
//!
//! It speaks the real wire format: `POST` or `GET` `/bot<token>/<method>`, parameters in
//! the query string and/or a JSON, `application/x-www-form-urlencoded` or
//! `multipart/form-data` body, answers `{"ok":true,"result":...}` or
//! `{"ok":false,"error_code":...,"description":...}` with the matching HTTP status. One bot
//! (one token) lives on each stand-in; another token gets 401 `Unauthorized`.
//!
//! `getUpdates` is real long polling: `offset` confirms (drops) earlier updates, `limit`
//! caps the batch, `timeout` blocks until an update is queued or the time passes, and
//! `allowed_updates` is remembered across calls as Telegram does. A second `getUpdates`
//! while one is waiting ends the first with 409 `Conflict`, and `getUpdates` while a
//! webhook is set is 409 too, as on Telegram.
//!
//! Every call with the bot's token is recorded; messages the bot sends are kept per chat.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// The first `update_id` handed out (Telegram's are large positive numbers).
const FIRST_UPDATE_ID: i64 = 815_000_001;
/// `getUpdates` `limit` bounds and default.
const MAX_UPDATES_LIMIT: usize = 100;
/// Longest text `sendMessage` accepts, in UTF-16 code units like Telegram counts.
const MAX_MESSAGE_LENGTH: usize = 4096;
/// Update kinds Telegram leaves out when `allowed_updates` is empty or never set.
const OPT_IN_UPDATE_KINDS: &[&str] = &["chat_member", "message_reaction", "message_reaction_count"];

/// One Bot API call the stand-in received with its bot's token.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedCall {
    /// The method as written in the URL (`getMe`, `sendMessage`, ...).
    pub method: String,
    /// The parameters: query string and body merged into one object. JSON bodies keep their
    /// types; form and multipart fields are strings as sent (files become
    /// `{"filename":..,"size":..}`). `{}` when there were none.
    pub body: Value,
    /// `GET` or `POST`.
    pub http_method: String,
    /// The request's `Content-Type`, when it had one.
    pub content_type: Option<String>,
}

/// One message the bot sent (`sendMessage`).
#[derive(Clone, Debug, PartialEq)]
pub struct SentMessage {
    /// The chat it went to.
    pub chat_id: i64,
    /// The `message_id` the stand-in gave it.
    pub message_id: i64,
    /// The text exactly as sent (markup included).
    pub text: String,
    /// `parse_mode` when given (`HTML`, `MarkdownV2`, ...).
    pub parse_mode: Option<String>,
}

/// A private chat the stand-in knows because its user wrote to the bot.
#[derive(Clone, Debug)]
struct KnownUser {
    id: i64,
    first_name: String,
    username: String,
}

#[derive(Default)]
struct BotState {
    /// Queued, unconfirmed updates in `update_id` order.
    updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    /// `allowed_updates` from the last `getUpdates` or `setWebhook` that gave it.
    allowed_updates: Vec<String>,
    webhook_url: String,
    /// `setMyCommands` per scope and language (`"<scope json>|<language_code>"`).
    commands: BTreeMap<String, Value>,
    users: HashMap<i64, KnownUser>,
    calls: Vec<RecordedCall>,
    sent: Vec<SentMessage>,
    /// The newest `getUpdates` request; an older one still waiting is ended with 409.
    newest_poll: u64,
}

struct Shared {
    token: String,
    bot_id: i64,
    username: String,
    first_name: String,
    state: Mutex<BotState>,
    /// Bumped whenever an update is queued, a poll starts or the stand-in stops, so that
    /// waiting long polls look again.
    updates_changed: watch::Sender<u64>,
    /// Bumped whenever the bot sends a message.
    messages_changed: watch::Sender<u64>,
    stopped: watch::Sender<bool>,
}

/// A fake Telegram Bot API server for one bot. Dropping it stops the server.
pub struct TelegramStandIn {
    shared: Arc<Shared>,
    address: SocketAddr,
}

impl TelegramStandIn {
    /// Starts a stand-in for the bot with this token (`<bot id>:<secret>`; the digits before
    /// the colon become the bot's user id) and username, on `127.0.0.1:<free port>`.
    pub async fn start(bot_token: &str, bot_username: &str) -> TelegramStandIn {
        let bot_id = bot_token
            .split_once(':')
            .and_then(|(id, _)| id.parse::<i64>().ok())
            .unwrap_or_else(|| {
                panic!("a bot token looks like <digits>:<secret>, got {bot_token:?}")
            });
        let shared = Arc::new(Shared {
            token: bot_token.to_owned(),
            bot_id,
            username: bot_username.to_owned(),
            first_name: bot_username.to_owned(),
            state: Mutex::new(BotState {
                next_update_id: FIRST_UPDATE_ID,
                next_message_id: 1,
                ..BotState::default()
            }),
            updates_changed: watch::Sender::new(0),
            messages_changed: watch::Sender::new(0),
            stopped: watch::Sender::new(false),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Telegram stand-in on loopback");
        let address = listener.local_addr().expect("stand-in address");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let mut stopped = shared.stopped.subscribe();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        TelegramStandIn { shared, address }
    }

    /// The value for `channels.telegram.apiRoot`: `http://127.0.0.1:<port>`, no trailing slash.
    pub fn api_root(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The bot's token.
    pub fn bot_token(&self) -> &str {
        &self.shared.token
    }

    /// The bot's user id (the token's digits).
    pub fn bot_id(&self) -> i64 {
        self.shared.bot_id
    }

    /// Queues an Update as Telegram would deliver it when this user writes `text` to the bot
    /// in their private chat (chat id = user id). A text starting with `/` carries a
    /// `bot_command` entity.
    pub fn send_private_message(
        &self,
        from_user_id: i64,
        first_name: &str,
        username: &str,
        text: &str,
    ) {
        let mut state = self.shared.lock();
        let user = KnownUser {
            id: from_user_id,
            first_name: first_name.to_owned(),
            username: username.to_owned(),
        };
        state.users.insert(from_user_id, user.clone());
        let update_id = state.next_update_id;
        state.next_update_id += 1;
        let message_id = state.next_message_id;
        state.next_message_id += 1;
        let mut message = json!({
            "message_id": message_id,
            "from": {
                "id": user.id,
                "is_bot": false,
                "first_name": user.first_name,
                "username": user.username,
                "language_code": "en",
            },
            "chat": private_chat(&user),
            "date": unix_now(),
            "text": text,
        });
        if let Some(command) = text.strip_prefix('/') {
            let name_length = command.find(char::is_whitespace).unwrap_or(command.len());
            let length = utf16_len(&text[..name_length + 1]);
            message["entities"] = json!([{"offset": 0, "length": length, "type": "bot_command"}]);
        }
        state
            .updates
            .push_back(json!({"update_id": update_id, "message": message}));
        drop(state);
        self.shared
            .updates_changed
            .send_modify(|version| *version += 1);
    }

    /// Every call received with the bot's token, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.lock().calls.clone()
    }

    /// The calls of one method (exact name as in the URL), oldest first.
    pub fn calls_to(&self, method: &str) -> Vec<RecordedCall> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|call| call.method == method)
            .cloned()
            .collect()
    }

    /// Every message the bot sent, oldest first.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.lock().sent.clone()
    }

    /// The texts the bot sent to this chat, oldest first.
    pub fn messages_to(&self, chat_id: i64) -> Vec<String> {
        self.shared
            .lock()
            .sent
            .iter()
            .filter(|message| message.chat_id == chat_id)
            .map(|message| message.text.clone())
            .collect()
    }

    /// Waits (at most `timeout`) for a message the bot sends to `chat_id` whose text contains
    /// `contains`, and returns the text of the first such message (one sent earlier counts).
    pub async fn wait_for_message(
        &self,
        chat_id: i64,
        contains: &str,
        timeout: Duration,
    ) -> Option<String> {
        let mut changed = self.shared.messages_changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self
                .messages_to(chat_id)
                .into_iter()
                .find(|text| text.contains(contains));
            if found.is_some() {
                return found;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Waits (at most `timeout`) until `count` calls of `method` have arrived in total.
    pub async fn wait_for_calls(&self, method: &str, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.calls_to(method).len() >= count {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Updates queued and not yet confirmed by a `getUpdates` offset.
    pub fn pending_updates(&self) -> usize {
        self.shared.lock().updates.len()
    }
}

impl Drop for TelegramStandIn {
    fn drop(&mut self) {
        self.shared.stopped.send_replace(true);
        self.shared
            .updates_changed
            .send_modify(|version| *version += 1);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, BotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bot_user(&self) -> Value {
        json!({
            "id": self.bot_id,
            "is_bot": true,
            "first_name": self.first_name,
            "username": self.username,
        })
    }
}

/// What a Bot API method answers: a result, or an error code and description.
type ApiResult = Result<Value, (u16, String)>;

fn bad_request(description: &str) -> (u16, String) {
    (400, format!("Bad Request: {description}"))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((token, api_method)) = split_path(uri.path()) else {
        return reply(Err((404, "Not Found".to_owned())));
    };
    if token != shared.token {
        return reply(Err((401, "Unauthorized".to_owned())));
    }
    if method != Method::GET && method != Method::POST {
        return reply(Err((404, "Not Found".to_owned())));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let params = match parse_params(uri.query(), content_type.as_deref(), &body) {
        Ok(params) => params,
        Err(description) => return reply(Err(bad_request(&description))),
    };
    shared.lock().calls.push(RecordedCall {
        method: api_method.to_owned(),
        body: Value::Object(params.clone()),
        http_method: method.as_str().to_owned(),
        content_type,
    });
    // Telegram matches method names case-insensitively.
    let result = match api_method.to_ascii_lowercase().as_str() {
        "getupdates" => get_updates(&shared, &params).await,
        other => call(&shared, other, &params),
    };
    reply(result)
}

/// `/bot<token>/<method>` → (token, method).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    if token.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((token, method))
}

fn reply(result: ApiResult) -> Response {
    let (status, body) = match result {
        Ok(result) => (200, json!({"ok": true, "result": result})),
        Err((code, description)) => (
            code,
            json!({"ok": false, "error_code": code, "description": description}),
        ),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Every method but `getUpdates`.
fn call(shared: &Shared, method: &str, params: &Map<String, Value>) -> ApiResult {
    match method {
        "getme" => Ok(json!({
            "id": shared.bot_id,
            "is_bot": true,
            "first_name": shared.first_name,
            "username": shared.username,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "can_connect_to_business": false,
            "has_main_web_app": false,
        })),
        "logout" | "close" => Ok(json!(true)),
        "setwebhook" => {
            let url = string_param(params, "url").unwrap_or_default();
            let mut state = shared.lock();
            if let Some(allowed) = list_param(params, "allowed_updates") {
                state.allowed_updates = allowed;
            }
            if bool_param(params, "drop_pending_updates") {
                state.updates.clear();
            }
            state.webhook_url = url;
            Ok(json!(true))
        }
        "deletewebhook" => {
            let mut state = shared.lock();
            if bool_param(params, "drop_pending_updates") {
                state.updates.clear();
            }
            state.webhook_url.clear();
            Ok(json!(true))
        }
        "getwebhookinfo" => {
            let state = shared.lock();
            let mut info = json!({
                "url": state.webhook_url,
                "has_custom_certificate": false,
                "pending_update_count": state.updates.len(),
            });
            if !state.allowed_updates.is_empty() {
                info["allowed_updates"] = json!(state.allowed_updates);
            }
            Ok(info)
        }
        "setmycommands" => {
            let Some(commands) = list_value_param(params, "commands") else {
                return Err(bad_request("parameter \"commands\" is required"));
            };
            shared
                .lock()
                .commands
                .insert(commands_key(params), Value::Array(commands));
            Ok(json!(true))
        }
        "deletemycommands" => {
            shared.lock().commands.remove(&commands_key(params));
            Ok(json!(true))
        }
        "getmycommands" => Ok(shared
            .lock()
            .commands
            .get(&commands_key(params))
            .cloned()
            .unwrap_or_else(|| json!([]))),
        "sendmessage" => send_message(shared, params),
        "sendchataction" => {
            known_chat(shared, params)?;
            if string_param(params, "action").is_none_or(|action| action.is_empty()) {
                return Err(bad_request("action is empty"));
            }
            Ok(json!(true))
        }
        "setmessagereaction" | "deletemessage" | "pinchatmessage" | "unpinchatmessage" => {
            known_chat(shared, params)?;
            Ok(json!(true))
        }
        "editmessagetext" => {
            let user = known_chat(shared, params)?;
            let text = string_param(params, "text").unwrap_or_default();
            if text.is_empty() {
                return Err(bad_request("message text is empty"));
            }
            let mut message =
                bot_message(shared, &user, int_param(params, "message_id").unwrap_or(0));
            message["text"] = json!(visible_text(&text, params));
            message["edit_date"] = json!(unix_now());
            Ok(message)
        }
        "editmessagereplymarkup" | "editmessagecaption" => {
            let user = known_chat(shared, params)?;
            Ok(bot_message(
                shared,
                &user,
                int_param(params, "message_id").unwrap_or(0),
            ))
        }
        "sendphoto" | "senddocument" | "sendaudio" | "sendvideo" | "sendvoice"
        | "sendanimation" | "sendsticker" | "sendlocation" | "sendvenue" | "sendpoll" => {
            let user = known_chat(shared, params)?;
            let message_id = next_message_id(shared);
            let mut message = bot_message(shared, &user, message_id);
            if let Some(caption) = string_param(params, "caption") {
                message["caption"] = json!(caption);
            }
            Ok(message)
        }
        "sendmediagroup" => {
            let user = known_chat(shared, params)?;
            let count = list_value_param(params, "media").map_or(1, |media| media.len().max(1));
            Ok(Value::Array(
                (0..count)
                    .map(|_| bot_message(shared, &user, next_message_id(shared)))
                    .collect(),
            ))
        }
        "getchat" => {
            let user = known_chat(shared, params)?;
            let mut chat = private_chat(&user);
            chat["accent_color_id"] = json!(0);
            chat["max_reaction_count"] = json!(11);
            Ok(chat)
        }
        "getchatmember" => {
            let user_id =
                int_param(params, "user_id").ok_or_else(|| bad_request("user not found"))?;
            let user = if user_id == shared.bot_id {
                shared.bot_user()
            } else {
                let known = shared.lock().users.get(&user_id).cloned();
                let known = known.ok_or_else(|| bad_request("user not found"))?;
                json!({"id": known.id, "is_bot": false, "first_name": known.first_name, "username": known.username})
            };
            Ok(json!({"status": "member", "user": user}))
        }
        "answercallbackquery"
        | "setchatmenubutton"
        | "setmydescription"
        | "setmyshortdescription"
        | "setmyname"
        | "setmydefaultadministratorrights" => Ok(json!(true)),
        "getfile" => Err(bad_request("invalid file_id")),
        _ => Err((404, "Not Found: method not found".to_owned())),
    }
}

fn send_message(shared: &Shared, params: &Map<String, Value>) -> ApiResult {
    let user = known_chat(shared, params)?;
    let text = string_param(params, "text").unwrap_or_default();
    if text.trim().is_empty() {
        return Err(bad_request("message text is empty"));
    }
    let visible = visible_text(&text, params);
    if utf16_len(&visible) > MAX_MESSAGE_LENGTH {
        return Err(bad_request("message is too long"));
    }
    let message_id = next_message_id(shared);
    let parse_mode = string_param(params, "parse_mode").filter(|mode| !mode.is_empty());
    shared.lock().sent.push(SentMessage {
        chat_id: user.id,
        message_id,
        text,
        parse_mode,
    });
    shared.messages_changed.send_modify(|version| *version += 1);
    let mut message = bot_message(shared, &user, message_id);
    message["text"] = json!(visible);
    Ok(message)
}

/// `getUpdates`: confirm by `offset`, then answer what is queued, waiting up to `timeout`
/// seconds for something to arrive.
async fn get_updates(shared: &Shared, params: &Map<String, Value>) -> ApiResult {
    let offset = int_param(params, "offset").unwrap_or(0);
    let limit = int_param(params, "limit").map_or(MAX_UPDATES_LIMIT, |limit| {
        limit.clamp(1, MAX_UPDATES_LIMIT as i64) as usize
    });
    let timeout = Duration::from_secs(int_param(params, "timeout").unwrap_or(0).max(0) as u64);
    let allowed = list_param(params, "allowed_updates");
    let mut changed = shared.updates_changed.subscribe();
    let poll = {
        let mut state = shared.lock();
        if !state.webhook_url.is_empty() {
            return Err((
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first".to_owned(),
            ));
        }
        if let Some(allowed) = allowed {
            state.allowed_updates = allowed;
        }
        if offset > 0 {
            state
                .updates
                .retain(|update| update["update_id"].as_i64().unwrap_or(0) >= offset);
        } else if offset < 0 {
            let keep = offset.unsigned_abs() as usize;
            let drop = state.updates.len().saturating_sub(keep);
            state.updates.drain(..drop);
        }
        state.newest_poll += 1;
        state.newest_poll
    };
    // A newer poll ends any older one still waiting (it sees `newest_poll` move on).
    shared.updates_changed.send_modify(|version| *version += 1);
    changed.borrow_and_update();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        {
            let mut state = shared.lock();
            if state.newest_poll != poll {
                return Err((
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".to_owned(),
                ));
            }
            let allowed = state.allowed_updates.clone();
            // Updates of kinds not allowed are never delivered: Telegram drops them.
            state
                .updates
                .retain(|update| update_is_allowed(update, &allowed));
            if !state.updates.is_empty() || timeout.is_zero() || *shared.stopped.borrow() {
                return Ok(Value::Array(
                    state.updates.iter().take(limit).cloned().collect(),
                ));
            }
        }
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            return Ok(json!([]));
        }
    }
}

fn update_is_allowed(update: &Value, allowed: &[String]) -> bool {
    let Some(kind) = update
        .as_object()
        .and_then(|fields| fields.keys().find(|key| *key != "update_id"))
    else {
        return false;
    };
    if allowed.is_empty() {
        !OPT_IN_UPDATE_KINDS.contains(&kind.as_str())
    } else {
        allowed.iter().any(|allowed| allowed == kind)
    }
}

/// The chat a call targets, which must be a user who wrote to the bot.
fn known_chat(shared: &Shared, params: &Map<String, Value>) -> Result<KnownUser, (u16, String)> {
    let state = shared.lock();
    let found = match params.get("chat_id") {
        None | Some(Value::Null) => return Err(bad_request("chat_id is empty")),
        Some(Value::String(text)) if text.starts_with('@') => state
            .users
            .values()
            .find(|user| user.username.eq_ignore_ascii_case(&text[1..])),
        Some(value) => value_as_i64(value).and_then(|id| state.users.get(&id)),
    };
    found.cloned().ok_or_else(|| bad_request("chat not found"))
}

fn next_message_id(shared: &Shared) -> i64 {
    let mut state = shared.lock();
    let id = state.next_message_id;
    state.next_message_id += 1;
    id
}

fn bot_message(shared: &Shared, user: &KnownUser, message_id: i64) -> Value {
    json!({
        "message_id": message_id,
        "from": shared.bot_user(),
        "chat": private_chat(user),
        "date": unix_now(),
    })
}

fn private_chat(user: &KnownUser) -> Value {
    json!({
        "id": user.id,
        "first_name": user.first_name,
        "username": user.username,
        "type": "private",
    })
}

fn commands_key(params: &Map<String, Value>) -> String {
    let scope = match params.get("scope") {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
        Some(value) => value.clone(),
        None => Value::Null,
    };
    let scope = if scope.is_null() {
        json!({"type": "default"})
    } else {
        scope
    };
    let language = string_param(params, "language_code").unwrap_or_default();
    format!("{scope}|{language}")
}

/// The text a user sees: with `parse_mode` `HTML`, tags removed and entities decoded.
fn visible_text(text: &str, params: &Map<String, Value>) -> String {
    let html =
        string_param(params, "parse_mode").is_some_and(|mode| mode.eq_ignore_ascii_case("html"));
    if !html {
        return text.to_owned();
    }
    let mut visible = String::with_capacity(text.len());
    let mut in_tag = false;
    for character in text.chars() {
        match character {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => visible.push(character),
            _ => {}
        }
    }
    visible
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

// --- parameters -------------------------------------------------------------------------

fn value_as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn int_param(params: &Map<String, Value>, name: &str) -> Option<i64> {
    params.get(name).and_then(value_as_i64)
}

fn string_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn bool_param(params: &Map<String, Value>, name: &str) -> bool {
    match params.get(name) {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text == "true" || text == "1",
        Some(Value::Number(number)) => number.as_i64().is_some_and(|number| number != 0),
        _ => false,
    }
}

/// A JSON array parameter, sent as an array (JSON body) or as its JSON text (forms).
fn list_value_param(params: &Map<String, Value>, name: &str) -> Option<Vec<Value>> {
    match params.get(name)? {
        Value::Array(items) => Some(items.clone()),
        Value::String(text) => match serde_json::from_str(text) {
            Ok(Value::Array(items)) => Some(items),
            _ => None,
        },
        _ => None,
    }
}

fn list_param(params: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    list_value_param(params, name).map(|items| {
        items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect()
    })
}

/// Query string and body, merged (the body wins).
fn parse_params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    if let Some(query) = query {
        params.extend(parse_form(query.as_bytes()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media_type.as_str() {
        "application/json" => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            Ok(_) => return Err("JSON body must be an object".to_owned()),
            Err(error) => return Err(format!("can't parse JSON body: {error}")),
        },
        "multipart/form-data" => {
            let boundary = content_type
                .and_then(|value| {
                    value
                        .split(';')
                        .filter_map(|part| part.trim().strip_prefix("boundary="))
                        .next()
                })
                .map(|boundary| boundary.trim_matches('"').to_owned())
                .ok_or_else(|| "multipart body without boundary".to_owned())?;
            params.extend(parse_multipart(body, &boundary)?);
        }
        // Telegram reads a body of any other type as a form.
        _ => params.extend(parse_form(body)),
    }
    Ok(params)
}

fn parse_form(text: &[u8]) -> Map<String, Value> {
    form_urlencoded::parse(text)
        .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
        .collect()
}

fn parse_multipart(body: &[u8], boundary: &str) -> Result<Map<String, Value>, String> {
    let delimiter = format!("--{boundary}");
    let mut params = Map::new();
    for part in split_bytes(body, delimiter.as_bytes()).into_iter().skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = find_bytes(part, b"\r\n\r\n") else {
            return Err("malformed multipart part".to_owned());
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let content = &part[split + 4..];
        let disposition = head
            .lines()
            .find(|line| {
                line.to_ascii_lowercase()
                    .starts_with("content-disposition:")
            })
            .unwrap_or_default();
        let name = disposition_field(disposition, "name")
            .ok_or_else(|| "multipart part without a name".to_owned())?;
        let value = match disposition_field(disposition, "filename") {
            Some(filename) => json!({"filename": filename, "size": content.len()}),
            None => Value::String(String::from_utf8_lossy(content).into_owned()),
        };
        params.insert(name, value);
    }
    Ok(params)
}

fn disposition_field(disposition: &str, field: &str) -> Option<String> {
    disposition.split(';').find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        (key.eq_ignore_ascii_case(field)).then(|| value.trim_matches('"').to_owned())
    })
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn split_bytes<'a>(mut haystack: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = find_bytes(haystack, needle) {
        parts.push(&haystack[..at]);
        haystack = &haystack[at + needle.len()..];
    }
    parts.push(haystack);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_multipart_parse() {
        let form = parse_params(
            Some("chat_id=42"),
            Some("application/x-www-form-urlencoded"),
            b"text=hello+w%C3%B6rld&parse_mode=HTML",
        )
        .unwrap();
        assert_eq!(form["chat_id"], "42");
        assert_eq!(form["text"], "hello wörld");
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n42\r\n--XX\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nabc\r\n--XX--\r\n";
        let multipart = parse_params(None, Some("multipart/form-data; boundary=XX"), body).unwrap();
        assert_eq!(multipart["chat_id"], "42");
        assert_eq!(multipart["photo"], json!({"filename": "a.png", "size": 3}));
        let malformed = parse_form(b"a=100%&b=%4");
        assert_eq!(
            (&malformed["a"], &malformed["b"]),
            (&json!("100%"), &json!("%4"))
        );
    }

    #[test]
    fn html_markup_is_not_visible() {
        let params = Map::from_iter([("parse_mode".to_owned(), json!("HTML"))]);
        assert_eq!(
            visible_text("<pre><code>AB&amp;C</code></pre>", &params),
            "AB&C"
        );
    }
}
