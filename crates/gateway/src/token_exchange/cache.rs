//! Tokens obtained from token endpoints, keyed by the SHA-256 of what was sent (so no caller
//! token is kept as a key). One caller fetches a missing or stale entry while the others with
//! the same key wait for it; an entry is used until 15 s before it expires, and never outlives
//! the subject token's `exp`. Bounded: when full, empty and stale entries go first, then any.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agw_config::model::Secret;
use sha2::{Digest, Sha256};

use super::{Exchange, ExchangeError};

/// A token is not used in its last seconds: it could expire on the way to the upstream.
pub(super) const MARGIN: Duration = Duration::from_secs(15);

type Key = [u8; 32];

#[derive(Debug)]
pub struct TokenCache {
    max: usize,
    default_ttl: Duration,
    entries: Mutex<HashMap<Key, Arc<Slot>>>,
}

#[derive(Debug, Default)]
struct Slot {
    token: tokio::sync::Mutex<Option<(Secret, SystemTime)>>,
}

/// The digest of one exchange's inputs (each field length-prefixed).
pub(super) fn key(x: &Exchange<'_>) -> Key {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(x.subject.as_bytes());
    field(x.subject_type.as_bytes());
    match &x.actor {
        Some((token, token_type)) => {
            field(b"actor");
            field(token.as_bytes());
            field(token_type.as_bytes());
        }
        None => field(b""),
    }
    for (name, value) in &x.params {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    h.finalize().into()
}

fn fresh(expires_at: SystemTime, now: SystemTime) -> bool {
    expires_at.duration_since(now).is_ok_and(|left| left > MARGIN)
}

impl TokenCache {
    pub fn new(max: usize, default_ttl: Duration) -> TokenCache {
        TokenCache { max, default_ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// When an answer with `expires_in` for a subject expiring at `subject_exp` stops being
    /// used; `None`: not worth keeping.
    pub fn expiry(&self, expires_in: Option<u64>, subject_exp: Option<u64>) -> Option<SystemTime> {
        let now = SystemTime::now();
        let mut at = now.checked_add(expires_in.map_or(self.default_ttl, Duration::from_secs))?;
        if let Some(exp) = subject_exp.and_then(|e| UNIX_EPOCH.checked_add(Duration::from_secs(e))) {
            at = at.min(exp);
        }
        fresh(at, now).then_some(at)
    }

    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: Key,
        fetch: F,
        expiry: impl FnOnce(Option<u64>) -> Option<SystemTime>,
    ) -> Result<Secret, ExchangeError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Secret, Option<u64>), ExchangeError>>,
    {
        let slot = self.slot(key);
        let mut held = slot.token.lock().await;
        if let Some((token, at)) = held.as_ref()
            && fresh(*at, SystemTime::now())
        {
            return Ok(token.clone());
        }
        let (token, expires_in) = fetch().await?;
        *held = expiry(expires_in).map(|at| (token.clone(), at));
        Ok(token)
    }

    fn slot(&self, key: Key) -> Arc<Slot> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = entries.get(&key) {
            return s.clone();
        }
        if entries.len() >= self.max {
            let now = SystemTime::now();
            // Entries nobody is fetching that hold nothing usable.
            entries.retain(|_, s| match s.token.try_lock() {
                Ok(t) => t.as_ref().is_some_and(|(_, at)| fresh(*at, now)),
                Err(_) => true,
            });
            while entries.len() >= self.max {
                let Some(k) = entries.keys().next().copied() else { break };
                entries.remove(&k);
            }
        }
        entries.entry(key).or_default().clone()
    }

    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}
