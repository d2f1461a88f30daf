//! Input checks that run before anything touches the database: emails, passwords and
//! display names.
//!
//! Emails are deliberately narrower than RFC 5321: ASCII only, and a local part of
//! letters, digits and `. _ % + -`. That refuses quotes, SQL and shell metacharacters,
//! full-width or look-alike `@`, bidi overrides and control characters, which real
//! sign-ups never need and which make stored addresses ambiguous to people.

use std::fmt;

/// Longest accepted address (RFC 5321 path limit less the angle brackets).
pub const MAX_EMAIL_LENGTH: usize = 254;
/// Longest local part (RFC 5321).
pub const MAX_EMAIL_LOCAL_LENGTH: usize = 64;
/// Shortest accepted password, in characters (docs/product/app-api.md#email-and-password).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes: bounds the hashing work one request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 256;
/// Longest accepted display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A normalised (trimmed, lowercased) and validated email address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises `raw` (trim, lowercase) and checks its syntax.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let normalised = raw.trim().to_lowercase();
        if normalised.is_empty() {
            return Err("email is required");
        }
        if normalised.len() > MAX_EMAIL_LENGTH {
            return Err("email is too long");
        }
        if !normalised.is_ascii() {
            return Err("email must be plain ascii");
        }
        let (local, domain) = normalised
            .split_once('@')
            .ok_or("email must look like name@example.com")?;
        if !valid_local_part(local) || !valid_domain(domain) {
            return Err("email must look like name@example.com");
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

fn valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_EMAIL_LOCAL_LENGTH
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|byte| {
            byte.is_ascii_lowercase()
                || byte.is_ascii_digit()
                || matches!(byte, b'.' | b'_' | b'%' | b'+' | b'-')
        })
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
    };
    let top_level_is_alphabetic = labels
        .last()
        .is_some_and(|label| label.len() >= 2 && label.bytes().all(|b| b.is_ascii_lowercase()));
    labels.len() >= 2 && labels.iter().all(valid_label) && top_level_is_alphabetic
}

/// Checks a new password's length (no composition rules: length is what matters).
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("password must be at least 8 characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err("password must be at most 256 bytes");
    }
    Ok(())
}

/// Trims a display name and refuses control or bidi-override characters.
pub fn clean_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("name must be at most 100 characters");
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err("name must not contain control characters");
    }
    Ok(name.to_owned())
}

/// Unicode bidi embedding, override and isolate controls, which reorder displayed text.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        let email = Email::parse("  Alice.Smith+Tag@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "alice.smith+tag@example.com");
    }

    #[test]
    fn ordinary_addresses_are_accepted() {
        for raw in [
            "a@b.co",
            "first.last@sub.example.org",
            "x_y-z%1@mail-server.io",
            "abc123@privaterelay.appleid.com",
        ] {
            assert!(Email::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn tricky_addresses_are_refused() {
        for raw in [
            "",
            "   ",
            "no-at-sign",
            "@example.com",
            "a@",
            "a@@example.com",
            "a@b@example.com",
            "a'--@x.com",
            "a\"b@x.com",
            "a;drop@x.com",
            "a b@x.com",
            "a\tb@x.com",
            "a\0@x.com",
            "a\u{ff20}x.com",
            "a@x\u{202e}moc.com",
            "\u{202e}a@x.com",
            "ałice@x.com",
            "a@localhost",
            "a@x.c0m",
            "a@-x.com",
            "a@x-.com",
            "a@x..com",
            ".a@x.com",
            "a.@x.com",
            "a..b@x.com",
            "a@x.com.",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }

    #[test]
    fn length_limits_hold() {
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@x.com")).is_ok());
        assert!(Email::parse(&format!("{local}a@x.com")).is_err());
        let long_domain = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert!(Email::parse(&format!("a@{long_domain}")).is_err());
    }

    #[test]
    fn passwords_need_8_characters_and_at_most_256_bytes() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password("ééééééé").is_err());
        assert!(check_new_password("éééééééé").is_ok());
        assert!(check_new_password(&"x".repeat(256)).is_ok());
        assert!(check_new_password(&"x".repeat(257)).is_err());
    }

    #[test]
    fn names_are_trimmed_and_control_characters_refused() {
        assert_eq!(clean_name("  Ada Lovelace ").unwrap(), "Ada Lovelace");
        assert_eq!(clean_name("").unwrap(), "");
        assert!(clean_name("a\u{0}b").is_err());
        assert!(clean_name("evil\u{202e}gnp.exe").is_err());
        assert!(clean_name(&"n".repeat(101)).is_err());
    }
}
