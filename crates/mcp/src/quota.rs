//! Per-caller quotas on sessions: how many a caller may hold live at once (sessions whose state
//! the gateway holds: stdio children, legacy SSE streams) and how fast it may start new ones.
//! Anonymous callers count together as one identity and, in addition, per client address; an
//! authenticated caller is never limited by what anonymous callers do.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::caller::Caller;

/// Keys (identities, addresses) tracked at most per table; full tables forget idle keys first.
const MAX_KEYS: usize = 100_000;
/// The longest `Retry-After` ever given.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// Quota settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaSettings {
    /// Live sessions holding gateway state, per identity.
    pub sessions: usize,
    /// Of those, sessions with stdio children, per identity.
    pub stdio_sessions: usize,
    /// New sessions per second per identity, and the burst allowed above that rate.
    pub rate: Rate,
    /// The anonymous identity (every caller without credentials, together).
    pub anonymous_sessions: usize,
    pub anonymous_stdio_sessions: usize,
    pub anonymous_rate: Rate,
    /// New anonymous sessions per client address.
    pub anonymous_rate_per_address: Rate,
}

/// A token-bucket rate: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for QuotaSettings {
    /// Generous for one agent (sessions are few and long-lived), small enough that no caller
    /// can take the gateway's 10,000 session slots or stdio children from the others.
    fn default() -> Self {
        QuotaSettings {
            sessions: 100,
            stdio_sessions: 20,
            rate: Rate { per_second: 20.0, burst: 100.0 },
            anonymous_sessions: 100,
            anonymous_stdio_sessions: 4,
            anonymous_rate: Rate { per_second: 100.0, burst: 200.0 },
            anonymous_rate_per_address: Rate { per_second: 20.0, burst: 100.0 },
        }
    }
}

impl QuotaSettings {
    /// Live-session limits for `caller`: (all, with stdio children).
    pub fn live_limits(&self, caller: &Caller) -> (usize, usize) {
        if caller.is_anonymous() {
            (self.anonymous_sessions, self.anonymous_stdio_sessions)
        } else {
            (self.sessions, self.stdio_sessions)
        }
    }
}

/// A quota was exceeded: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what}; retry in {retry_after} s")]
pub struct OverQuota {
    pub what: &'static str,
    pub retry_after: u64,
}

/// The rate limiter for new sessions.
#[derive(Debug)]
pub struct NewSessions {
    settings: QuotaSettings,
    identities: Buckets<String>,
    addresses: Buckets<IpAddr>,
}

impl Default for NewSessions {
    fn default() -> Self {
        NewSessions::new(QuotaSettings::default())
    }
}

impl NewSessions {
    pub fn new(settings: QuotaSettings) -> NewSessions {
        NewSessions { settings, identities: Buckets::default(), addresses: Buckets::default() }
    }

    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    /// Takes one new session from `caller`'s allowance, or says when to retry.
    pub fn admit(&self, caller: &Caller) -> Result<(), OverQuota> {
        let now = Instant::now();
        let s = &self.settings;
        if caller.is_anonymous() {
            // The address first: a flood from one address must not use up the allowance of
            // every anonymous caller.
            if let Some(addr) = caller.address {
                self.addresses.take(addr, s.anonymous_rate_per_address, now).map_err(|retry_after| OverQuota {
                    what: "too many new sessions from this address",
                    retry_after,
                })?;
            }
            self.identities
                .take(String::new(), s.anonymous_rate, now)
                .map_err(|retry_after| OverQuota { what: "too many new anonymous sessions", retry_after })
        } else {
            self.identities
                .take(caller.owner.clone(), s.rate, now)
                .map_err(|retry_after| OverQuota { what: "too many new sessions for this caller", retry_after })
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Buckets<K> {
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Buckets { map: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq> Buckets<K> {
    /// Takes a token for `key`; `Err(seconds)` until one is available.
    fn take(&self, key: K, rate: Rate, now: Instant) -> Result<(), u64> {
        if rate.per_second <= 0.0 || rate.burst < 1.0 {
            return Err(60);
        }
        let mut map = self.map.lock().expect("quota lock");
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            // Keys whose bucket has refilled are indistinguishable from new ones: forget them.
            let full = Duration::try_from_secs_f64(rate.burst / rate.per_second).unwrap_or(MAX_RETRY);
            map.retain(|_, b| now.duration_since(b.at) < full);
            if map.len() >= MAX_KEYS {
                return Err(1);
            }
        }
        let b = map.entry(key).or_insert(Bucket { tokens: rate.burst, at: now });
        let refill = now.duration_since(b.at).as_secs_f64() * rate.per_second;
        b.tokens = (b.tokens + refill).min(rate.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate.per_second).ceil().clamp(1.0, MAX_RETRY.as_secs_f64()) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> QuotaSettings {
        QuotaSettings {
            rate: Rate { per_second: 1.0, burst: 2.0 },
            anonymous_rate: Rate { per_second: 1.0, burst: 5.0 },
            anonymous_rate_per_address: Rate { per_second: 1.0, burst: 2.0 },
            ..QuotaSettings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_refill_and_tell_when_to_retry() {
        let q = NewSessions::new(settings());
        let alice = Caller::identified([&b"alice"[..]], None);
        assert!(q.admit(&alice).is_ok());
        assert!(q.admit(&alice).is_ok());
        let over = q.admit(&alice).unwrap_err();
        assert_eq!(over.retry_after, 1);
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(q.admit(&alice).is_ok(), "refilled");
        let bob = Caller::identified([&b"bob"[..]], None);
        assert!(q.admit(&bob).is_ok(), "another identity has its own bucket");
    }

    #[tokio::test(start_paused = true)]
    async fn anonymous_floods_are_limited_per_address_first() {
        let q = NewSessions::new(settings());
        let flood = Caller::anonymous(Some("10.0.0.1".parse().unwrap()));
        let other = Caller::anonymous(Some("10.0.0.2".parse().unwrap()));
        let alice = Caller::identified([&b"alice"[..]], Some("10.0.0.1".parse().unwrap()));
        let admitted = (0..100).filter(|_| q.admit(&flood).is_ok()).count();
        assert_eq!(admitted, 2, "the address's burst");
        assert!(q.admit(&other).is_ok(), "another address still gets in");
        assert!(q.admit(&alice).is_ok(), "an authenticated caller at the same address is not limited");
    }
}
