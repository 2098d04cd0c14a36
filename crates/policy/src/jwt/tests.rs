//! Unit tests with the tutorial's ES256 key and tokens. The hostile-token suite (keys made
//! in the test, every algorithm) runs through the gateway in `crates/testkit/tests/auth_jwt.rs`.

use super::*;

const PUB_KEY: &str = include_str!("../../../../examples/tutorial/pub-key");
const EXAMPLE1: &str = include_str!("../../../../examples/tutorial/example1.key");
const EXAMPLE2: &str = include_str!("../../../../examples/tutorial/example2.key");
/// `iat`/`nbf` of the tutorial tokens, and their `exp`.
const ISSUED: u64 = 1_751_558_060;
const EXPIRES: u64 = 1_900_650_294;

fn validator(audiences: &[&str]) -> Validator {
    Validator {
        providers: vec![Provider {
            issuer: "agentgateway.dev".into(),
            audiences: audiences.iter().map(|s| s.to_string()).collect(),
            required_claims: vec!["exp".into()],
            keys: Arc::new(KeyStore::new(KeySet::parse(PUB_KEY).unwrap())),
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
        }],
    }
}

#[test]
fn tutorial_tokens_are_valid() {
    let v = validator(&["test.agentgateway.dev"]);
    let claims = v.validate(EXAMPLE1.trim(), ISSUED + 100).unwrap();
    assert_eq!(claims["sub"], "test-user");
    assert_eq!(claims["nested"]["key"], "value");
    assert_eq!(claims["list"][1], "banana");
    let claims = v.validate(EXAMPLE2.trim(), ISSUED + 100).unwrap();
    assert!(claims.get("nested").is_none());
}

#[test]
fn time_claims_with_skew() {
    let v = validator(&[]);
    let t = EXAMPLE1.trim();
    assert!(v.validate(t, EXPIRES + DEFAULT_CLOCK_SKEW_SECS - 1).is_ok(), "within the skew");
    assert_eq!(v.validate(t, EXPIRES + DEFAULT_CLOCK_SKEW_SECS), Err(JwtError::Expired));
    assert!(v.validate(t, ISSUED - DEFAULT_CLOCK_SKEW_SECS).is_ok());
    assert_eq!(v.validate(t, ISSUED - DEFAULT_CLOCK_SKEW_SECS - 1), Err(JwtError::NotYetValid));
}

#[test]
fn audience_and_issuer() {
    let t = EXAMPLE1.trim();
    assert_eq!(validator(&["other"]).validate(t, ISSUED), Err(JwtError::WrongAudience));
    assert!(validator(&["other", "test.agentgateway.dev"]).validate(t, ISSUED).is_ok());
    let mut v = validator(&[]);
    v.providers[0].issuer = "agentgateway.dev.evil".into();
    assert_eq!(v.validate(t, ISSUED), Err(JwtError::UntrustedIssuer));
    let mut v = validator(&[]);
    v.providers[0].required_claims.push("email".into());
    assert_eq!(v.validate(t, ISSUED), Err(JwtError::MissingClaim("email".into())));
}

#[test]
fn tampering_is_detected() {
    let v = validator(&[]);
    let t = EXAMPLE1.trim();
    let (head, sig) = t.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[10] ^= 1;
    let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
    assert_eq!(v.validate(&flipped, ISSUED), Err(JwtError::BadSignature));
    // A payload swapped from the other token keeps a valid-looking shape but not the signature.
    let p2 = EXAMPLE2.trim().split('.').nth(1).unwrap();
    let mut parts: Vec<&str> = t.split('.').collect();
    parts[1] = p2;
    assert_eq!(v.validate(&parts.join("."), ISSUED), Err(JwtError::BadSignature));
    assert_eq!(v.validate(&format!("{t}."), ISSUED), Err(JwtError::Malformed("a token has three segments")));
    assert_eq!(v.validate(&"a".repeat(MAX_TOKEN_BYTES + 1), ISSUED), Err(JwtError::TooLarge));
}

#[test]
fn errors_never_contain_the_token() {
    let v = validator(&[]);
    let t = EXAMPLE1.trim();
    for bad in [format!("{t}x"), t.replace('.', ".."), t.to_string()] {
        if let Err(e) = v.validate(&bad, EXPIRES + 10_000) {
            let msg = e.to_string();
            assert!(!t.split('.').any(|seg| msg.contains(seg)), "{msg}");
        }
    }
}
