//! Making keys and tokens in tests: every algorithm the gateway accepts, and the malformed
//! and forged tokens it must refuse. Signing uses the RustCrypto crates directly, so a test
//! can sign any header and payload bytes it likes (including lies).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::rngs::OsRng;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::Sha256;

/// Signature algorithms of test keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    PS256,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }
}

enum Secret {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed(ed25519_dalek::SigningKey),
}

/// A private key with its kid, and the public JWK to publish.
pub struct TestKey {
    pub kid: String,
    pub alg: Alg,
    secret: Secret,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    /// A fresh key. RSA keys are 2048 bits.
    pub fn generate(kid: &str, alg: Alg) -> TestKey {
        let secret = match alg {
            Alg::RS256 | Alg::PS256 => {
                Secret::Rsa(Box::new(rsa::RsaPrivateKey::new(&mut OsRng, 2048).expect("RSA key")))
            }
            Alg::ES256 => Secret::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            Alg::ES384 => Secret::P384(p384::ecdsa::SigningKey::random(&mut OsRng)),
            Alg::EdDSA => Secret::Ed(ed25519_dalek::SigningKey::generate(&mut OsRng)),
        };
        TestKey { kid: kid.to_string(), alg, secret }
    }

    /// The public JWK (with `kid`; `alg` only if `pin`).
    pub fn jwk(&self, pin: bool) -> Value {
        let mut jwk = match &self.secret {
            Secret::Rsa(k) => json!({"kty": "RSA", "n": b64(&k.n().to_bytes_be()), "e": b64(&k.e().to_bytes_be())}),
            Secret::P256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                json!({"kty": "EC", "crv": "P-256", "x": b64(p.x().unwrap()), "y": b64(p.y().unwrap())})
            }
            Secret::P384(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                json!({"kty": "EC", "crv": "P-384", "x": b64(p.x().unwrap()), "y": b64(p.y().unwrap())})
            }
            Secret::Ed(k) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.verifying_key().as_bytes())}),
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        if pin {
            jwk["alg"] = json!(self.alg.name());
        }
        jwk
    }

    /// The public key as PEM (for "HMAC keyed with the public key" attacks).
    pub fn public_pem(&self) -> String {
        match &self.secret {
            Secret::Rsa(k) => k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap(),
            Secret::P256(k) => k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
            Secret::P384(k) => k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
            Secret::Ed(k) => format!("{:?}", k.verifying_key().as_bytes()),
        }
    }

    /// Signs `message` with this key's own algorithm (raw JOSE form).
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.sign_as(self.alg, message)
    }

    /// Signs with an explicit algorithm (RSA keys can sign RS256 or PS256).
    pub fn sign_as(&self, alg: Alg, message: &[u8]) -> Vec<u8> {
        match (&self.secret, alg) {
            (Secret::Rsa(k), Alg::RS256) => {
                rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone()).sign(message).to_vec()
            }
            (Secret::Rsa(k), Alg::PS256) => {
                rsa::pss::BlindedSigningKey::<Sha256>::new((**k).clone()).sign_with_rng(&mut OsRng, message).to_vec()
            }
            (Secret::P256(k), _) => {
                let s: p256::ecdsa::Signature = k.sign(message);
                s.to_bytes().to_vec()
            }
            (Secret::P384(k), _) => {
                let s: p384::ecdsa::Signature = k.sign(message);
                s.to_bytes().to_vec()
            }
            (Secret::Ed(k), _) => k.sign(message).to_bytes().to_vec(),
            (Secret::Rsa(_), other) => panic!("an RSA key cannot sign {other:?}"),
        }
    }

    /// An ECDSA signature in DER form (which JOSE forbids).
    pub fn sign_der(&self, message: &[u8]) -> Vec<u8> {
        match &self.secret {
            Secret::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            Secret::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            _ => panic!("DER signatures are for ECDSA keys"),
        }
    }

    /// A complete token: `{"alg", "kid", "typ"}` header plus `claims`.
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg.name(), "kid": self.kid, "typ": "JWT"});
        self.token_with(&header.to_string(), &claims.to_string())
    }

    /// A token from raw header and payload JSON text, signed by this key.
    pub fn token_with(&self, header: &str, payload: &str) -> String {
        let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = self.sign_bytes(message.as_bytes());
        format!("{message}.{}", b64(&sig))
    }
}

/// A JWKS document of the given public keys.
pub fn jwks(keys: &[&TestKey], pin: bool) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk(pin)).collect::<Vec<_>>()}).to_string()
}

/// An HMAC-SHA256 token keyed with `secret` (the classic "alg confusion" forgery).
pub fn hs256_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::{Mac, SimpleHmac};
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let mut mac = SimpleHmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(message.as_bytes());
    format!("{message}.{}", b64(&mac.finalize().into_bytes()))
}

/// Standard claims for issuer `iss` and audience `aud`, valid for an hour.
pub fn claims(iss: &str, aud: &str) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    json!({"iss": iss, "aud": aud, "sub": "alice", "iat": now, "nbf": now - 5, "exp": now + 3600})
}
