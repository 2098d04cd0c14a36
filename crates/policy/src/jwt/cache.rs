//! A bounded cache of validation results, so that a client presenting the same token on every
//! request pays for its signature once (an ES256 verification costs ~300 µs; a lookup, well
//! under a microsecond).
//!
//! Entries are keyed by the SHA-256 of the token (the token itself is not kept). A valid
//! token is cached until its `exp` (plus the provider's clock skew) or for [`MAX_VALID_FOR`],
//! whichever comes first. A refusal that cost a signature check (bad signature, expired,
//! wrong audience, claims) is remembered for [`REFUSAL_FOR`], so a client looping on a bad
//! token does not cost a verification per request; refusals are kept apart (and fewer), so a
//! flood of bad tokens cannot evict the valid ones. Cheap refusals (malformed, unknown issuer)
//! and ones that time or a key refresh can change (`nbf`, an unknown `kid`) are not cached.
//! Every entry records the generation of the keys it was checked against: when any provider's
//! keys change, older entries no longer count.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Claims, JwtError, Validator};

/// Most valid tokens kept; when full, expired entries go, then (if still full) all of them.
pub const MAX_ENTRIES: usize = 10_000;
/// Most refusals kept (the same way).
pub const MAX_REFUSALS: usize = 1_000;
/// Longest a valid token is trusted without checking it again (seconds).
pub const MAX_VALID_FOR: u64 = 300;
/// How long a refusal is remembered (seconds).
pub const REFUSAL_FOR: u64 = 5;

#[derive(Debug, Clone)]
struct Entry {
    result: Result<Claims, JwtError>,
    /// Seconds since the Unix epoch; the entry counts while `now < until`.
    until: u64,
    generation: u64,
}

/// Validation results by token hash.
#[derive(Debug, Default)]
pub struct TokenCache {
    valid: Mutex<HashMap<[u8; 32], Entry>>,
    refused: Mutex<HashMap<[u8; 32], Entry>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    /// The remembered result for `token`, if it still holds at `now` under keys of
    /// `generation`.
    pub fn get(&self, token: &str, now: u64, generation: u64) -> Option<Result<Claims, JwtError>> {
        let k = key(token);
        let found = |map: &Mutex<HashMap<[u8; 32], Entry>>| {
            let entries = map.lock().expect("token cache lock");
            let e = entries.get(&k)?;
            (now < e.until && e.generation == generation).then(|| e.result.clone())
        };
        found(&self.valid).or_else(|| found(&self.refused))
    }

    /// Remembers a result obtained at `now` under keys of `generation`.
    pub fn put(
        &self,
        validator: &Validator,
        token: &str,
        result: &Result<Claims, JwtError>,
        now: u64,
        generation: u64,
    ) {
        let (map, max, until) = match result {
            Ok(claims) => {
                let skew = validator.skew_for(claims);
                let by_exp =
                    claims.get("exp").and_then(Value::as_f64).map(|exp| (exp.max(0.0) as u64).saturating_add(skew));
                let cap = now + MAX_VALID_FOR;
                (&self.valid, MAX_ENTRIES, by_exp.map_or(cap, |e| e.min(cap)))
            }
            Err(
                JwtError::BadSignature
                | JwtError::Expired
                | JwtError::WrongAudience
                | JwtError::MissingClaim(_)
                | JwtError::BadClaim(_),
            ) => (&self.refused, MAX_REFUSALS, now + REFUSAL_FOR),
            Err(_) => return,
        };
        if until <= now {
            return;
        }
        let mut entries = map.lock().expect("token cache lock");
        if entries.len() >= max {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= max {
                entries.clear();
            }
        }
        entries.insert(key(token), Entry { result: result.clone(), until, generation });
    }

    /// Entries held (valid and refused).
    pub fn len(&self) -> usize {
        self.valid.lock().expect("token cache lock").len() + self.refused.lock().expect("token cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
