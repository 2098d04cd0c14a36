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
#[error("too many live sessions ({0}); try again later")]
pub struct TooMany(pub usize);

/// All local sessions of a gateway.
#[derive(Debug)]
pub struct LocalSessions {
    map: Mutex<HashMap<String, Arc<LocalSession>>>,
    pub ttl: Duration,
    pub max: usize,
}

impl LocalSessions {
    pub fn new(ttl: Duration, max: usize) -> LocalSessions {
        LocalSessions { map: Mutex::new(HashMap::new()), ttl, max }
    }

    pub fn get(&self, key: &str) -> Option<Arc<LocalSession>> {
        let s = self.map.lock().expect("sessions lock").get(key).cloned();
        if let Some(s) = &s {
            s.touch();
        }
        s
    }

    /// The session for `key`, created if needed (bounded by `max`).
    pub fn get_or_create(&self, key: &str, legacy: Option<Legacy>) -> Result<Arc<LocalSession>, TooMany> {
        let mut map = self.map.lock().expect("sessions lock");
        if let Some(s) = map.get(key) {
            s.touch();
            return Ok(s.clone());
        }
        if map.len() >= self.max {
            return Err(TooMany(self.max));
        }
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let s = Arc::new(LocalSession {
            key: key.to_string(),
            conns: Default::default(),
            events_tx,
            events_rx: tokio::sync::Mutex::new(events_rx),
            last_used: Mutex::new(Instant::now()),
            legacy,
        });
        map.insert(key.to_string(), s.clone());
        Ok(s)
    }

    /// Ends a session: closes its connections.
    pub async fn remove(&self, key: &str) {
        let s = self.map.lock().expect("sessions lock").remove(key);
        if let Some(s) = s {
            s.close().await;
        }
    }

    /// Ends sessions idle longer than the TTL; returns how many.
    pub async fn expire(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Arc<LocalSession>> = {
            let mut map = self.map.lock().expect("sessions lock");
            let keys: Vec<String> = map
                .iter()
                .filter(|(_, s)| now.duration_since(*s.last_used.lock().expect("clock lock")) > self.ttl)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for s in &expired {
            debug!(session = %s.key, "session expired");
            s.close().await;
        }
        expired.len()
    }

    /// Ends every session (shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Arc<LocalSession>> = self.map.lock().expect("sessions lock").drain().map(|(_, s)| s).collect();
        for s in all {
            s.close().await;
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("sessions lock").len()
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
