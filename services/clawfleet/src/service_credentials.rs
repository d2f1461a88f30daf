//! Every calling service's token and the digests line, derived from one root: what
//! `clawfleet up` hands each service, and what `clawfleet service-credentials` prints for
//! a deployment (docs/product/service-authority.md).

use std::io::Read;

use clawfleet_kit::{
    principal::Principal,
    service_token::{ServiceDigests, ServiceTokenError, derive_service_token},
};

/// The tokens of the calling services and the digests their servers hold.
#[derive(Clone)]
pub struct DerivedCredentials {
    tokens: Vec<(Principal, String)>,
    pub digests: ServiceDigests,
}

impl DerivedCredentials {
    /// Derives every calling service's token from `root`.
    pub fn from_root(root: &str) -> Result<Self, ServiceTokenError> {
        let tokens = Principal::SERVICES
            .into_iter()
            .map(|service| Ok((service, derive_service_token(root, service)?)))
            .collect::<Result<Vec<_>, ServiceTokenError>>()?;
        let digests = ServiceDigests::of_tokens(
            tokens
                .iter()
                .map(|(service, token)| (*service, token.as_str())),
        )?;
        Ok(Self { tokens, digests })
    }

    /// The token `service` presents (`None` for the operator, who has none).
    pub fn token(&self, service: Principal) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(known, _)| *known == service)
            .map(|(_, token)| token.as_str())
    }
}

/// What `clawfleet service-credentials` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `<service>=<token>` lines, then `CLAWFLEET_SERVICE_TOKEN_DIGESTS=<line>`.
    All,
    /// One service's token alone.
    Token(Principal),
    /// The digests line alone.
    Digests,
}

/// Reads the root from `input` (surrounding whitespace ignored) and renders `output`.
pub fn render(input: &mut dyn Read, output: Output) -> anyhow::Result<String> {
    let mut root = String::new();
    input.read_to_string(&mut root)?;
    let derived = DerivedCredentials::from_root(root.trim())
        .map_err(|error| anyhow::anyhow!("the root on stdin cannot be used: {error}"))?;
    Ok(match output {
        Output::All => {
            let mut text = String::new();
            for (service, token) in &derived.tokens {
                text.push_str(&format!("{}={token}\n", service.name()));
            }
            text.push_str(&format!(
                "CLAWFLEET_SERVICE_TOKEN_DIGESTS={}\n",
                derived.digests
            ));
            text
        }
        Output::Token(service) => format!("{}\n", derived.token(service).unwrap_or_default()),
        Output::Digests => format!("{}\n", derived.digests),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "a-deployment-root-of-enough-length";

    #[test]
    fn every_calling_service_gets_a_token_its_servers_recognise() {
        let derived = DerivedCredentials::from_root(ROOT).unwrap();
        for service in Principal::SERVICES {
            let token = derived.token(service).unwrap();
            assert_eq!(derived.digests.recognise(token), Some(service));
        }
        assert_eq!(derived.token(Principal::Operator), None);
    }

    #[test]
    fn the_printed_lines_parse_back_to_the_same_credentials() {
        let text = render(&mut format!("  {ROOT}\n").as_bytes(), Output::All).unwrap();
        let derived = DerivedCredentials::from_root(ROOT).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        for (line, service) in lines.iter().zip(Principal::SERVICES) {
            assert_eq!(
                *line,
                format!("{}={}", service.name(), derived.token(service).unwrap())
            );
        }
        let digests = lines[3]
            .strip_prefix("CLAWFLEET_SERVICE_TOKEN_DIGESTS=")
            .unwrap();
        assert_eq!(ServiceDigests::parse(digests).unwrap(), derived.digests);
        assert!(!text.contains(ROOT));
        let bridge = render(&mut ROOT.as_bytes(), Output::Token(Principal::Bridge)).unwrap();
        assert_eq!(bridge.trim(), derived.token(Principal::Bridge).unwrap());
        let line = render(&mut ROOT.as_bytes(), Output::Digests).unwrap();
        assert_eq!(line.trim(), derived.digests.to_string());
    }

    #[test]
    fn a_short_root_is_refused() {
        let error = render(&mut "short".as_bytes(), Output::All).unwrap_err();
        assert!(error.to_string().contains("shorter than"), "{error}");
    }
}
