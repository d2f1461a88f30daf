//! The pairing reply a stranger gets from the bot, and the code in it.

/// The pairing reply the bot sends a stranger (`parse_mode` HTML).
pub(super) fn expected_pairing_reply(sender: i64, code: &str) -> String {
    format!(
        "OpenClaw: access not configured.\n\nYour Telegram user id: {sender}\nPairing code:\n\n\
         <pre><code>{code}\n</code></pre>\nAsk the bot owner to approve with:\n\n\
         <pre><code>openclaw pairing approve telegram {code}\n</code></pre>"
    )
}

pub(super) const APPROVED_MESSAGE: &str =
    "✅ OpenClaw access approved. Send a message to start chatting.";
/// Pairing codes: 8 characters from this alphabet (no 0, O, 1, I).
pub(super) const CODE_ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The code between the first `<pre><code>` and `</code>` of a pairing reply.
pub(super) fn pairing_code(text: &str) -> String {
    let after = text
        .split("<pre><code>")
        .nth(1)
        .expect("a <pre><code> block");
    let code = after.split("</code>").next().unwrap().trim().to_owned();
    assert_eq!(code.len(), 8, "{text:?}");
    assert!(code.chars().all(|c| CODE_ALPHABET.contains(c)), "{code}");
    code
}
