//! Checks on what callers send, so bad input is refused before anything changes.

use clawfleet_kit::error::ServiceError;

use crate::model::Secrets;

/// At most this many provider secrets per instance.
pub const MAX_SECRETS: usize = 32;
/// At most this many bytes per secret value.
pub const MAX_SECRET_VALUE_BYTES: usize = 8 * 1024;
/// At most this many characters in a model name.
pub const MAX_MODEL_LENGTH: usize = 200;
/// At most this many characters in an owner id.
pub const MAX_OWNER_LENGTH: usize = 128;

/// Environment names the platform sets itself, or that make a shell, Node, npm or the
/// dynamic loader run code or route traffic elsewhere; a secret may not set them.
/// Compared ignoring case (npm reads `npm_config_*` in either case).
const RESERVED_PREFIXES: &[&str] = &[
    "OPENCLAW_",
    "CLAWFLEET_",
    "NODE_",
    "LD_",
    "NPM_CONFIG_",
    "NPM_",
    "BASH_FUNC_",
];
const RESERVED_SUFFIXES: &[&str] = &["_PROXY"];
const RESERVED_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "SHELL",
    "TMPDIR",
    "PWD",
    "BASH_ENV",
    "ENV",
    "NODE_OPTIONS",
];

/// Whether `name` is one the platform keeps for itself (see [`RESERVED_NAMES`]).
fn is_reserved(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    RESERVED_NAMES.contains(&name.as_str())
        || RESERVED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        || RESERVED_SUFFIXES
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// Secrets must be environment names (`A-Z`, `0-9`, `_`, starting with a letter) that
/// the platform does not reserve, with bounded values free of NUL bytes.
pub fn validate_secrets(secrets: &Secrets) -> Result<(), ServiceError> {
    if secrets.len() > MAX_SECRETS {
        return Err(ServiceError::invalid_argument(format!(
            "too many secrets: {} (at most {MAX_SECRETS})",
            secrets.len()
        )));
    }
    for (name, value) in secrets {
        let well_formed = name.len() <= 128
            && name
                .bytes()
                .next()
                .is_some_and(|byte| byte.is_ascii_uppercase())
            && name
                .bytes()
                .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_');
        if !well_formed {
            let shown: String = name.chars().take(64).collect();
            return Err(ServiceError::invalid_argument(format!(
                "invalid secret name {shown:?}: secret names must be environment variable names (A-Z, 0-9, _; starting with a letter)"
            )));
        }
        if is_reserved(name) {
            return Err(ServiceError::invalid_argument(format!(
                "secret name {name} is reserved by the platform"
            )));
        }
        if value.len() > MAX_SECRET_VALUE_BYTES || value.contains('\0') {
            return Err(ServiceError::invalid_argument(format!(
                "secret {name} must be at most {MAX_SECRET_VALUE_BYTES} bytes without nul characters"
            )));
        }
    }
    Ok(())
}

/// Models look like `provider/model-name`; empty means the gateway's default.
pub fn validate_model(model: &str) -> Result<(), ServiceError> {
    let well_formed = model.len() <= MAX_MODEL_LENGTH
        && model
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._/:-@".contains(&byte));
    if well_formed {
        Ok(())
    } else {
        Err(ServiceError::invalid_argument(format!(
            "invalid model: at most {MAX_MODEL_LENGTH} characters of a-z, A-Z, 0-9 and . _ / : - @"
        )))
    }
}

/// Owners are user ids: printable ASCII without spaces, bounded.
pub fn validate_owner(owner: &str) -> Result<(), ServiceError> {
    let well_formed =
        owner.len() <= MAX_OWNER_LENGTH && owner.bytes().all(|byte| byte.is_ascii_graphic());
    if well_formed {
        Ok(())
    } else {
        Err(ServiceError::invalid_argument(format!(
            "invalid owner: at most {MAX_OWNER_LENGTH} printable ascii characters without spaces"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn provider_keys_are_accepted() {
        assert!(
            validate_secrets(&secrets(&[
                ("ANTHROPIC_API_KEY", "sk-ant"),
                ("OPENROUTER_API_KEY", "x")
            ]))
            .is_ok()
        );
    }

    #[test]
    fn malformed_or_reserved_names_are_refused() {
        for name in [
            "lower",
            "1ABC",
            "A-B",
            "",
            "PATH",
            "OPENCLAW_GATEWAY_TOKEN",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "NODE_OPTIONS",
            "BASH_ENV",
            "ENV",
            "NPM_CONFIG_REGISTRY",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
        ] {
            assert!(
                validate_secrets(&secrets(&[(name, "v")])).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn reserved_names_are_matched_ignoring_case() {
        for name in [
            "npm_config_registry",
            "Npm_Config_Script_Shell",
            "https_proxy",
            "ld_preload",
            "bash_env",
            "env",
        ] {
            assert!(is_reserved(name), "{name}");
        }
        for name in [
            "ANTHROPIC_API_KEY",
            "ENVIRONMENT",
            "PROXY_URL",
            "OPENAI_API_KEY",
        ] {
            assert!(!is_reserved(name), "{name}");
        }
    }

    #[test]
    fn oversized_values_are_refused() {
        let big = "x".repeat(MAX_SECRET_VALUE_BYTES + 1);
        assert!(validate_secrets(&secrets(&[("KEY", &big)])).is_err());
        assert!(validate_secrets(&secrets(&[("KEY", "a\0b")])).is_err());
    }

    #[test]
    fn models_and_owners_are_bounded() {
        assert!(validate_model("anthropic/claude-sonnet-4-5").is_ok());
        assert!(validate_model("").is_ok());
        assert!(validate_model("a b").is_err());
        assert!(validate_owner("user-123").is_ok());
        assert!(validate_owner("with space").is_err());
    }
}
