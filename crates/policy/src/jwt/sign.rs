//! Signing short-lived JWTs for upstreams (`backendAuth.jwtSign`): fixed claims from the
//! config, `iat` and `exp` set at each signing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

/// `iat` is backdated this much, for upstreams whose clocks run behind the gateway's.
const BACKDATE: Duration = Duration::from_secs(10);
/// Claims the signer sets itself.
pub const RESERVED: [&str; 3] = ["iat", "exp", "nbf"];

/// A key and the token it signs, minus the times.
pub struct Signer {
    key: EncodingKey,
    header: Header,
    claims: Map<String, Value>,
    ttl: Duration,
}

impl std::fmt::Debug for Signer {
    // The key is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("alg", &self.header.alg).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// Why a signer could not be built; the messages never include the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    #[error("`{0}` is not a signing algorithm here (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)")]
    Algorithm(String),
    #[error(
        "not a PEM private key for {0} (`RSA PRIVATE KEY` (PKCS#1) for RS*/PS*; `PRIVATE KEY` (PKCS#8) with EC P-256/P-384 for ES256/ES384, Ed25519 for EdDSA)"
    )]
    Key(String),
    #[error("claim `{0}` is set by the signer")]
    Reserved(String),
    #[error("the lifetime must be at least one second")]
    Ttl,
}

impl Signer {
    pub fn new(
        alg: &str,
        pem: &[u8],
        kid: Option<String>,
        claims: Map<String, Value>,
        ttl: Duration,
    ) -> Result<Signer, SignerError> {
        let algorithm = match alg {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            other => return Err(SignerError::Algorithm(other.to_string())),
        };
        let bad_key = || SignerError::Key(alg.to_string());
        let key = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => {
                EncodingKey::from_ec_der(&pem_block(pem, "PRIVATE KEY").ok_or_else(bad_key)?)
            }
            Algorithm::EdDSA => EncodingKey::from_ed_der(&pem_block(pem, "PRIVATE KEY").ok_or_else(bad_key)?),
            _ => EncodingKey::from_rsa_der(&pem_block(pem, "RSA PRIVATE KEY").ok_or_else(bad_key)?),
        };
        if let Some(r) = RESERVED.iter().find(|r| claims.contains_key(**r)) {
            return Err(SignerError::Reserved(r.to_string()));
        }
        if ttl < Duration::from_secs(1) {
            return Err(SignerError::Ttl);
        }
        let mut header = Header::new(algorithm);
        header.kid = kid;
        let signer = Signer { key, header, claims, ttl };
        // A key of the wrong kind for the algorithm shows here, at load, not per request.
        signer.sign(SystemTime::now()).map_err(|_| SignerError::Key(alg.to_string()))?;
        Ok(signer)
    }

    /// A token valid from `now` (backdated a little) for the configured lifetime.
    pub fn sign(&self, now: SystemTime) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_with(now, [])
    }

    /// [`Self::sign`] with more claims for this token only (e.g. a fresh `jti`).
    pub fn sign_with<'a>(
        &self,
        now: SystemTime,
        extra: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut claims = self.claims.clone();
        claims.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        claims.insert("iat".into(), Value::from(secs.saturating_sub(BACKDATE.as_secs())));
        claims.insert("exp".into(), Value::from(secs.saturating_add(self.ttl.as_secs())));
        jsonwebtoken::encode(&self.header, &claims, &self.key)
    }
}

/// The DER content of the first PEM block labelled `label`.
fn pem_block(pem: &[u8], label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLzzSCp9GwtSu9U6R\n3OIveZe93Vs7jy2IpOT2/Ieu+jWhRANCAASqHIGiZTO9Qgwnm2jKlomX/cRAthGw\nZr+wQ4bp3GVScNiij/+XFnsEzZb2kTx00l5t5H9uEFlVwD6/vZ14TEQu\n-----END PRIVATE KEY-----\n";

    #[test]
    fn signs_with_times_and_refuses_what_it_cannot_do() {
        let mut claims = Map::new();
        claims.insert("sub".into(), "svc".into());
        let s =
            Signer::new("ES256", EC.as_bytes(), Some("k1".into()), claims.clone(), Duration::from_secs(60)).unwrap();
        let token = s.sign(UNIX_EPOCH + Duration::from_secs(1_000)).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        let payload: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(payload["iat"], 990);
        assert_eq!(payload["exp"], 1_060);
        assert_eq!(payload["sub"], "svc");

        assert_eq!(
            Signer::new("HS256", EC.as_bytes(), None, Map::new(), Duration::from_secs(60)).unwrap_err(),
            SignerError::Algorithm("HS256".into())
        );
        assert_eq!(
            Signer::new("RS256", EC.as_bytes(), None, Map::new(), Duration::from_secs(60)).unwrap_err(),
            SignerError::Key("RS256".into())
        );
        let mut bad = Map::new();
        bad.insert("exp".into(), 1.into());
        assert_eq!(
            Signer::new("ES256", EC.as_bytes(), None, bad, Duration::from_secs(60)).unwrap_err(),
            SignerError::Reserved("exp".into())
        );
        assert_eq!(
            Signer::new("ES256", EC.as_bytes(), None, Map::new(), Duration::ZERO).unwrap_err(),
            SignerError::Ttl
        );
    }
}
