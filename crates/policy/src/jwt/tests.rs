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

#[test]
fn cached_results_expire_and_follow_the_keys() {
    use cache::{MAX_VALID_FOR, REFUSAL_FOR, TokenCache};
    let v = validator(&[]);
    let cache = TokenCache::default();
    let t = EXAMPLE1.trim();
    let now = ISSUED + 100;
    let gen0 = v.key_generation();
    assert!(cache.get(t, now, gen0).is_none());
    let ok = v.validate(t, now);
    cache.put(&v, t, &ok, now, gen0);
    assert_eq!(cache.get(t, now + 1, gen0).unwrap().unwrap()["sub"], "test-user");
    assert!(cache.get(t, now + MAX_VALID_FOR, gen0).is_none(), "trusted for a bounded time only");

    // Near `exp`, the entry ends with the token (plus the skew), not later.
    let late = EXPIRES - 10;
    cache.put(&v, t, &v.validate(t, late), late, gen0);
    assert!(cache.get(t, EXPIRES + DEFAULT_CLOCK_SKEW_SECS - 1, gen0).is_some());
    assert!(cache.get(t, EXPIRES + DEFAULT_CLOCK_SKEW_SECS, gen0).is_none(), "an expired token is not served");

    // New keys: nothing cached under the old ones counts.
    v.providers[0].keys.replace(KeySet::parse(PUB_KEY).unwrap());
    assert_ne!(v.key_generation(), gen0);
    assert!(cache.get(t, now + 1, v.key_generation()).is_none());

    // Refusals are remembered briefly; ones that time or a refresh can change are not.
    // Another character in the middle of the signature: still base64url, no longer valid.
    let at = t.rfind('.').unwrap() + 10;
    let swapped = if &t[at..at + 1] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &t[..at], &t[at + 1..]);
    let generation = v.key_generation();
    let bad = v.validate(&forged, now);
    assert_eq!(bad, Err(JwtError::BadSignature));
    let malformed = "x.y.z";
    cache.put(&v, malformed, &v.validate(malformed, now), now, generation);
    cache.put(&v, &forged, &bad, now, generation);
    assert_eq!(cache.get(&forged, now + 1, generation), Some(bad));
    assert!(cache.get(&forged, now + REFUSAL_FOR, generation).is_none());
    let early = ISSUED - DEFAULT_CLOCK_SKEW_SECS - 10;
    let not_yet = v.validate(t, early);
    assert_eq!(not_yet, Err(JwtError::NotYetValid));
    let fresh = TokenCache::default();
    fresh.put(&v, t, &not_yet, early, generation);
    assert!(fresh.is_empty(), "`nbf` refusals are not cached");
    assert!(cache.get("x.y.z", now, generation).is_none(), "cheap refusals are not cached");
}
