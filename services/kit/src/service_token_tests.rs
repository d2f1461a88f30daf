use super::*;

const ROOT: &str = "a-root-of-at-least-24-characters";

#[test]
fn derived_tokens_differ_per_service_and_are_stable() {
    let tokens: Vec<String> = Principal::SERVICES
        .iter()
        .map(|service| derive_service_token(ROOT, *service).unwrap())
        .collect();
    assert_eq!(tokens.len(), 3);
    assert_ne!(tokens[0], tokens[1]);
    assert_ne!(tokens[1], tokens[2]);
    assert_ne!(tokens[0], tokens[2]);
    for token in &tokens {
        assert_eq!(token.len(), 64);
        assert!(!token.contains(ROOT));
        check_service_token(token).unwrap();
    }
    assert_eq!(
        derive_service_token(ROOT, Principal::Edge).unwrap(),
        tokens[0]
    );
    assert_ne!(
        derive_service_token("another-root-of-24-characters!", Principal::Edge).unwrap(),
        tokens[0]
    );
}

#[test]
fn the_derivation_is_hmac_sha256_of_the_labelled_name() {
    // Pinned, so deployments that derived tokens with an earlier build keep working.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(ROOT.as_bytes()).unwrap();
    mac.update(b"clawfleet service token v1: bridge");
    assert_eq!(
        derive_service_token(ROOT, Principal::Bridge).unwrap(),
        hex::encode(mac.finalize().into_bytes())
    );
}

#[test]
fn short_roots_and_tokens_are_refused() {
    assert_eq!(
        derive_service_token("short", Principal::Edge),
        Err(ServiceTokenError::TooShort(MIN_ROOT_LEN))
    );
    assert!(check_service_token("x".repeat(31).as_str()).is_err());
    assert!(check_service_token("x".repeat(32).as_str()).is_ok());
}

#[test]
fn digests_round_trip_and_recognise_only_their_tokens() {
    let edge = derive_service_token(ROOT, Principal::Edge).unwrap();
    let bridge = derive_service_token(ROOT, Principal::Bridge).unwrap();
    let digests = ServiceDigests::of_tokens([
        (Principal::Edge, edge.as_str()),
        (Principal::Bridge, &bridge),
    ])
    .unwrap();
    let line = digests.to_string();
    assert_eq!(
        line,
        format!(
            "edge={},bridge={}",
            token_digest(&edge),
            token_digest(&bridge)
        )
    );
    let parsed = ServiceDigests::parse(&line).unwrap();
    assert_eq!(parsed, digests);
    assert_eq!(parsed.recognise(&edge), Some(Principal::Edge));
    assert_eq!(parsed.recognise(&bridge), Some(Principal::Bridge));
    assert_eq!(parsed.recognise(ROOT), None);
    let channels = derive_service_token(ROOT, Principal::Channels).unwrap();
    assert_eq!(parsed.recognise(&channels), None);
    // The digest is not a credential.
    assert_eq!(parsed.recognise(&token_digest(&edge)), None);
}

#[test]
fn digest_lists_tolerate_spaces_and_refuse_what_they_cannot_use() {
    let digest = token_digest("t");
    let parsed = ServiceDigests::parse(&format!(" edge = {digest} , ")).unwrap();
    assert_eq!(parsed.services().collect::<Vec<_>>(), [Principal::Edge]);
    assert_eq!(
        ServiceDigests::parse("").unwrap(),
        ServiceDigests::default()
    );
    for (text, expected) in [
        (
            format!("operator={digest}"),
            ServiceTokenError::UnknownService("operator".into()),
        ),
        (
            format!("edge={digest},edge={digest}"),
            ServiceTokenError::Duplicate("edge"),
        ),
        (
            format!("edge={digest},bridge={digest}"),
            ServiceTokenError::SharedDigest,
        ),
        (
            "edge".to_owned(),
            ServiceTokenError::Malformed("edge".into()),
        ),
        (
            "edge=abcd".to_owned(),
            ServiceTokenError::Malformed("edge=abcd".into()),
        ),
    ] {
        assert_eq!(ServiceDigests::parse(&text), Err(expected), "{text}");
    }
}
