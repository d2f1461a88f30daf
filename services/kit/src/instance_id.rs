//! Instance ids: DNS-1123 labels short enough that `<id>-openclaw-data` fits 63 characters.
//!
//! This is the one definition of the rule: every service parses ids through
//! [`InstanceId::parse`] and every OpenAPI schema uses [`INSTANCE_ID_PATTERN`], so a bad
//! id is refused everywhere with the same message (docs/product/instances.md).

use std::{fmt, str::FromStr};

use crate::{error::ServiceError, secret::random_token};

/// The longest id, so that `<id>-openclaw-data` stays a valid 63-character label.
pub const MAX_INSTANCE_ID_LENGTH: usize = 40;

/// The rule as a regular expression (with [`MAX_INSTANCE_ID_LENGTH`] as the length bound),
/// for schemas and clients.
pub const INSTANCE_ID_PATTERN: &str = r"^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// The rule, as shown to callers who break it.
pub const INSTANCE_ID_RULE: &str = "instance id must be a dns-1123 label: 1 to 40 characters of lowercase a-z, 0-9 and '-', starting with a letter and not ending with '-'";

/// A validated instance id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(String);

/// An id that breaks [`INSTANCE_ID_RULE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid instance id {shown:?}: {rule}", rule = INSTANCE_ID_RULE)]
pub struct InvalidInstanceId {
    shown: String,
}

impl InstanceId {
    /// Validates `text` against [`INSTANCE_ID_RULE`].
    pub fn parse(text: &str) -> Result<Self, InvalidInstanceId> {
        let bytes = text.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= MAX_INSTANCE_ID_LENGTH
            && bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && bytes
                .iter()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            // Quote at most a short prefix so a huge or hostile id is not echoed whole.
            let shown: String = text.chars().take(64).collect();
            Err(InvalidInstanceId { shown })
        }
    }

    /// A fresh random id for instances created without one (`i-` + 12 base36 characters).
    pub fn generate() -> Self {
        let entropy = random_token(16);
        let suffix: String = entropy
            .bytes()
            .map(|byte| {
                let digit = byte % 36;
                if digit < 10 {
                    (b'0' + digit) as char
                } else {
                    (b'a' + digit - 10) as char
                }
            })
            .take(12)
            .collect();
        Self(format!("i-{suffix}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for InstanceId {
    type Err = InvalidInstanceId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<InvalidInstanceId> for ServiceError {
    fn from(error: InvalidInstanceId) -> Self {
        ServiceError::invalid_argument(error.to_string())
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_accepted() {
        for id in ["alice", "a", "bob-2", "x1-y2-z3", &"a".repeat(40)] {
            assert!(InstanceId::parse(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn everything_else_is_rejected_with_the_rule() {
        for id in [
            "",
            "Alice",
            "1alice",
            "-alice",
            "alice-",
            "al_ice",
            "al.ice",
            "al ice",
            "ålice",
            &"a".repeat(41),
            "alice\n",
            "../etc",
        ] {
            let error = InstanceId::parse(id).unwrap_err();
            assert!(error.to_string().contains("dns-1123"), "{id}");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let first = InstanceId::generate();
        let second = InstanceId::generate();
        assert_ne!(first, second);
        assert!(InstanceId::parse(first.as_str()).is_ok());
    }

    #[test]
    fn the_pattern_and_the_parser_agree() {
        // The pattern has no length bound of its own; schemas add MAX_INSTANCE_ID_LENGTH.
        let pattern = regex::Regex::new(INSTANCE_ID_PATTERN).unwrap();
        let alphabet = ['a', 'z', '0', '9', '-', 'A', '_', '.'];
        let mut samples = vec![String::new()];
        for length in 1..=4 {
            let mut next = Vec::new();
            for prefix in samples.iter().filter(|sample| sample.len() == length - 1) {
                for letter in alphabet {
                    next.push(format!("{prefix}{letter}"));
                }
            }
            samples.extend(next);
        }
        for sample in samples {
            assert_eq!(
                pattern.is_match(&sample),
                InstanceId::parse(&sample).is_ok(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn a_bad_id_becomes_an_invalid_argument_naming_the_rule() {
        let error = ServiceError::from(InstanceId::parse("Bad_Id").unwrap_err());
        assert_eq!(error.code, crate::error::ErrorCode::InvalidArgument);
        assert_eq!(
            error.message,
            format!("invalid instance id \"Bad_Id\": {INSTANCE_ID_RULE}")
        );
    }

    #[test]
    fn the_longest_id_leaves_room_for_the_data_volume_name() {
        let id = "a".repeat(MAX_INSTANCE_ID_LENGTH);
        assert!(format!("{id}-openclaw-data").len() <= 63);
    }
}
