//! Authentication on a request: JWT (`jwtAuth`, `mcpAuthentication`), API keys, Basic.
//! Each policy reads its credential, decides by its mode, records who the caller is in
//! [`Identity`], and takes the credential out of the request so it does not travel upstream.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use agw_config::model::AuthMode;
use agw_http::body::{self, Body};
use agw_policy::apikey::ApiKeys;
use agw_policy::basic::Htpasswd;
use agw_policy::jwt::cache::TokenCache;
use agw_policy::jwt::{Claims, JwtError, Validator};
use agw_policy::location::Location;
use base64::Engine;
use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value, json};
use tracing::debug;

use crate::jwks::RemoteJwks;

/// Who the caller is, as far as the policies found out. Rules see it as `jwt`, `apiKey`,
/// `basicAuth`.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub jwt: Option<Claims>,
    pub api_key: Option<Value>,
    /// The SHA-256 digest of the accepted API key: who the key-holder is, without the key.
    pub api_key_digest: Option<[u8; 32]>,
    pub basic_user: Option<String>,
    /// The validated bearer token, for `backendAuth: passthrough` and `preserveToken`.
    pub token: Option<Token>,
    /// The client certificate verified during the TLS handshake (mTLS listeners).
    pub client_cert: Option<std::sync::Arc<crate::listener::tls::ClientCert>>,
    /// The metadata `extAuthz` services returned (`extauthz.*` in CEL): a JSON object.
    pub extauthz: Option<Value>,
}

impl Identity {
    /// The caller as the MCP relay knows it: sessions are bound to it and quotas counted
    /// against it. Every credential that was accepted takes part (JWT issuer and subject, API
    /// key, Basic user); with none, the caller is anonymous.
    pub fn caller(&self, peer: std::net::SocketAddr) -> agw_mcp::Caller {
        let address = Some(peer.ip());
        let mut parts: Vec<std::borrow::Cow<'_, [u8]>> = Vec::new();
        if let Some(claims) = &self.jwt {
            let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::as_bytes);
            parts.extend([b"jwt".as_slice().into(), text("iss").unwrap_or_default().into()]);
            // The subject names the caller. A token without a string `sub` (client-credentials
            // tokens of some providers) is named by its client (`azp`, `client_id`), else by
            // all its claims: such a token is an identity of its own, never one shared by
            // every sub-less token of the issuer.
            match (claims.get("sub"), text("azp").or(text("client_id"))) {
                (Some(Value::String(sub)), _) => parts.extend([b"sub".as_slice().into(), sub.as_bytes().into()]),
                (_, Some(client)) => parts.extend([b"client".as_slice().into(), client.into()]),
                _ => parts
                    .extend([b"claims".as_slice().into(), serde_json::to_vec(claims.map()).unwrap_or_default().into()]),
            }
        }
        if let Some(digest) = &self.api_key_digest {
            parts.extend([b"apiKey".as_slice().into(), digest.as_slice().into()]);
        }
        if let Some(user) = &self.basic_user {
            parts.extend([b"basic".as_slice().into(), user.as_bytes().into()]);
        }
        if parts.is_empty() {
            agw_mcp::Caller::anonymous(address)
        } else {
            agw_mcp::Caller::identified(parts.iter().map(|p| p.as_ref()), address)
        }
    }
}

/// A validated bearer token. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    /// `preserveToken`: the token was left on the request and should reach the upstream.
    pub preserved: bool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// One authentication policy, ready to run.
#[derive(Debug)]
pub struct Authn {
    pub mode: AuthMode,
    pub location: Location,
    pub kind: AuthnKind,
}

#[derive(Debug)]
pub enum AuthnKind {
    Jwt {
        validator: Validator,
        /// Results of recent validations, by token hash.
        cache: TokenCache,
        /// Per provider: the remote JWKS to refresh on an unknown kid.
        remotes: Vec<Option<Arc<RemoteJwks>>>,
        /// Set for `mcpAuthentication`: 401s point at the protected-resource metadata.
        resource: Option<Arc<ResourceMetadata>>,
        /// Keep the token on the request and forward it (`preserveToken`).
        preserve: bool,
    },
    ApiKey(ApiKeys),
    Basic {
        htpasswd: Htpasswd,
        realm: String,
    },
}

/// OAuth 2.0 Protected Resource Metadata (RFC 9728) for an `mcpAuthentication` route.
#[derive(Debug)]
pub struct ResourceMetadata {
    pub issuer: String,
    /// `resourceMetadata` from the config, keys in RFC 9728 spelling.
    pub extra: Map<String, Value>,
    /// With a `provider`, clients are sent to the gateway as their authorization server (it
    /// serves the provider's metadata, adapted); otherwise to the issuer itself.
    pub via_gateway: bool,
}

