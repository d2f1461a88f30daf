//! Checks on what callers send, done before any gateway call.

use clawfleet_kit::error::ServiceError;

/// docs/product/gateways.md#telegram: `<digits>:<30+ of A-Za-z0-9_->`.
pub fn validate_bot_token(token: &str) -> Result<(), ServiceError> {
    let well_formed = token.split_once(':').is_some_and(|(bot_id, secret)| {
        !bot_id.is_empty()
            && bot_id.len() <= 20
            && bot_id.bytes().all(|byte| byte.is_ascii_digit())
            && secret.len() >= 30
            && secret.len() <= 128
            && secret
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
    });
    if well_formed {
        Ok(())
    } else {
        // Never echo the token: it is a secret even when malformed.
        Err(ServiceError::invalid_argument(
            "invalid bot token: expected <digits>:<at least 30 of a-z, a-z, 0-9, _ and ->, as issued by @botfather",
        ))
    }
}

/// Channel names are short lowercase words (`telegram`, `whatsapp`, ...).
pub fn validate_channel(channel: &str) -> Result<(), ServiceError> {
    // Never starting with `-`, so that no CLI can read the name as an option.
    let well_formed = !channel.is_empty()
        && !channel.starts_with('-')
        && channel.len() <= 32
        && channel
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(ServiceError::invalid_argument(
            "channel must be a channel name such as \"telegram\" or \"whatsapp\"",
        ))
    }
}

/// Account ids name a channel account (`default`, `work`, ...); empty means the default.
pub fn validate_account_id(account_id: &str) -> Result<(), ServiceError> {
    let well_formed = account_id.len() <= 64
        && !account_id.starts_with('-')
        && account_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if well_formed {
        Ok(())
    } else {
        Err(ServiceError::invalid_argument(
            "account id must be at most 64 of a-z, A-Z, 0-9, - and _, not starting with -",
        ))
    }
}

/// Pairing codes are short uppercase codes the bot sent (8 letters today).
pub fn validate_pairing_code(code: &str) -> Result<(), ServiceError> {
    let well_formed = (4..=16).contains(&code.len())
        && code
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit());
    if well_formed {
        Ok(())
    } else {
        Err(ServiceError::invalid_argument(
            "pairing code must be the 8-letter code the bot sent",
        ))
    }
}

/// WhatsApp login waits are bounded: at least 1 s, at most 5 minutes.
pub fn bounded_timeout_ms(requested: u32, default_ms: u32) -> u32 {
    match requested {
        0 => default_ms,
        ms => ms.clamp(1_000, 300_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_TOKEN: &str = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ab";

    #[test]
    fn bot_tokens_follow_the_botfather_shape() {
        assert!(validate_bot_token(GOOD_TOKEN).is_ok());
        for bad in [
            "",
            "123456789",
            ":abc",
            "12a:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ab",
            "123:short",
            "123:AAEhBOweik6ad9r QXMENQjcrGbqCr4K-ab",
        ] {
            let error = validate_bot_token(bad).unwrap_err();
            assert!(
                !error.message.contains("AAEh"),
                "the token must not be echoed"
            );
        }
    }

    #[test]
    fn channels_accounts_and_codes_are_checked() {
        assert!(validate_channel("telegram").is_ok());
        assert!(validate_channel("Telegram").is_err());
        assert!(validate_channel("").is_err());
        assert!(validate_account_id("").is_ok());
        assert!(validate_account_id("work_1").is_ok());
        assert!(validate_account_id("a b").is_err());
        // Nothing that a CLI could take for an option.
        assert!(validate_channel("-telegram").is_err());
        assert!(validate_channel("--help").is_err());
        assert!(validate_account_id("-x").is_err());
        assert!(validate_account_id("--notify").is_err());
        assert!(validate_account_id("work-1").is_ok());
        assert!(validate_pairing_code("LUPWVTYQ").is_ok());
        assert!(validate_pairing_code("lupwvtyq").is_err());
        assert!(validate_pairing_code("LUP; rm").is_err());
    }

    #[test]
    fn login_timeouts_are_bounded() {
        assert_eq!(bounded_timeout_ms(0, 120_000), 120_000);
        assert_eq!(bounded_timeout_ms(10, 120_000), 1_000);
        assert_eq!(bounded_timeout_ms(999_999_999, 120_000), 300_000);
    }
}
