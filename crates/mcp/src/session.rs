//! The gateway's `Mcp-Session-Id`: it carries the upstream session ids themselves, so any
//! replica can serve any session without a shared store.
//!
//! Without a key the id is base64url-encoded JSON, readable by the client (as agentgateway
//! does). Sealing it with `config.session.key` (AES-256-GCM) is added with multi-replica
//! support.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Session ids longer than this are refused before decoding.
pub const MAX_SESSION_ID_LEN: usize = 8 * 1024;

/// What a session id carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// One entry per target, in backend order.
    #[serde(rename = "t")]
    pub targets: Vec<TargetSession>,
}

/// A target's upstream session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSession {
    #[serde(rename = "n")]
    pub name: String,
    /// The upstream's `Mcp-Session-Id`, if it issued one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl SessionState {
    pub fn upstream_session(&self, target: &str) -> Option<&str> {
        self.targets.iter().find(|t| t.name == target).and_then(|t| t.session.as_deref())
    }
}

/// Why a session id was refused. The client is told only that the session is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("session id too long")]
    TooLong,
    #[error("session id is not base64url")]
    Encoding,
    #[error("session id does not decode to a session")]
    Payload,
}

/// Encodes and decodes session ids.
#[derive(Debug, Clone, Default)]
pub struct SessionCodec;

impl SessionCodec {
    pub fn encode(&self, state: &SessionState) -> String {
        let json = serde_json::to_vec(state).expect("session state serialises");
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(&self, id: &str) -> Result<SessionState, SessionError> {
        if id.len() > MAX_SESSION_ID_LEN {
            return Err(SessionError::TooLong);
        }
        let json = URL_SAFE_NO_PAD.decode(id).map_err(|_| SessionError::Encoding)?;
        serde_json::from_slice(&json).map_err(|_| SessionError::Payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let state = SessionState {
            targets: vec![
                TargetSession { name: "a".into(), session: Some("abc-123".into()) },
                TargetSession { name: "b".into(), session: None },
            ],
        };
        let codec = SessionCodec;
        let id = codec.encode(&state);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(codec.decode(&id).unwrap(), state);
        assert_eq!(state.upstream_session("a"), Some("abc-123"));
        assert_eq!(state.upstream_session("b"), None);
    }

    #[test]
    fn refuses_garbage() {
        let codec = SessionCodec;
        assert_eq!(codec.decode("not base64!"), Err(SessionError::Encoding));
        assert_eq!(codec.decode(&URL_SAFE_NO_PAD.encode("[1,2]")), Err(SessionError::Payload));
        assert_eq!(codec.decode(&"a".repeat(MAX_SESSION_ID_LEN + 1)), Err(SessionError::TooLong));
    }
}
