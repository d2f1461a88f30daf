//! Chats and messages as Telegram renders them, the ids they get, and the text a user
//! sees of a message.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::{
    params::{string_param, value_as_i64},
    routes::bad_request,
    state::{KnownUser, Shared},
};

/// The chat a call targets, which must be a user who wrote to the bot.
pub(super) fn known_chat(
    shared: &Shared,
    params: &Map<String, Value>,
) -> Result<KnownUser, (u16, String)> {
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

pub(super) fn next_message_id(shared: &Shared) -> i64 {
    let mut state = shared.lock();
    let id = state.next_message_id;
    state.next_message_id += 1;
    id
}

pub(super) fn bot_message(shared: &Shared, user: &KnownUser, message_id: i64) -> Value {
    json!({
        "message_id": message_id,
        "from": shared.bot_user(),
        "chat": private_chat(user),
        "date": unix_now(),
    })
}

pub(super) fn private_chat(user: &KnownUser) -> Value {
    json!({
        "id": user.id,
        "first_name": user.first_name,
        "username": user.username,
        "type": "private",
    })
}

/// The text a user sees: with `parse_mode` `HTML`, tags removed and entities decoded.
pub(super) fn visible_text(text: &str, params: &Map<String, Value>) -> String {
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

pub(super) fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_markup_is_not_visible() {
        let params = Map::from_iter([("parse_mode".to_owned(), json!("HTML"))]);
        assert_eq!(
            visible_text("<pre><code>AB&amp;C</code></pre>", &params),
            "AB&C"
        );
    }
}
