//! JSON Web Key Sets (RFC 7517): the public keys tokens are checked against.
//!
//! Only asymmetric signature keys are kept. A key's type decides which algorithms it may
//! verify; its `alg`, when present, pins it to exactly one.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// JWKS documents larger than this are refused.
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// What a key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    /// The algorithms a key of this kind may verify (RFC 7518 §3, RFC 8037).
    pub fn allows(self, alg: Algorithm) -> bool {
        match self {
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyKind::P256 => alg == Algorithm::ES256,
            KeyKind::P384 => alg == Algorithm::ES384,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// One usable public key.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    pub kind: KeyKind,
    /// The JWK's `alg`, if it named one.
    pub pinned: Option<Algorithm>,
    pub(crate) decoding: DecodingKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("kid", &self.kid).field("kind", &self.kind).field("pinned", &self.pinned).finish()
    }
}

/// The keys of one issuer, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Key>,
    /// Keys skipped while parsing, with why (for the log).
    pub skipped: Vec<String>,
}

/// A JWKS that cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("JWKS is not valid JSON with a `keys` list: {0}")]
    Json(String),
    #[error("JWKS has no usable signature key ({0})")]
    NoKeys(String),
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document. Keys that cannot verify signatures (symmetric keys,
    /// encryption keys, unknown types) are skipped; a set with no usable key is an error.
    pub fn parse(text: &str) -> Result<KeySet, JwksError> {
        if text.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let raw: RawSet = serde_json::from_str(text).map_err(|e| JwksError::Json(e.to_string()))?;
        let mut set = KeySet::default();
        for (i, value) in raw.keys.into_iter().enumerate() {
            match serde_json::from_value::<RawKey>(value).map_err(|e| e.to_string()).and_then(key_from) {
                Ok(key) => {
                    if set.keys.contains_key(&key.kid) {
                        set.skipped.push(format!("key {i}: duplicate kid `{}`", key.kid));
                    } else {
                        set.keys.insert(key.kid.clone(), key);
                    }
                }
                Err(why) => set.skipped.push(format!("key {i}: {why}")),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoKeys(if set.skipped.is_empty() {
                "empty `keys`".into()
            } else {
                set.skipped.join("; ")
            }));
        }
        Ok(set)
    }

    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// RSA keys from 2048 to 4096 bits (shorter ones are forgeable, longer ones the verifier
/// refuses), with a sensible public exponent.
fn check_rsa(n: &str, e: &str) -> Result<(), String> {
    let decode = |v: &str, name: &str| {
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.trim_end_matches('='))
            .map_err(|_| format!("`{name}` is not base64url"))
    };
    let n = decode(n, "n")?;
    let bits = match n.iter().position(|b| *b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    };
    if !(2048..=4096).contains(&bits) {
        return Err(format!("RSA key has {bits} bits; 2048 to 4096 are accepted"));
    }
    let e = decode(e, "e")?;
    let e = e.iter().skip_while(|b| **b == 0).copied().collect::<Vec<u8>>();
    if e.is_empty() || e.len() > 8 || e.last().is_some_and(|b| b % 2 == 0) || e == [1] {
        return Err("RSA key has an unusable exponent `e`".into());
    }
    Ok(())
}

pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn key_from(raw: RawKey) -> Result<Key, String> {
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!("`use: {}` is not a signature key", raw.use_.unwrap_or_default()));
    }
    let kid = raw.kid.clone().ok_or("no `kid` (tokens are matched to keys by kid)")?;
    let need = |v: &Option<String>, name: &str| v.clone().ok_or(format!("`{name}` missing"));
    let (kind, decoding) = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let (n, e) = (need(&raw.n, "n")?, need(&raw.e, "e")?);
            check_rsa(&n, &e)?;
            let key = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
            (KeyKind::Rsa, key)
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (x, y) = (need(&raw.x, "x")?, need(&raw.y, "y")?);
            let expect = if crv == "P-256" { 32 } else { 48 };
            for (name, v) in [("x", &x), ("y", &y)] {
                let len =
                    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.trim_end_matches('='))
                        .map_err(|_| format!("`{name}` is not base64url"))?
                        .len();
                if len != expect {
                    return Err(format!("`{name}` has {len} bytes, {crv} needs {expect}"));
                }
            }
            let key = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
            (if crv == "P-256" { KeyKind::P256 } else { KeyKind::P384 }, key)
        }
        ("EC", crv) => return Err(format!("unsupported curve {crv:?}")),
        ("OKP", Some("Ed25519")) => {
            let key = DecodingKey::from_ed_components(&need(&raw.x, "x")?).map_err(|e| e.to_string())?;
            (KeyKind::Ed25519, key)
        }
        ("OKP", crv) => return Err(format!("unsupported curve {crv:?}")),
        ("oct", _) => return Err("symmetric keys are never accepted".into()),
        (kty, _) => return Err(format!("unsupported key type `{kty}`")),
    };
    let pinned = match raw.alg.as_deref() {
        None => None,
        Some(name) => {
            let alg = parse_alg(name).ok_or(format!("unsupported `alg: {name}`"))?;
            if !kind.allows(alg) {
                return Err(format!("`alg: {name}` does not fit a {kind:?} key"));
            }
            Some(alg)
        }
    };
    Ok(Key { kid, kind, pinned, decoding })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUTORIAL: &str = r#"{"keys":[{"use":"sig","kty":"EC","kid":"XhO06x8JjWH1wwkWkyeEUxsooGEWoEdidEpwyd_hmuI","crv":"P-256","alg":"ES256","x":"XZHF8Em5LbpqfgewAalpSEH4Ka2I2xjcxxUt2j6-lCo","y":"g3DFz45A7EOUMgmsNXatrXw1t-PG5xsbkxUs851RxSE"}]}"#;

    #[test]
    fn parses_the_tutorial_key() {
        let set = KeySet::parse(TUTORIAL).unwrap();
        let key = set.get("XhO06x8JjWH1wwkWkyeEUxsooGEWoEdidEpwyd_hmuI").unwrap();
        assert_eq!(key.kind, KeyKind::P256);
        assert_eq!(key.pinned, Some(Algorithm::ES256));
    }

    #[test]
    fn skips_unusable_keys_and_refuses_sets_without_any() {
        let text = r#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"tiny","n":"AQAB","e":"AQAB"},
            {"kty":"EC","kid":"k1","crv":"secp256k1","x":"AA","y":"AA"},
            {"kty":"EC","kid":"short","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"EC","crv":"P-256","x":"XZHF8Em5LbpqfgewAalpSEH4Ka2I2xjcxxUt2j6-lCo","y":"g3DFz45A7EOUMgmsNXatrXw1t-PG5xsbkxUs851RxSE"},
            {"kty":"EC","kid":"badalg","alg":"RS256","crv":"P-256","x":"XZHF8Em5LbpqfgewAalpSEH4Ka2I2xjcxxUt2j6-lCo","y":"g3DFz45A7EOUMgmsNXatrXw1t-PG5xsbkxUs851RxSE"}
        ]}"#;
        let err = KeySet::parse(text).unwrap_err();
        let JwksError::NoKeys(why) = err else { panic!("{err:?}") };
        for expected in
            ["symmetric", "not a signature key", "unsupported curve", "needs 32", "no `kid`", "does not fit", "17 bits"]
        {
            assert!(why.contains(expected), "{expected} in {why}");
        }
        assert!(matches!(KeySet::parse("{}"), Err(JwksError::Json(_))));
        assert!(matches!(KeySet::parse(r#"{"keys":[]}"#), Err(JwksError::NoKeys(_))));
    }
}
