//! The state of the one bot a stand-in serves: its identity, queued updates, known
//! users, recorded calls and sent messages, and the signals waiting polls watch.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Mutex,
};

use serde_json::{Value, json};
use tokio::sync::watch;

/// The first `update_id` handed out (Telegram's are large positive numbers).
const FIRST_UPDATE_ID: i64 = 815_000_001;

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
pub(super) struct KnownUser {
    pub(super) id: i64,
    pub(super) first_name: String,
    pub(super) username: String,
}

#[derive(Default)]
pub(super) struct BotState {
    /// Queued, unconfirmed updates in `update_id` order.
    pub(super) updates: VecDeque<Value>,
    pub(super) next_update_id: i64,
    pub(super) next_message_id: i64,
    /// `allowed_updates` from the last `getUpdates` or `setWebhook` that gave it.
    pub(super) allowed_updates: Vec<String>,
    pub(super) webhook_url: String,
    /// `setMyCommands` per scope and language (`"<scope json>|<language_code>"`).
    pub(super) commands: BTreeMap<String, Value>,
    pub(super) users: HashMap<i64, KnownUser>,
    pub(super) calls: Vec<RecordedCall>,
    pub(super) sent: Vec<SentMessage>,
    /// The newest `getUpdates` request; an older one still waiting is ended with 409.
    pub(super) newest_poll: u64,
}

pub(super) struct Shared {
    pub(super) token: String,
    pub(super) bot_id: i64,
    pub(super) username: String,
    pub(super) first_name: String,
    pub(super) state: Mutex<BotState>,
    /// Bumped whenever an update is queued, a poll starts or the stand-in stops, so that
    /// waiting long polls look again.
    pub(super) updates_changed: watch::Sender<u64>,
    /// Bumped whenever the bot sends a message.
    pub(super) messages_changed: watch::Sender<u64>,
    pub(super) stopped: watch::Sender<bool>,
}

impl Shared {
    /// A bot with nothing queued, named `username` (also its first name).
    pub(super) fn new(token: &str, bot_id: i64, username: &str) -> Self {
        Self {
            token: token.to_owned(),
            bot_id,
            username: username.to_owned(),
            first_name: username.to_owned(),
            state: Mutex::new(BotState {
                next_update_id: FIRST_UPDATE_ID,
                next_message_id: 1,
                ..BotState::default()
            }),
            updates_changed: watch::Sender::new(0),
            messages_changed: watch::Sender::new(0),
            stopped: watch::Sender::new(false),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, BotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn bot_user(&self) -> Value {
        json!({
            "id": self.bot_id,
            "is_bot": true,
            "first_name": self.first_name,
            "username": self.username,
        })
    }
}
