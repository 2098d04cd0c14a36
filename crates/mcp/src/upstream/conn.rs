//! A long-lived connection to an upstream that speaks MCP as a stream of messages (a stdio
//! child, or a legacy HTTP+SSE server): requests are matched to their responses by id; every
//! other message the upstream sends (notifications, its own requests) goes to the session's
//! event queue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// A message from an upstream that is not a response to a pending request.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    pub target: String,
    pub message: Value,
}

/// The id of a message as a map key (its JSON text).
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

/// Why a message could not be exchanged with a stateful upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    #[error("the upstream connection is closed")]
    Closed,
    #[error("{0}")]
    Write(String),
}

/// Shared state of one connection: what is pending and where the rest goes.
#[derive(Debug)]
pub struct Router {
    pub target: String,
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    events: mpsc::Sender<ServerEvent>,
    closed: AtomicBool,
}

impl Router {
    pub fn new(target: String, events: mpsc::Sender<ServerEvent>) -> Router {
        Router { target, pending: Mutex::new(HashMap::new()), events, closed: AtomicBool::new(false) }
    }

    /// Registers interest in the response to `id` (call before sending the request).
    pub fn expect(&self, id: &Value) -> Result<oneshot::Receiver<Value>, ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id_key(id), tx);
        Ok(rx)
    }

    /// Forgets a request (it timed out or the client went away).
    pub fn forget(&self, id: &Value) {
        self.pending.lock().expect("pending lock").remove(&id_key(id));
    }

    /// Handles one message from the upstream.
    pub async fn dispatch(&self, message: Value) {
        let is_response =
            message.get("method").is_none() && (message.get("result").is_some() || message.get("error").is_some());
        if is_response {
            if let Some(id) = message.get("id") {
                let waiter = self.pending.lock().expect("pending lock").remove(&id_key(id));
                if let Some(tx) = waiter {
                    let _ = tx.send(message);
                    return;
                }
            }
            debug!(target = %self.target, "response to no pending request dropped");
            return;
        }
        let event = ServerEvent { target: self.target.clone(), message };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            warn!(target = %self.target, "server messages are not being read; one was dropped");
        }
    }

    /// The upstream is gone: every pending request fails.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.pending.lock().expect("pending lock").clear();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}
