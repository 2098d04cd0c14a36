//! State a gateway must hold locally for some sessions: connections to stateful upstreams
//! (stdio children, legacy SSE streams), the queue of their unsolicited messages, and legacy
//! SSE client streams. Sessions with only Streamable HTTP targets need none of it.
//!
//! Idle sessions expire, and the number of live ones is bounded; expiring or ending a session
//! closes its connections (and kills its children).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::caller::Caller;
use crate::quota::{OverQuota, QuotaSettings};
use crate::session::SessionState;
use crate::upstream::Conn;
use crate::upstream::conn::ServerEvent;

/// Unsolicited upstream messages buffered per session until a client stream takes them.
const EVENT_QUEUE: usize = 256;

/// The local side of one session.
#[derive(Debug)]
pub struct LocalSession {
    pub key: String,
    conns: tokio::sync::Mutex<HashMap<String, Conn>>,
    pub events_tx: mpsc::Sender<ServerEvent>,
    /// Held by whichever client stream currently delivers unsolicited messages.
    pub events_rx: tokio::sync::Mutex<mpsc::Receiver<ServerEvent>>,
    last_used: Mutex<Instant>,
    /// Legacy SSE client sessions: the state (known after `initialize`) and the client stream.
    pub legacy: Option<Legacy>,
    /// The caller that created the session ([`Caller::owner`]), counted against its quota.
    pub owner: String,
    /// Whether the session runs stdio children (counted against the stdio quota).
    pub stdio: bool,
}

#[derive(Debug)]
pub struct Legacy {
    pub state: Mutex<Option<SessionState>>,
    pub out: mpsc::Sender<Bytes>,
}

impl LocalSession {
    pub fn touch(&self) {
        *self.last_used.lock().expect("clock lock") = Instant::now();
    }

    pub async fn conn(&self, target: &str) -> Option<Conn> {
        let conns = self.conns.lock().await;
        conns.get(target).filter(|c| !c.router().is_closed()).cloned()
    }

    /// Adds a connection (closing one it replaces).
    pub async fn insert_conn(&self, target: &str, conn: Conn) {
        let old = self.conns.lock().await.insert(target.to_string(), conn);
        if let Some(old) = old {
            old.close().await;
        }
    }

    /// Closes every connection (kills children).
    pub async fn close(&self) {
        let conns: Vec<Conn> = self.conns.lock().await.drain().map(|(_, c)| c).collect();
        for c in conns {
            c.close().await;
        }
    }

    pub async fn conn_count(&self) -> usize {
        self.conns.lock().await.len()
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many live sessions ({0}); try again later")]
    TooMany(usize),
    #[error(transparent)]
    OverQuota(#[from] OverQuota),
}

/// How long a caller over its live-session quota is told to wait (sessions end when their
/// client deletes them or after the idle TTL).
const LIVE_RETRY_AFTER: u64 = 10;

/// All local sessions of a gateway.
#[derive(Debug)]
pub struct LocalSessions {
    inner: Mutex<Inner>,
    pub ttl: Duration,
    pub max: usize,
    quotas: QuotaSettings,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Arc<LocalSession>>,
    /// Live sessions per owner: (all, with stdio children).
    owners: HashMap<String, (usize, usize)>,
}

impl Inner {
    fn remove(&mut self, key: &str) -> Option<Arc<LocalSession>> {
        let s = self.map.remove(key)?;
        if let Some(count) = self.owners.get_mut(&s.owner) {
            count.0 = count.0.saturating_sub(1);
            count.1 = count.1.saturating_sub(usize::from(s.stdio));
            if count.0 == 0 {
                self.owners.remove(&s.owner);
            }
        }
        Some(s)
    }
}

impl LocalSessions {
    pub fn new(ttl: Duration, max: usize) -> LocalSessions {
        LocalSessions::with_quotas(ttl, max, QuotaSettings::default())
    }

    pub fn with_quotas(ttl: Duration, max: usize, quotas: QuotaSettings) -> LocalSessions {
        LocalSessions { inner: Mutex::new(Inner::default()), ttl, max, quotas }
    }

    /// The session for `key`, without marking it used (check who asks first).
    pub fn peek(&self, key: &str) -> Option<Arc<LocalSession>> {
        self.inner.lock().expect("sessions lock").map.get(key).cloned()
    }

    pub fn get(&self, key: &str) -> Option<Arc<LocalSession>> {
        let s = self.inner.lock().expect("sessions lock").map.get(key).cloned();
        if let Some(s) = &s {
            s.touch();
        }
        s
    }

    /// The session for `key`, created for `caller` if needed: bounded by `max` in all and by
    /// the caller's live-session quota (`stdio`: the session runs stdio children).
    pub fn get_or_create(
        &self,
        key: &str,
        legacy: Option<Legacy>,
        caller: &Caller,
        stdio: bool,
    ) -> Result<Arc<LocalSession>, Refused> {
        let mut inner = self.inner.lock().expect("sessions lock");
        if let Some(s) = inner.map.get(key) {
            s.touch();
            return Ok(s.clone());
        }
        if inner.map.len() >= self.max {
            return Err(Refused::TooMany(self.max));
        }
        let (max_all, max_stdio) = self.quotas.live_limits(caller);
        let (all, with_stdio) = inner.owners.get(&caller.owner).copied().unwrap_or_default();
        if all >= max_all || (stdio && with_stdio >= max_stdio) {
            let what = if stdio && with_stdio >= max_stdio {
                "too many live stdio sessions for this caller"
            } else {
                "too many live sessions for this caller"
            };
            return Err(Refused::OverQuota(OverQuota { what, retry_after: LIVE_RETRY_AFTER }));
        }
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let s = Arc::new(LocalSession {
            key: key.to_string(),
            conns: Default::default(),
            events_tx,
            events_rx: tokio::sync::Mutex::new(events_rx),
            last_used: Mutex::new(Instant::now()),
            legacy,
            owner: caller.owner.clone(),
            stdio,
        });
        inner.map.insert(key.to_string(), s.clone());
        let count = inner.owners.entry(caller.owner.clone()).or_default();
        count.0 += 1;
        count.1 += usize::from(stdio);
        Ok(s)
    }

    /// Ends a session: closes its connections.
    pub async fn remove(&self, key: &str) {
        let s = self.inner.lock().expect("sessions lock").remove(key);
        if let Some(s) = s {
            s.close().await;
        }
    }

    /// Ends sessions idle longer than the TTL; returns how many.
    pub async fn expire(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Arc<LocalSession>> = {
            let mut inner = self.inner.lock().expect("sessions lock");
            let keys: Vec<String> = inner
                .map
                .iter()
                .filter(|(_, s)| now.duration_since(*s.last_used.lock().expect("clock lock")) > self.ttl)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| inner.remove(k)).collect()
        };
        for s in &expired {
            debug!(session = %s.key, "session expired");
            s.close().await;
        }
        expired.len()
    }

    /// Ends every session (shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Arc<LocalSession>> = {
            let mut inner = self.inner.lock().expect("sessions lock");
            inner.owners.clear();
            inner.map.drain().map(|(_, s)| s).collect()
        };
        for s in all {
            s.close().await;
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("sessions lock").map.len()
    }

    /// Live sessions of one owner: (all, with stdio children).
    pub fn owned_by(&self, owner: &str) -> (usize, usize) {
        self.inner.lock().expect("sessions lock").owners.get(owner).copied().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for LocalSessions {
    fn default() -> Self {
        LocalSessions::new(Duration::from_secs(30 * 60), 10_000)
    }
}
