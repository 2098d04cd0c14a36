//! The JWT front end (`Validator::validate`) and the JWKS parser (`KeySet::parse`): a bearer
//! token and a remote key set are both attacker-supplied.

use std::sync::{Arc, OnceLock};

use agw_policy::jwt::{DEFAULT_CLOCK_SKEW_SECS, KeySet, KeyStore, Provider, Validator};

/// The tutorial's ES256 JWKS and tokens (also the seeds of `corpus/jwt`).
pub(crate) const PUB_KEY: &str = include_str!("../../../examples/tutorial/pub-key");
pub(crate) const EXAMPLE1: &str = include_str!("../../../examples/tutorial/example1.key");
pub(crate) const EXAMPLE2: &str = include_str!("../../../examples/tutorial/example2.key");
pub(crate) const ISSUER: &str = "agentgateway.dev";
/// A time at which the tutorial tokens are valid (after their `nbf`, before their `exp`).
pub(crate) const NOW: u64 = 1_751_558_060 + 100;

fn provider(keys: KeySet, audiences: &[&str]) -> Provider {
    Provider {
        issuer: ISSUER.into(),
        audiences: audiences.iter().map(|a| a.to_string()).collect(),
        required_claims: vec!["exp".into()],
        keys: Arc::new(KeyStore::new(keys)),
        clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
    }
}

/// The gateway's validator for the tutorial: its issuer, audience and key.
pub(crate) fn tutorial_validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| Validator {
        providers: vec![provider(KeySet::parse(PUB_KEY).expect("tutorial JWKS"), &["test.agentgateway.dev"])],
    })
}

/// The signed part (`header.payload`) of a token.
fn signed_part(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(signed, _)| signed)
}

/// Input: a token, or a JWKS document.
///
/// Invariants: a token is accepted only if its signed part is one the tutorial key signed
/// (anything else would be a forgery); an accepted token's claims name the trusted issuer;
/// no error message repeats the token. A JWKS that parses can be asked for every kid it lists,
/// and the tutorial tokens can be checked against it without a panic.
pub fn jwt(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let validator = tutorial_validator();
    match validator.validate(&text, NOW) {
        Ok(claims) => {
            let signed = signed_part(&text);
            assert!(
                [EXAMPLE1, EXAMPLE2].iter().any(|t| signed_part(t.trim()) == signed),
                "a token the tutorial key never signed was accepted: {text:?}"
            );
            assert_eq!(claims.get("iss").and_then(|v| v.as_str()), Some(ISSUER));
        }
        Err(e) => {
            let message = e.to_string();
            assert!(text.len() < 16 || !message.contains(&*text), "the error repeats the token: {message}");
            let _ = e.reason();
        }
    }

    if let Ok(keys) = KeySet::parse(&text) {
        assert!(!keys.is_empty(), "a key set that parses has a usable key");
        let kids: Vec<String> = keys.kids().map(str::to_string).collect();
        assert_eq!(kids.len(), keys.len());
        for kid in &kids {
            assert!(keys.get(kid).is_some(), "listed kid {kid:?} is not found");
        }
        let fuzzed = Validator { providers: vec![provider(keys, &[])] };
        for token in [EXAMPLE1, EXAMPLE2] {
            let _ = fuzzed.validate(token.trim(), NOW);
        }
    }
}
