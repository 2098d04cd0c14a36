//! Who is calling: a digest of the identity the gateway's authentication established, and the
//! client's address. Sessions belong to the caller that created them, and quotas are counted
//! per caller.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The caller of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// A digest of the caller's identity; empty for an anonymous caller. Opaque: it goes into
    /// (sealed) session ids and quota tables, never into logs.
    pub owner: String,
    /// The client's address, for per-address quotas of anonymous callers.
    pub address: Option<IpAddr>,
}

impl Caller {
    /// A caller without credentials.
    pub fn anonymous(address: Option<IpAddr>) -> Caller {
        Caller { owner: String::new(), address }
    }

    /// A caller identified by `parts` (e.g. `["jwt", issuer, subject]`): 128 bits of the
    /// SHA-256 of the length-prefixed parts, so two different identities cannot be spelled
    /// the same way.
    pub fn identified<'a>(parts: impl IntoIterator<Item = &'a [u8]>, address: Option<IpAddr>) -> Caller {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        let digest = h.finalize();
        Caller { owner: URL_SAFE_NO_PAD.encode(&digest[..16]), address }
    }

    pub fn is_anonymous(&self) -> bool {
        self.owner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_do_not_collide_by_spelling() {
        let a = Caller::identified([&b"jwt"[..], b"iss", b"ab"], None);
        let b = Caller::identified([&b"jwt"[..], b"issa", b"b"], None);
        assert_ne!(a.owner, b.owner);
        assert_eq!(a.owner, Caller::identified([&b"jwt"[..], b"iss", b"ab"], None).owner);
        assert!(!a.is_anonymous());
        assert!(Caller::anonymous(None).is_anonymous());
        assert_eq!(a.owner.len(), 22);
    }
}
