//! HTTP Basic authentication against an htpasswd file: bcrypt (`$2a$`, `$2b$`, `$2y$`),
//! SHA-1 (`{SHA}`), and MD5-crypt (`$apr1$`, `$1$`). Plain-text and DES-crypt entries are
//! refused at load: they are too weak to accept.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest as _, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
enum Hash {
    Bcrypt(String),
    Sha1([u8; 20]),
    /// MD5-crypt with its magic (`$apr1$` or `$1$`), salt, and the whole stored string.
    Md5Crypt {
        magic: &'static str,
        salt: String,
        full: String,
    },
}

/// Parsed htpasswd entries (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    users: Arc<HashMap<String, Hash>>,
    /// What an unknown user's password is checked against, so that an unknown user takes as
    /// long as a known one (no user enumeration by timing): the costliest bcrypt entry.
    decoy: Option<Hash>,
}

impl Htpasswd {
    /// Parses `user:hash` lines (blank lines and `#` comments are skipped). An error names
    /// the line.
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let (user, hash) = line.split_once(':').ok_or(format!("htpasswd line {n}: expected `user:hash`"))?;
            let hash = parse_hash(hash).map_err(|e| format!("htpasswd line {n} (user `{user}`): {e}"))?;
            if users.insert(user.to_string(), hash).is_some() {
                return Err(format!("htpasswd line {n}: user `{user}` appears twice"));
            }
        }
        let cost = |h: &Hash| match h {
            Hash::Bcrypt(s) => s.get(4..6).and_then(|c| c.parse::<u32>().ok()).unwrap_or(0),
            _ => 0,
        };
        let decoy = users.values().filter(|h| matches!(h, Hash::Bcrypt(_))).max_by_key(|h| cost(h)).cloned();
        Ok(Htpasswd { users: Arc::new(users), decoy })
    }

    /// Whether checking `user`'s password is slow (bcrypt: milliseconds of CPU), so that it
    /// belongs on a blocking thread rather than on the async runtime.
    pub fn is_slow(&self, user: &str) -> bool {
        matches!(self.users.get(user).or(self.decoy.as_ref()), Some(Hash::Bcrypt(_)))
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is right for `user`.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            None => {
                if let Some(decoy) = &self.decoy {
                    // The same work as for a known user; the answer is no whatever it says.
                    let _ = check(decoy, password);
                }
                false
            }
            Some(hash) => check(hash, password),
        }
    }
}

fn check(hash: &Hash, password: &str) -> bool {
    match hash {
        Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        Hash::Sha1(stored) => {
            let digest: [u8; 20] = Sha1::digest(password.as_bytes()).into();
            bool::from(digest.ct_eq(stored))
        }
        Hash::Md5Crypt { magic, salt, full } => {
            let computed = md5_crypt(password.as_bytes(), salt.as_bytes(), magic);
            bool::from(computed.as_bytes().ct_eq(full.as_bytes()))
        }
    }
}

fn parse_hash(h: &str) -> Result<Hash, String> {
    if h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$") || h.starts_with("$2x$") {
        return Ok(Hash::Bcrypt(h.to_string()));
    }
    if let Some(b64) = h.strip_prefix("{SHA}") {
        let bytes = STANDARD.decode(b64).map_err(|_| "{SHA} hash is not base64".to_string())?;
        return <[u8; 20]>::try_from(bytes.as_slice())
            .map(Hash::Sha1)
            .map_err(|_| "{SHA} hash must be 20 bytes".into());
    }
    for magic in ["$apr1$", "$1$"] {
        if let Some(rest) = h.strip_prefix(magic) {
            let (salt, _) = rest.split_once('$').ok_or("MD5-crypt hash has no salt")?;
            return Ok(Hash::Md5Crypt { magic, salt: salt.to_string(), full: h.to_string() });
        }
    }
    Err("unsupported hash (use bcrypt, {SHA} or $apr1$; plain text and crypt are refused)".into())
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt as in Apache's `apr_md5_encode` (`$apr1$`) and FreeBSD's `crypt` (`$1$`).
fn md5_crypt(pw: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = &salt[..salt.len().min(8)];
    let alt: [u8; 16] = Md5::new().chain_update(pw).chain_update(salt).chain_update(pw).finalize().into();
    let mut ctx = Md5::new().chain_update(pw).chain_update(magic.as_bytes()).chain_update(salt);
    let mut left = pw.len();
    while left > 0 {
        ctx.update(&alt[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    let mut bits = pw.len();
    while bits > 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        bits >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(pw)
        } else {
            c.update(fin)
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(pw);
        }
        if i & 1 == 1 {
            c.update(fin)
        } else {
            c.update(pw)
        }
        fin = c.finalize().into();
    }
    let mut out = format!("{magic}{}$", String::from_utf8_lossy(salt));
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64((u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]), 4);
    }
    to64(u32::from(fin[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `openssl passwd -apr1 -salt xyz password`, `openssl passwd -1 -salt abc
    // password`, `printf password | openssl dgst -sha1 -binary | base64`, and Python's
    // `crypt.crypt('password', '$2b$05$abcdefghijklmnopqrstuv')`.
    const FILE: &str = "\
# test users
apr:$apr1$xyz$NU.niW1.aK5j0LYFfMca4/
md5:$1$abc$BXBqpb9BZcZhXLgbee.0s/
sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=
bcrypt:$2b$05$abcdefghijklmnopqrstuuWG29KuyeAicPCJODk1zjyGvyQUU2awu
";

    #[test]
    fn every_supported_hash_verifies() {
        let h = Htpasswd::parse(FILE).unwrap();
        assert_eq!(h.len(), 4);
        for user in ["apr", "md5", "sha", "bcrypt"] {
            assert!(h.verify(user, "password"), "{user}");
            assert!(!h.verify(user, "passwordx"), "{user}");
            assert!(!h.verify(user, ""), "{user}");
        }
        assert!(!h.verify("nobody", "password"));
        assert!(h.is_slow("bcrypt") && h.is_slow("nobody"), "unknown users cost a bcrypt check too");
        assert!(!h.is_slow("sha"));
        let cheap = Htpasswd::parse("sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=").unwrap();
        assert!(!cheap.is_slow("nobody"));
    }

    #[test]
    fn weak_or_broken_entries_are_refused() {
        assert!(Htpasswd::parse("u:plaintext").unwrap_err().contains("line 1"));
        assert!(Htpasswd::parse("u:abJnggxhB/yWI").is_err(), "DES crypt");
        assert!(Htpasswd::parse("no-colon").is_err());
        assert!(Htpasswd::parse("u:{SHA}AAAA").is_err());
        assert!(
            Htpasswd::parse("a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\na:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")
                .unwrap_err()
                .contains("twice")
        );
    }
}
