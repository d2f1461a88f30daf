//! The handle a test holds: starts the stand-in, plays the user's side (queued
//! messages) and reads what the bot did (calls, sent messages), with bounded waits.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use serde_json::json;

use super::{
    messages::{private_chat, unix_now, utf16_len},
    routes::handle,
    state::{KnownUser, RecordedCall, SentMessage, Shared},
};

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
        let shared = Arc::new(Shared::new(bot_token, bot_id, bot_username));
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
