//! Every Bot API method but `getUpdates`, answered as Telegram answers them for a bot
//! talking to users in private chats.

use serde_json::{Map, Value, json};

use super::{
    messages::{
        bot_message, known_chat, next_message_id, private_chat, unix_now, utf16_len, visible_text,
    },
    params::{bool_param, int_param, list_param, list_value_param, string_param},
    routes::{ApiResult, bad_request},
    state::{SentMessage, Shared},
};

/// Longest text `sendMessage` accepts, in UTF-16 code units like Telegram counts.
const MAX_MESSAGE_LENGTH: usize = 4096;

/// Every method but `getUpdates`.
pub(super) fn call(shared: &Shared, method: &str, params: &Map<String, Value>) -> ApiResult {
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
