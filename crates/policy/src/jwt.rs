//! JWT bearer-token validation (RFC 7519, RFC 7515), strict by construction.
//!
//! A token is checked in this order, and the first failure decides the error: size, shape
//! (three base64url segments), header (`alg` asymmetric and supported, no `crit`, a `kid`),
//! issuer (selects the provider), key (by `kid`; its type and pinned `alg` must fit the header's
//! `alg`), signature, then claims (`exp`, `nbf`, `aud`, required claims). Header fields that
//! name keys (`jwk`, `jku`, `x5u`, `x5c`) are never used: keys come only from the configured JWKS.

pub mod cache;
pub mod jwks;
pub mod sign;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use jwks::{JwksError, Key, KeyKind, KeySet};

/// Tokens longer than this are refused without being parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Default allowance for clocks that disagree, applied to `exp` and `nbf`.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 30;

/// A validated token's claims, shared cheaply (they become `jwt` in rules).
pub type Claims = Arc<TokenClaims>;

/// The claims of a validated token, with their CEL form made once (a cached token's claims
/// are converted for its first request only).
#[derive(Debug)]
pub struct TokenClaims {
    map: Map<String, Value>,
    cel: std::sync::OnceLock<cel::Value>,
}

impl TokenClaims {
    pub fn new(map: Map<String, Value>) -> TokenClaims {
        TokenClaims { map, cel: std::sync::OnceLock::new() }
    }

    pub fn map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The claims as the CEL value `jwt`.
    pub fn to_cel(&self) -> cel::Value {
        self.cel.get_or_init(|| cel::to_value(&self.map).unwrap_or(cel::Value::Null)).clone()
    }
}

impl std::ops::Deref for TokenClaims {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        &self.map
    }
}

impl PartialEq for TokenClaims {
    fn eq(&self, other: &TokenClaims) -> bool {
        self.map == other.map
    }
}

/// The current keys of one issuer. Remote JWKS replace them in place when refreshed.
#[derive(Debug, Default)]
pub struct KeyStore {
    current: ArcSwap<KeySet>,
    /// Bumped on every replacement (cached validation results name the keys they used).
    generation: AtomicU64,
}