/// The MCP revision whose authorization rules the metadata follows (as agentgateway says).
pub const MCP_PROTOCOL_VERSION: &str = "2025-06-18";

/// Scheme and host of the request as the client addressed it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
}

impl ResourceMetadata {
    /// The protected resource's URL: the configured `resource`, or this request's URL.
    pub fn resource(&self, origin: &Origin, path: &str) -> String {
        match self.extra.get("resource").and_then(Value::as_str) {
            Some(r) => r.to_string(),
            None => format!("{}://{}{}", origin.scheme, origin.host, path),
        }
    }

    /// Where the metadata is served: `/.well-known/oauth-protected-resource` + resource path.
    pub fn metadata_url(&self, origin: &Origin, path: &str) -> String {
        let resource = self.resource(origin, path);
        let (base, rest) = match resource.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => (origin.scheme.as_str(), resource.as_str()),
        };
        let (authority, res_path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        // RFC 9728 §3.1: the resource's path (and query) follow the well-known prefix as they
        // are, a trailing slash included, or clients reject the document's `resource`.
        let suffix = if res_path.is_empty() { String::new() } else { format!("/{res_path}") };
        format!("{base}://{authority}/.well-known/oauth-protected-resource{suffix}")
    }

    /// The authorization server clients are sent to: the issuer, or the gateway at the
    /// resource's path when it adapts a provider.
    pub fn authorization_server(&self, origin: &Origin, path: &str) -> String {
        if !self.via_gateway {
            return self.issuer.clone();
        }
        let path = if path == "/" { "" } else { path };
        format!("{}://{}{}", origin.scheme, origin.host, path)
    }

    /// The metadata document; configured keys win over the computed ones.
    pub fn document(&self, origin: &Origin, path: &str) -> Value {
        let mut doc = Map::new();
        doc.insert("resource".into(), json!(self.resource(origin, path)));
        doc.insert("authorization_servers".into(), json!([self.authorization_server(origin, path)]));
        doc.insert("bearer_methods_supported".into(), json!(["header"]));
        doc.insert("mcp_protocol_version".into(), json!(MCP_PROTOCOL_VERSION));
        doc.insert("resource_type".into(), json!("mcp-server"));
        for (k, v) in &self.extra {
            doc.insert(k.clone(), v.clone());
        }
        Value::Object(doc)
    }
}

/// `scopesSupported` → `scopes_supported` (config keys are camelCase; RFC 9728 is snake_case).
pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A refused request: 401 with a challenge and a short JSON body.
#[derive(Debug)]
pub struct Denial {
    pub challenge: String,
    pub error: &'static str,
    pub description: String,
    /// The policy that refused: `jwtAuth`, `apiKey` or `basicAuth` (for metrics).
    pub policy: &'static str,
    /// A short, fixed reason (for metrics): `missing`, `invalid`, or the JWT check that failed.
    pub reason: &'static str,
}

