//! The gateway's `Mcp-Session-Id`: it carries what is needed to resume the session — each
//! target's upstream session id and the client's `initialize` parameters — so any replica can
//! serve any session without a shared store.
//!
//! The id is always sealed with AES-256-GCM under a fresh random nonce: the client can neither
//! read nor forge it, and a flipped byte is refused. With `config.session.key` every replica
//! sharing the key can open it; without one, each gateway process draws a random key at start
//! (its ids then open only on that process, and not after a restart). The key is used as given
//! (no per-session key derivation), so sealing costs microseconds.
//!
//! A session belongs to the caller that created it: the id carries a digest of the caller's
//! identity ([`SessionState::owner`]), and the relay refuses the id from anyone else.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Session ids longer than this are refused before decoding.
pub const MAX_SESSION_ID_LEN: usize = 8 * 1024;
const NONCE_LEN: usize = 12;

/// What a session id carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// One entry per target that joined the session, in backend order.
    #[serde(rename = "t")]
    pub targets: Vec<TargetSession>,
    /// Which backend the session belongs to: an id from one route is refused on another.
    #[serde(rename = "b", default, skip_serializing_if = "String::is_empty")]
    pub backend: String,
    /// The client's `initialize` params, to set up stateful upstreams (stdio, SSE) again on
    /// a replica (or after a restart) that does not hold them.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub init: Option<serde_json::Value>,
    /// Random: tells apart sessions that are otherwise identical (keys the local state).
    #[serde(rename = "n", default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// Who created the session: the caller's [`Owner`] digest (empty for anonymous callers).
    /// The same id presented by another caller is an unknown session.
    #[serde(rename = "o", default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// The protocol version the client asked for in `initialize` (decides whether JSON-RPC
    /// batches are allowed when a request carries no `MCP-Protocol-Version`).
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
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
    /// An empty session of `backend`.
    pub fn default_for(backend: &str) -> SessionState {
        SessionState {
            targets: Vec::new(),
            backend: backend.to_string(),
            init: None,
            nonce: String::new(),
            owner: String::new(),
            version: None,
        }
    }

    pub fn upstream_session(&self, target: &str) -> Option<&str> {
        self.targets.iter().find(|t| t.name == target).and_then(|t| t.session.as_deref())
    }

    pub fn has_target(&self, target: &str) -> bool {
        self.targets.iter().any(|t| t.name == target)
    }

    /// A fresh random nonce for [`SessionState::nonce`].
    pub fn new_nonce() -> String {
        let bytes: [u8; 12] = Aes256Gcm::generate_nonce(&mut OsRng).into();
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// Why a session id was refused. The client is told only that the session is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("session id too long")]
    TooLong,
    #[error("session id is not base64url")]
    Encoding,
    #[error("session id does not open with the session key (tampered, or from another key)")]
    Seal,
    #[error("session id does not decode to a session")]
    Payload,
}

/// A session key in config form was not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session key is 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`")]
pub struct BadKey;

/// Encodes and decodes (and, with a key, seals and opens) session ids.
#[derive(Clone)]
pub struct SessionCodec {
    cipher: Option<Aes256Gcm>,
}

impl std::fmt::Debug for SessionCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCodec").field("sealed", &self.cipher.is_some()).finish()
    }
}

impl Default for SessionCodec {
    /// Sealed under a key of this process: never readable by default.
    fn default() -> Self {
        SessionCodec::ephemeral()
    }
}

impl SessionCodec {
    /// Unsealed ids (base64url JSON). Only for tests and benchmarks: a gateway always seals.
    pub fn plain() -> SessionCodec {
        SessionCodec { cipher: None }
    }

    /// Sealed ids under a random key drawn now: they open only in this process.
    pub fn ephemeral() -> SessionCodec {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        SessionCodec { cipher: Some(Aes256Gcm::new(&key)) }
    }

    /// Sealed ids, from a key of 64 hex digits.
    pub fn sealed(hex_key: &str) -> Result<SessionCodec, BadKey> {
        let hex = hex_key.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadKey);
        }
        let mut key = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| BadKey)?;
            key[i] = u8::from_str_radix(s, 16).map_err(|_| BadKey)?;
        }
        Ok(SessionCodec { cipher: Some(Aes256Gcm::new(&Key::<Aes256Gcm>::from(key))) })
    }

    pub fn is_sealed(&self) -> bool {
        self.cipher.is_some()
    }

    pub fn encode(&self, state: &SessionState) -> String {
        let json = serde_json::to_vec(state).expect("session state serialises");
        match &self.cipher {
            None => URL_SAFE_NO_PAD.encode(json),
            Some(cipher) => {
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                let sealed = cipher.encrypt(&nonce, json.as_slice()).expect("AES-GCM seals any length we use");
                let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                URL_SAFE_NO_PAD.encode(out)
            }
        }
    }

    pub fn decode(&self, id: &str) -> Result<SessionState, SessionError> {
        if id.len() > MAX_SESSION_ID_LEN {
            return Err(SessionError::TooLong);
        }
        let bytes = URL_SAFE_NO_PAD.decode(id).map_err(|_| SessionError::Encoding)?;
        let json = match &self.cipher {
            None => bytes,
            Some(cipher) => {
                if bytes.len() < NONCE_LEN {
                    return Err(SessionError::Seal);
                }
                let (nonce, sealed) = bytes.split_at(NONCE_LEN);
                let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SessionError::Seal)?;
                cipher.decrypt(&Nonce::from(nonce), sealed).map_err(|_| SessionError::Seal)?
            }
        };
        serde_json::from_slice(&json).map_err(|_| SessionError::Payload)
    }
}

