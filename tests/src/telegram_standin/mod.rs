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

mod control; // the handle tests hold: start, queue user messages, read calls, wait
mod long_poll; // getUpdates: offsets, limits, long polling, conflicts, allowed_updates
mod messages; // chats and messages as JSON, the ids they get, the text a user sees
mod methods; // every Bot API method but getUpdates
mod multipart; // multipart/form-data bodies (file uploads)
mod params; // parameters from the query string and the body, read as Telegram reads them
mod routes; // the one HTTP route: token check, recording, dispatch, the JSON envelope
mod state; // the bot, its queued updates, recorded calls and sent messages

pub use control::TelegramStandIn;
pub use state::{RecordedCall, SentMessage};