impl Denial {
    pub fn into_response(self) -> Response<Body> {
        let body = json!({"error": self.error, "error_description": self.description}).to_string();
        let mut r = Response::new(body::full(body));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(v) = HeaderValue::try_from(self.challenge) {
            r.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        r
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Quotes a value for an auth-param (RFC 9110 §5.6.4).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Authn {
    /// Runs the policy: `Ok` lets the request on (with `identity` filled in when the
    /// credential was valid), `Err` is the 401.
    pub async fn check(&self, parts: &mut Parts, identity: &mut Identity, origin: &Origin) -> Result<(), Denial> {
        let credential = self.location.extract(parts);
        let mut reason = "missing";
        let result = match (&self.kind, credential) {
            (_, None) => Err(None),
            (AuthnKind::Jwt { validator, remotes, preserve, cache, .. }, Some(token)) => {
                match validate(validator, cache, remotes, &token).await {
                    Ok(claims) => {
                        identity.jwt = Some(claims);
                        identity.token = Some(Token { value: token, preserved: *preserve });
                        Ok(())
                    }
                    Err(e) => {
                        reason = e.reason();
                        Err(Some(e.to_string()))
                    }
                }
            }
            (AuthnKind::ApiKey(keys), Some(key)) => match keys.identify(&key) {
                Some((digest, meta)) => {
                    identity.api_key = Some(meta.clone());
                    identity.api_key_digest = Some(*digest);
                    Ok(())
                }
                None => {
                    reason = "invalid";
                    Err(Some("API key is not valid".to_string()))
                }
            },
            (AuthnKind::Basic { htpasswd, .. }, Some(encoded)) => {
                let user = match basic_credentials(&encoded) {
                    Some((user, password)) => verify_basic(htpasswd, &user, password).await.then_some(user),
                    None => None,
                };
                match user {
                    Some(user) => {
                        identity.basic_user = Some(user);
                        Ok(())
                    }
                    None => {
                        reason = "invalid";
                        Err(Some("user name or password is not valid".to_string()))
                    }
                }
            }
        };
        // `preserveToken` keeps only a valid token: an invalid one never reaches an upstream.
        let preserve = matches!(self.kind, AuthnKind::Jwt { preserve: true, .. }) && result.is_ok();
        if !preserve {
            self.location.remove(parts);
        }
        match result {
            Ok(()) => Ok(()),
            Err(_) if self.mode == AuthMode::Permissive => Ok(()),
            Err(None) if self.mode == AuthMode::Optional => Ok(()),
            Err(problem) => {
                debug!(problem = problem.as_deref().unwrap_or("missing credential"), "authentication refused");
                Err(self.denial(problem, reason, parts, origin))
            }
        }
    }

    fn denial(&self, problem: Option<String>, reason: &'static str, parts: &Parts, origin: &Origin) -> Denial {
        match &self.kind {
            AuthnKind::Jwt { resource, .. } => {
                let mut params = Vec::new();
                if let Some(p) = &problem {
                    params.push(format!("error=\"invalid_token\", error_description={}", quoted(p)));
                }
                if let Some(meta) = resource {
                    params.push(format!("resource_metadata={}", quoted(&meta.metadata_url(origin, parts.uri.path()))));
                }
                Denial {
                    challenge: if params.is_empty() {
                        "Bearer".into()
                    } else {
                        format!("Bearer {}", params.join(", "))
                    },
                    error: if problem.is_some() { "invalid_token" } else { "missing_token" },
                    description: problem.unwrap_or_else(|| "a bearer token is required".into()),
                    policy: "jwtAuth",
                    reason,
                }
            }
            AuthnKind::ApiKey(_) => Denial {
                challenge: "Bearer".into(),
                error: if problem.is_some() { "invalid_api_key" } else { "missing_api_key" },
                description: problem.unwrap_or_else(|| "an API key is required".into()),
                policy: "apiKey",
                reason,
            },
            AuthnKind::Basic { realm, .. } => Denial {
                challenge: format!("Basic realm={}", quoted(realm)),
                error: if problem.is_some() { "invalid_credentials" } else { "missing_credentials" },
                description: problem.unwrap_or_else(|| "a user name and password are required".into()),
                policy: "basicAuth",
                reason,
            },
        }
    }
}

async fn validate(
    validator: &Validator,
    cache: &TokenCache,
    remotes: &[Option<Arc<RemoteJwks>>],
    token: &str,
) -> Result<Claims, JwtError> {
    let now = now();
    // Read before validating: if keys change meanwhile, the entry is tagged with the older
    // generation and simply never matches.
    let mut generation = validator.key_generation();
    if let Some(known) = cache.get(token, now, generation) {
        return known;
    }
    let result = match validator.validate(token, now) {
        Err(JwtError::UnknownKid { provider }) => match remotes.get(provider) {
            Some(Some(remote)) if remote.refresh_for_unknown_kid().await => {
                generation = validator.key_generation();
                validator.validate(token, now)
            }
            _ => Err(JwtError::UnknownKid { provider }),
        },
        other => other,
    };
    cache.put(validator, token, &result, now, generation);
    result
}

/// At most this many bcrypt checks run at once, each on a blocking thread: a flood of Basic
/// credentials costs CPU time but cannot stall the async workers that carry every stream.
static BCRYPT_SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

async fn verify_basic(htpasswd: &Htpasswd, user: &str, password: String) -> bool {
    if !htpasswd.is_slow(user) {
        return htpasswd.verify(user, &password);
    }
    let Ok(_slot) = BCRYPT_SLOTS.acquire().await else { return false };
    let (htpasswd, user) = (htpasswd.clone(), user.to_string());
    tokio::task::spawn_blocking(move || htpasswd.verify(&user, &password)).await.unwrap_or(false)
}

fn basic_credentials(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The request's scheme and host, trusting `X-Forwarded-*` only when configured to.
pub fn request_origin(headers: &HeaderMap, tls: bool, trust_forwarded: bool) -> Origin {
    let header = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.split(',').next().unwrap_or("").trim().to_string())
    };
    let mut scheme = if tls { "https".to_string() } else { "http".to_string() };
    let mut host = header("host").unwrap_or_else(|| "localhost".into());
    if trust_forwarded {
        if let Some(p) = header("x-forwarded-proto").filter(|p| p == "http" || p == "https") {
            scheme = p;
        }
        if let Some(h) = header("x-forwarded-host").filter(|h| !h.is_empty()) {
            host = h;
        }
    }
    Origin { scheme, host }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls() {
        let meta = ResourceMetadata { issuer: "https://idp".into(), extra: Map::new(), via_gateway: false };
        let origin = Origin { scheme: "http".into(), host: "localhost:3000".into() };
        assert_eq!(
            meta.metadata_url(&origin, "/mcp"),
            "http://localhost:3000/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(meta.metadata_url(&origin, "/"), "http://localhost:3000/.well-known/oauth-protected-resource");
        assert_eq!(
            meta.metadata_url(&origin, "/mcp/"),
            "http://localhost:3000/.well-known/oauth-protected-resource/mcp/",
            "the trailing slash is part of the resource"
        );
        let mut extra = Map::new();
        extra.insert("resource".into(), json!("https://api.example.com/v1/mcp"));
        let meta = ResourceMetadata { issuer: "https://idp".into(), extra, via_gateway: false };
        assert_eq!(
            meta.metadata_url(&origin, "/mcp"),
            "https://api.example.com/.well-known/oauth-protected-resource/v1/mcp"
        );
        assert_eq!(snake_case("scopesSupported"), "scopes_supported");
        assert_eq!(snake_case("resource_documentation"), "resource_documentation");
    }

    #[test]
    fn metadata_documents() {
        let origin = Origin { scheme: "http".into(), host: "gw:3000".into() };
        let mut extra = Map::new();
        extra.insert("resource_type".into(), json!("custom"));
        let meta = ResourceMetadata { issuer: "https://idp".into(), extra, via_gateway: false };
        let doc = meta.document(&origin, "/mcp");
        assert_eq!(doc["authorization_servers"], json!(["https://idp"]));
        assert_eq!(doc["mcp_protocol_version"], MCP_PROTOCOL_VERSION);
        assert_eq!(doc["resource_type"], "custom", "configured keys win");
        let meta = ResourceMetadata { via_gateway: true, ..meta };
        assert_eq!(meta.document(&origin, "/mcp")["authorization_servers"], json!(["http://gw:3000/mcp"]));
        assert_eq!(meta.document(&origin, "/")["authorization_servers"], json!(["http://gw:3000"]));
    }

    #[test]
    fn callers_are_told_apart_by_every_credential() {
        let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let claims = |v: Value| {
            let Value::Object(map) = v else { unreachable!() };
            Identity { jwt: Some(Arc::new(agw_policy::jwt::TokenClaims::new(map))), ..Identity::default() }
        };
        let jwt = |iss: &str, sub: &str| claims(json!({"iss": iss, "sub": sub}));
        let subless = |extra: Value| {
            let mut v = json!({"iss": "https://a", "exp": 1});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            claims(v).caller(peer).owner
        };
        assert_ne!(subless(json!({"azp": "app-1"})), subless(json!({"azp": "app-2"})), "named by client");
        assert_eq!(subless(json!({"azp": "app-1", "jti": "a"})), subless(json!({"client_id": "app-1", "jti": "b"})));
        assert_ne!(subless(json!({"jti": "a"})), subless(json!({"jti": "b"})), "no sub, no client: each token");
        assert_ne!(subless(json!({"sub": 7})), subless(json!({"sub": 8})), "a non-string sub is not dropped");
        assert!(Identity::default().caller(peer).is_anonymous());
        let a = jwt("https://a", "alice").caller(peer);
        assert_eq!(a.owner, jwt("https://a", "alice").caller("10.0.0.9:2".parse().unwrap()).owner, "not the address");
        assert_ne!(a.owner, jwt("https://b", "alice").caller(peer).owner, "same subject, another issuer");
        assert_ne!(a.owner, jwt("https://a", "bob").caller(peer).owner);
        let basic = Identity { basic_user: Some("alice".into()), ..Identity::default() }.caller(peer);
        let key = Identity { api_key_digest: Some([7; 32]), ..Identity::default() }.caller(peer);
        assert_ne!(basic.owner, a.owner);
        assert_ne!(key.owner, basic.owner);
        assert!(!key.is_anonymous());
    }

    #[test]
    fn forwarded_headers_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("internal:8080"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("public.example.com"));
        let o = request_origin(&h, false, false);
        assert_eq!((o.scheme.as_str(), o.host.as_str()), ("http", "internal:8080"));
        let o = request_origin(&h, false, true);
        assert_eq!((o.scheme.as_str(), o.host.as_str()), ("https", "public.example.com"));
    }
}
