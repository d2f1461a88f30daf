//! The Telegram Bot API stand-in against a real `openclaw gateway run` (no platform): setup
//! through `config.patch` with `apiRoot`, a probed status, strangers' DMs answered with
//! pairing codes, the codes listed (RPC and CLI) and approved (CLI by code, RPC by request id)
//! with notifications, the sender's next message accepted, and a logout that stays logged out
//! across a gateway restart. The assertions pin the gateway's observable behaviour that the
//! platform's channel service builds on (openclaw 2026.9.6).
//!
//! Also: the stand-in on its own, spoken to over raw HTTP, answers in Telegram's wire format.

mod flow; // the whole Telegram flow against a real gateway
mod gateway; // one `openclaw gateway run` per test, and calls to it
mod pairing; // what the pairing replies look like
mod wire_format; // the stand-in's own wire format, without a gateway

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
};

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