/// Seals arbitrary bytes with AES-256-GCM (a fresh nonce each time) into base64url text, and
/// opens such text: what a browser session cookie is made of (`oidc`). Only the key holder
/// can read or make one; a changed byte does not open.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    // The key is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// From a key of 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Result<Sealer, BadKey> {
        let codec = SessionCodec::sealed(hex_key)?;
        Ok(Sealer { cipher: codec.cipher.ok_or(BadKey)? })
    }

    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self.cipher.encrypt(&nonce, plain).expect("AES-GCM seals any length we use");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The bytes sealed in `text`; `None` when it is not one of ours, or was changed. Texts
    /// over `max` characters are refused unread.
    pub fn open(&self, text: &str, max: usize) -> Option<Vec<u8>> {
        if text.len() > max {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.cipher.decrypt(&Nonce::from(nonce), sealed).ok()
    }
}

/// `n` random bytes from the operating system, base64url (state, nonces, PKCE verifiers).
pub fn random_token(n: usize) -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SessionState {
        SessionState {
            targets: vec![
                TargetSession { name: "a".into(), session: Some("abc-123".into()) },
                TargetSession { name: "b".into(), session: None },
            ],
            backend: "route0".into(),
            init: Some(serde_json::json!({"protocolVersion": "2025-06-18"})),
            nonce: SessionState::new_nonce(),
            owner: "b3duZXI".into(),
            version: Some("2025-06-18".into()),
        }
    }

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn plain_round_trip() {
        let codec = SessionCodec::plain();
        let id = codec.encode(&state());
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let back = codec.decode(&id).unwrap();
        assert_eq!(back.upstream_session("a"), Some("abc-123"));
        assert_eq!(back.upstream_session("b"), None);
    }

    #[test]
    fn sealed_round_trip_and_tamper() {
        let codec = SessionCodec::sealed(KEY).unwrap();
        let s = state();
        let id = codec.encode(&s);
        assert_ne!(id, codec.encode(&s), "a fresh nonce every time");
        assert_eq!(codec.decode(&id).unwrap(), s);
        assert!(
            !String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(&id).unwrap()).contains("abc-123"),
            "sealed ids do not show the upstream id"
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&id).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 0x01;
            assert_eq!(codec.decode(&URL_SAFE_NO_PAD.encode(&raw)), Err(SessionError::Seal), "flipped byte {i}");
            raw[i] ^= 0x01;
        }
        let other = SessionCodec::sealed(&KEY.replace('0', "f")).unwrap();
        assert_eq!(other.decode(&id), Err(SessionError::Seal), "another key");
        assert_eq!(
            codec.decode(&SessionCodec::plain().encode(&s)),
            Err(SessionError::Seal),
            "unsealed ids are refused when a key is set"
        );
    }

    #[test]
    fn ephemeral_keys_differ_per_codec() {
        let (a, b) = (SessionCodec::ephemeral(), SessionCodec::ephemeral());
        let s = state();
        let id = a.encode(&s);
        assert_eq!(a.decode(&id).unwrap(), s);
        assert_eq!(b.decode(&id), Err(SessionError::Seal), "another process cannot open it");
        assert_eq!(SessionCodec::plain().decode(&id), Err(SessionError::Payload), "not readable");
    }

    #[test]
    fn refuses_garbage_and_bad_keys() {
        let codec = SessionCodec::plain();
        assert_eq!(codec.decode("not base64!"), Err(SessionError::Encoding));
        assert_eq!(codec.decode(&URL_SAFE_NO_PAD.encode("[1,2]")), Err(SessionError::Payload));
        assert_eq!(codec.decode(&"a".repeat(MAX_SESSION_ID_LEN + 1)), Err(SessionError::TooLong));
        assert_eq!(SessionCodec::sealed("abcd").unwrap_err(), BadKey);
        assert_eq!(SessionCodec::sealed(&"zz".repeat(32)).unwrap_err(), BadKey);
    }
}
