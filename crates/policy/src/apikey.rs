//! API keys: plain or `sha256:` hashed in the config, compared in constant time.

use agw_config::model::ApiKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The accepted keys, stored as SHA-256 digests only.
#[derive(Debug, Default)]
pub struct ApiKeys {
    entries: Vec<([u8; 32], Value)>,
}

impl ApiKeys {
    /// Builds the key list; an error names the entry (by index) and the problem.
    pub fn new(keys: &[ApiKey]) -> Result<ApiKeys, (usize, String)> {
        let mut entries = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let digest = match (&k.key, &k.key_hash) {
                (Some(key), None) => Sha256::digest(key.expose().as_bytes()).into(),
                (None, Some(hash)) => parse_hash(hash).map_err(|e| (i, e))?,
                (Some(_), Some(_)) => return Err((i, "set `key` or `keyHash`, not both".into())),
                (None, None) => return Err((i, "needs `key` or `keyHash`".into())),
            };
            entries.push((digest, k.metadata.clone().unwrap_or(Value::Object(Default::default()))));
        }
        Ok(ApiKeys { entries })
    }

    /// The metadata of the matching key. Every entry is compared, so the time taken does not
    /// depend on which key (if any) matched.
    pub fn check(&self, presented: &str) -> Option<&Value> {
        self.identify(presented).map(|(_, metadata)| metadata)
    }

    /// The matching key's digest (the key's identity: the same on every replica with this
    /// config, and not the key itself) and metadata.
    pub fn identify(&self, presented: &str) -> Option<(&[u8; 32], &Value)> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (stored, metadata) in &self.entries {
            if bool::from(stored.ct_eq(&digest)) {
                found = Some((stored, metadata));
            }
        }
        found
    }
}

fn parse_hash(s: &str) -> Result<[u8; 32], String> {
    let hex = s.strip_prefix("sha256:").ok_or("`keyHash` must look like `sha256:<64 hex digits>`")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("`keyHash` must have 64 hex digits after `sha256:`".into());
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).map_err(|_| "`keyHash` is not hex")?;
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| "`keyHash` is not hex")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agw_config::model::common::Secret;
    use serde_json::json;

    fn key(plain: Option<&str>, hash: Option<&str>, meta: Value) -> ApiKey {
        ApiKey {
            key: plain.map(Secret::new),
            key_hash: hash.map(str::to_string),
            metadata: Some(meta),
            allowed_models: None,
            budgets: None,
        }
    }

    #[test]
    fn plain_and_hashed_keys() {
        // sha256("hashed-key")
        let digest = format!("sha256:{:x}", Sha256::digest(b"hashed-key"));
        let keys = ApiKeys::new(&[
            key(Some("plain-key"), None, json!({"user": "a"})),
            key(None, Some(&digest), json!({"user": "b"})),
        ])
        .unwrap();
        assert_eq!(keys.check("plain-key"), Some(&json!({"user": "a"})));
        assert_eq!(keys.check("hashed-key"), Some(&json!({"user": "b"})));
        assert_eq!(keys.check("plain-key "), None);
        assert_eq!(keys.check(""), None);
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(ApiKeys::new(&[key(None, None, json!({}))]).unwrap_err().0, 0);
        let err = ApiKeys::new(&[key(Some("a"), None, json!({})), key(None, Some("md5:abc"), json!({}))]).unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("sha256:"));
        assert!(ApiKeys::new(&[key(None, Some(&format!("sha256:{}", "zz".repeat(32))), json!({}))]).is_err());
    }
}