impl KeyStore {
    pub fn new(keys: KeySet) -> KeyStore {
        KeyStore { current: ArcSwap::from_pointee(keys), generation: AtomicU64::new(0) }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    pub fn replace(&self, keys: KeySet) {
        self.current.store(Arc::new(keys));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// One trusted issuer.
#[derive(Debug)]
pub struct Provider {
    pub issuer: String,
    /// Accepted audiences; empty accepts any (and does not require `aud`).
    pub audiences: Vec<String>,
    /// Claims that must be present (default `exp`).
    pub required_claims: Vec<String>,
    pub keys: Arc<KeyStore>,
    /// Leeway for `exp` and `nbf`, in seconds (this provider's tokens only).
    pub clock_skew_secs: u64,
}

/// Validates tokens against one or more providers (issuers are distinct).
#[derive(Debug)]
pub struct Validator {
    pub providers: Vec<Provider>,
}

/// Why a token was refused. `Display` is safe to show to the client: it never contains the
/// token or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is too large")]
    TooLarge,
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("token has critical header extensions that are not supported")]
    UnsupportedCritical,
    #[error("token has no key id (kid)")]
    MissingKid,
    #[error("token issuer is not trusted")]
    UntrustedIssuer,
    #[error("token key id (kid) is not known")]
    UnknownKid {
        /// Index of the provider whose keys lacked the kid (its JWKS may need refreshing).
        provider: usize,
    },
    #[error("token algorithm does not match its key")]
    KeyMismatch,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token lacks the required claim `{0}`")]
    MissingClaim(String),
    #[error("token claim `{0}` has the wrong type")]
    BadClaim(&'static str),
}

impl JwtError {
    /// A short, fixed name for metrics (`agentgateway_authentication_failures_total`).
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::TooLarge | JwtError::Malformed(_) => "malformed",
            JwtError::UnsupportedAlgorithm | JwtError::UnsupportedCritical | JwtError::KeyMismatch => "unsupported",
            JwtError::MissingKid | JwtError::UnknownKid { .. } => "unknown_key",
            JwtError::UntrustedIssuer => "issuer",
            JwtError::BadSignature => "signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::WrongAudience => "audience",
            JwtError::MissingClaim(_) | JwtError::BadClaim(_) => "claims",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

fn b64(segment: &str) -> Result<Vec<u8>, JwtError> {
    if segment.is_empty() {
        return Err(JwtError::Malformed("empty segment"));
    }
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Malformed("segment is not base64url"))
}

fn as_number(v: &Value, name: &'static str) -> Result<f64, JwtError> {
    v.as_f64().ok_or(JwtError::BadClaim(name))
}

impl Validator {
    /// Changes whenever any provider's keys change (it only grows).
    pub fn key_generation(&self) -> u64 {
        self.providers.iter().map(|p| p.keys.generation()).sum()
    }

    /// The clock skew of the provider that issued `claims`.
    pub fn skew_for(&self, claims: &Map<String, Value>) -> u64 {
        let iss = claims.get("iss").and_then(Value::as_str);
        self.providers.iter().find(|p| Some(p.issuer.as_str()) == iss).map_or(0, |p| p.clock_skew_secs)
    }

    /// Validates `token` at time `now` (seconds since the Unix epoch).
    pub fn validate(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed("a token has three segments"));
        };
        let header_json = b64(h)?;
        // serde would also read a struct from a JSON array; a JOSE header is an object.
        if header_json.trim_ascii_start().first() != Some(&b'{') {
            return Err(JwtError::Malformed("header is not a JSON object"));
        }
        let header: Header = serde_json::from_slice(&header_json)
            .map_err(|_| JwtError::Malformed("header is not a JSON object with `alg`"))?;
        let alg = jwks::parse_alg(&header.alg).ok_or(JwtError::UnsupportedAlgorithm)?;
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we know none.
            return Err(JwtError::UnsupportedCritical);
        }
        let kid = header.kid.filter(|k| !k.is_empty()).ok_or(JwtError::MissingKid)?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&b64(p)?).map_err(|_| JwtError::Malformed("payload is not a JSON object"))?;
        let signature = b64(s)?;

        let iss = match claims.get("iss") {
            None => return Err(JwtError::MissingClaim("iss".into())),
            Some(Value::String(iss)) => iss.as_str(),
            Some(_) => return Err(JwtError::BadClaim("iss")),
        };
        let (index, provider) =
            self.providers.iter().enumerate().find(|(_, p)| p.issuer == iss).ok_or(JwtError::UntrustedIssuer)?;
        let keys = provider.keys.keys();
        let key = keys.get(&kid).ok_or(JwtError::UnknownKid { provider: index })?;
        if !key.kind.allows(alg) || key.pinned.is_some_and(|pinned| pinned != alg) {
            return Err(JwtError::KeyMismatch);
        }
        // ECDSA signatures must be the JOSE fixed-size r‖s form, never DER.
        let fixed = match alg {
            Algorithm::ES256 => Some(64),
            Algorithm::ES384 => Some(96),
            Algorithm::EdDSA => Some(64),
            _ => None,
        };
        if fixed.is_some_and(|n| signature.len() != n) {
            return Err(JwtError::BadSignature);
        }
        let message = &token[..h.len() + 1 + p.len()];
        match jsonwebtoken::crypto::verify(s, message.as_bytes(), &key.decoding, alg) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(JwtError::BadSignature),
        }
        self.check_claims(provider, &claims, now)?;
        Ok(Arc::new(TokenClaims::new(claims)))
    }

    fn check_claims(&self, provider: &Provider, claims: &Map<String, Value>, now: u64) -> Result<(), JwtError> {
        let now = now as f64;
        let skew = provider.clock_skew_secs as f64;
        for name in &provider.required_claims {
            if !claims.contains_key(name) {
                return Err(JwtError::MissingClaim(name.clone()));
            }
        }
        if let Some(exp) = claims.get("exp")
            && now >= as_number(exp, "exp")? + skew
        {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = claims.get("nbf")
            && as_number(nbf, "nbf")? > now + skew
        {
            return Err(JwtError::NotYetValid);
        }
        if let Some(iat) = claims.get("iat") {
            as_number(iat, "iat")?;
        }
        if !provider.audiences.is_empty() {
            let accepted = |a: &str| provider.audiences.iter().any(|x| x == a);
            let ok = match claims.get("aud") {
                None => return Err(JwtError::MissingClaim("aud".into())),
                Some(Value::String(a)) => accepted(a),
                Some(Value::Array(items)) => {
                    let mut any = false;
                    for item in items {
                        any |= accepted(item.as_str().ok_or(JwtError::BadClaim("aud"))?);
                    }
                    any
                }
                Some(_) => return Err(JwtError::BadClaim("aud")),
            };
            if !ok {
                return Err(JwtError::WrongAudience);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
