//! `oidc`: browser sign-in in front of a route (OpenID Connect authorization code flow with
//! PKCE). A browser without a session is sent to the provider; the provider sends it back to
//! the callback path with a code, which the gateway exchanges (with its client secret) for an
//! ID token; the token is validated (signature by the provider's keys, issuer, audience =
//! client id, expiry, nonce) and its claims become the session, kept in a cookie sealed with
//! `OIDC_COOKIE_SECRET` (AES-256-GCM: the browser can neither read nor change it). On later
//! requests the claims are the caller's `jwt` (for rules, logs, rate-limit keys).
//!
//! The state of a login in progress (CSRF state, nonce, PKCE verifier, where to return) is a
//! second sealed cookie, named per login and good for 5 minutes. Provider metadata (discovery,
//! keys) is fetched when first needed and kept 10 minutes (a failure 5 s).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agw_config::FieldPath;
use agw_config::model::{self, FileInlineOrRemote, TokenEndpointAuth};
use agw_http::HttpClient;
use agw_http::body::{self, Body};
use agw_mcp::session::{Sealer, random_token};
use agw_policy::jwt::{DEFAULT_CLOCK_SKEW_SECS, KeySet, KeyStore, Provider, TokenClaims, Validator};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::auth::Identity;

/// The environment variable holding the cookie key.
pub const COOKIE_SECRET_VAR: &str = "OIDC_COOKIE_SECRET";
/// How long a session lasts at most (less when the ID token expires sooner).
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// How long a login may take.
pub const LOGIN_TTL: Duration = Duration::from_secs(300);
/// Largest cookie value the gateway sets (browsers drop cookies over ~4 KiB).
pub const MAX_COOKIE: usize = 3800;
/// Time for one call to the provider; largest answer read.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER: usize = 256 << 10;
const META_TTL: Duration = Duration::from_secs(600);
const FAILURE_TTL: Duration = Duration::from_secs(5);
const MAX_ORIGINAL_URI: usize = 2048;

type Fetched = (tokio::time::Instant, Result<Arc<Meta>, String>);

/// A compiled `oidc` policy.
#[derive(Debug)]
pub struct Oidc {
    /// Distinguishes this route's cookies and sessions from other routes'.
    id: String,
    issuer: String,
    source: Source,
    client_id: String,
    client_secret: model::Secret,
    redirect_uri: String,
    callback_path: String,
    secure: bool,
    scopes: String,
    logout_path: Option<String>,
    sealer: Sealer,
    session_cookie: String,
    login_cookie_prefix: String,
    client: HttpClient,
    /// The provider's metadata: when fetched, and what came of it.
    meta: Mutex<Option<Fetched>>,
}

#[derive(Debug)]
enum Source {
    Discovery(Option<FileInlineOrRemote>),
    Explicit { authorization: String, token: String, jwks: FileInlineOrRemote, auth: TokenEndpointAuth },
}

/// The provider as the gateway uses it.
#[derive(Debug)]
struct Meta {
    authorization: String,
    token: Uri,
    auth: TokenEndpointAuth,
    validator: Validator,
}

/// What the builder gives the compilation.
pub trait Build {
    fn err(&mut self, at: FieldPath, message: String);
    fn client(&self) -> HttpClient;
}

impl Oidc {
    /// Compiles `oidc` (written at `at`) for the route `route_key`.
    pub fn compile(b: &mut impl Build, at: &FieldPath, route_key: &str, o: &model::Oidc) -> Option<Oidc> {
        let secret = std::env::var(COOKIE_SECRET_VAR).unwrap_or_default();
        let sealer = match Sealer::from_hex(&secret) {
            Ok(s) => s,
            Err(_) => {
                b.err(
                    at.clone(),
                    format!(
                        "set the environment variable {COOKIE_SECRET_VAR} to 64 hex digits (`openssl rand -hex 32`): it seals the browser sessions"
                    ),
                );
                return None;
            }
        };
        let redirect: Uri = o.redirect_uri.parse().ok()?;
        let source = match (&o.authorization_endpoint, &o.token_endpoint, &o.jwks) {
            (Some(a), Some(t), Some(j)) => Source::Explicit {
                authorization: a.clone(),
                token: t.clone(),
                jwks: j.clone(),
                auth: o.token_endpoint_auth.unwrap_or(TokenEndpointAuth::ClientSecretBasic),
            },
            _ => Source::Discovery(o.discovery.clone()),
        };
        let hash = Sha256::digest(route_key.as_bytes());
        let tag: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let mut scopes = vec!["openid".to_string()];
        for s in &o.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        Some(Oidc {
            id: route_key.to_string(),
            issuer: o.issuer.clone(),
            source,
            client_id: o.client_id.clone(),
            client_secret: o.client_secret.clone(),
            redirect_uri: o.redirect_uri.clone(),
            callback_path: redirect.path().to_string(),
            secure: redirect.scheme_str() == Some("https"),
            scopes: scopes.join(" "),
            logout_path: o.logout_path.clone(),
            sealer,
            session_cookie: format!("agw_oidc_s_{tag}"),
            login_cookie_prefix: format!("agw_oidc_t_{tag}_"),
            client: b.client(),
            meta: Mutex::new(None),
        })
    }

    /// Runs the policy: `Ok` lets the request on (with the caller's claims when signed in);
    /// `Err` is the gateway's answer (a redirect to sign in, the end of a login, a logout).
    /// `other_authn`: the route has another authentication policy, which decides for requests
    /// carrying credentials of their own (API clients).
    pub async fn apply(
        &self,
        parts: &mut Parts,
        identity: &mut Identity,
        other_authn: bool,
    ) -> Result<(), Response<Body>> {
        let path = parts.uri.path();
        if self.logout_path.as_deref() == Some(path) {
            // A page of its own, not a redirect into the route: that would sign in again at
            // once while the provider still has a session of its own.
            let mut r = plain(StatusCode::OK, "Signed out.");
            if let Ok(v) = HeaderValue::from_str(&self.clear_cookie(&self.session_cookie)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            return Err(r);
        }
        if parts.method == Method::GET
            && path == self.callback_path
            && let Some(q) = Callback::parse(parts)
        {
            return Err(self.callback(parts, q).await);
        }
        if let Some(claims) = cookie(parts, &self.session_cookie).and_then(|c| self.session(c)) {
            strip_cookies(parts, |name| name.starts_with("agw_oidc_"));
            identity.jwt = Some(Arc::new(TokenClaims::new(claims)));
            return Ok(());
        }
        if other_authn && parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(());
        }
        let preflight = parts.method == Method::OPTIONS
            && parts.headers.contains_key(header::ORIGIN)
            && parts.headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            return Ok(());
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            // A browser navigates with GET; anything else without a session is refused.
            return Err(plain(StatusCode::UNAUTHORIZED, "sign in first"));
        }
        Err(self.start_login(parts).await)
    }

    /// The claims of a valid session cookie.
    fn session(&self, value: &str) -> Option<Map<String, Value>> {
        let bytes = self.sealer.open(value, MAX_COOKIE * 2)?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        let exp = v.get("exp").and_then(Value::as_u64)?;
        if v.get("p").and_then(Value::as_str) != Some(self.id.as_str()) || exp <= now() {
            return None;
        }
        match v.get("claims") {
            Some(Value::Object(c)) => Some(c.clone()),
            _ => None,
        }
    }

    async fn start_login(&self, parts: &Parts) -> Response<Body> {
        let meta = match self.meta().await {
            Ok(m) => m,
            Err(e) => return plain(StatusCode::BAD_GATEWAY, &format!("the sign-in provider is unavailable: {e}")),
        };
        let tx = random_token(12);
        let csrf = random_token(24);
        let nonce = random_token(24);
        let verifier = random_token(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let original = local_target(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        let login = json!({"p": self.id, "tx": tx, "state": csrf, "nonce": nonce, "verifier": verifier,
            "uri": original, "exp": now() + LOGIN_TTL.as_secs()});
        let sealed = self.sealer.seal(login.to_string().as_bytes());
        let state = URL_SAFE_NO_PAD.encode(json!({"t": tx, "s": csrf}).to_string());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if meta.authorization.contains('?') { '&' } else { '?' };
        let location = format!("{}{sep}{query}", meta.authorization);
        let name = format!("{}{tx}", self.login_cookie_prefix);
        redirect(&location, &[self.set_cookie(&name, &sealed, LOGIN_TTL)])
    }

    async fn callback(&self, parts: &Parts, q: Callback) -> Response<Body> {
        match self.finish_login(parts, q).await {
            Ok(resp) => resp,
            Err((status, why)) => {
                debug!(error = why, "sign-in not completed");
                plain(status, &format!("sign-in failed: {why}"))
            }
        }
    }

    async fn finish_login(&self, parts: &Parts, q: Callback) -> Result<Response<Body>, (StatusCode, String)> {
        let bad = |why: &str| (StatusCode::BAD_REQUEST, why.to_string());
        let state: Value = URL_SAFE_NO_PAD
            .decode(&q.state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| bad("unreadable state"))?;
        let tx = state.get("t").and_then(Value::as_str).ok_or_else(|| bad("unreadable state"))?;
        if tx.is_empty() || tx.len() > 64 || !tx.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("unreadable state"));
        }
        let name = format!("{}{tx}", self.login_cookie_prefix);
        let login = cookie(parts, &name)
            .and_then(|c| self.sealer.open(c, MAX_COOKIE * 2))
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .ok_or_else(|| bad("no login in progress in this browser (or it expired)"))?;
        let field = |k: &str| login.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let fresh = login.get("exp").and_then(Value::as_u64).is_some_and(|e| e > now());
        if field("p") != self.id || field("tx") != tx || !fresh {
            return Err(bad("no login in progress in this browser (or it expired)"));
        }
        let csrf = state.get("s").and_then(Value::as_str).unwrap_or_default();
        if !constant_eq(csrf.as_bytes(), field("state").as_bytes()) {
            return Err(bad("state mismatch"));
        }
        if let Some(e) = q.error {
            return Err((
                StatusCode::UNAUTHORIZED,
                format!("the provider refused: {}", e.chars().take(64).collect::<String>()),
            ));
        }
        let code = q.code.ok_or_else(|| bad("no code"))?;
        let meta = self.meta().await.map_err(|e| (StatusCode::BAD_GATEWAY, e))?;
        let id_token = self.exchange(&meta, &code, &field("verifier")).await?;
        let claims = meta
            .validator
            .validate(&id_token, now())
            .map_err(|e| (StatusCode::BAD_GATEWAY, format!("the ID token was refused: {e}")))?;
        if claims.get("nonce").and_then(Value::as_str) != Some(field("nonce").as_str()) {
            return Err((StatusCode::BAD_GATEWAY, "the ID token's nonce does not match".into()));
        }
        let mut map = claims.map().clone();
        map.remove("nonce");
        let exp = map.get("exp").and_then(Value::as_u64).unwrap_or(u64::MAX).min(now() + SESSION_TTL.as_secs());
        let session = json!({"p": self.id, "exp": exp, "claims": map});
        let sealed = self.sealer.seal(session.to_string().as_bytes());
        if sealed.len() > MAX_COOKIE {
            return Err((StatusCode::BAD_GATEWAY, "the ID token's claims do not fit in a cookie".into()));
        }
        let ttl = Duration::from_secs(exp.saturating_sub(now()));
        Ok(redirect(&field("uri"), &[self.set_cookie(&self.session_cookie, &sealed, ttl), self.clear_cookie(&name)]))
    }

    /// The authorization code for an ID token.
    async fn exchange(&self, meta: &Meta, code: &str, verifier: &str) -> Result<String, (StatusCode, String)> {
        let upstream = |e: String| (StatusCode::BAD_GATEWAY, e);
        // Built whole before any await: the serializer is not `Send`.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code");
            form.append_pair("code", code);
            form.append_pair("redirect_uri", &self.redirect_uri);
            form.append_pair("code_verifier", verifier);
            if meta.auth == TokenEndpointAuth::ClientSecretPost {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", self.client_secret.expose());
            }
            form.finish()
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(meta.token.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        match meta.auth {
            TokenEndpointAuth::ClientSecretBasic => {
                let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(&self.client_id), enc(self.client_secret.expose()));
                let mut v =
                    HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
                        .map_err(|_| upstream("the client secret cannot go in a header".into()))?;
                v.set_sensitive(true);
                req = req.header(header::AUTHORIZATION, v);
            }
            TokenEndpointAuth::ClientSecretPost => {}
        }
        let req = req.body(body::full(Bytes::from(form))).map_err(|e| upstream(e.to_string()))?;
        let (status, bytes) = self.call(req).await.map_err(upstream)?;
        if !status.is_success() {
            let code = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(|s| s.chars().take(64).collect::<String>()));
            return Err(upstream(format!("the token endpoint answered {status} ({})", code.unwrap_or_default())));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| upstream("the token answer is not JSON".into()))?;
        v.get("id_token").and_then(Value::as_str).map(str::to_string).ok_or_else(|| upstream("no ID token".into()))
    }

    /// Provider metadata: cached, or fetched by one caller while others wait.
    async fn meta(&self) -> Result<Arc<Meta>, String> {
        let mut held = self.meta.lock().await;
        if let Some((at, m)) = held.as_ref() {
            let ttl = if m.is_ok() { META_TTL } else { FAILURE_TTL };
            if at.elapsed() < ttl {
                return m.clone();
            }
        }
        let m = self.load_meta().await.map(Arc::new);
        if let Err(e) = &m {
            warn!(issuer = %self.issuer, error = %e, "OIDC provider metadata not loaded");
        }
        *held = Some((tokio::time::Instant::now(), m.clone()));
        m
    }

    async fn load_meta(&self) -> Result<Meta, String> {
        let (authorization, token, jwks, auth) = match &self.source {
            Source::Explicit { authorization, token, jwks, auth } => {
                (authorization.clone(), token.clone(), self.text(jwks).await?, *auth)
            }
            Source::Discovery(doc) => {
                let default = FileInlineOrRemote::Remote(model::UrlRef {
                    url: format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/')),
                });
                let text = self.text(doc.as_ref().unwrap_or(&default)).await?;
                let d: Value =
                    serde_json::from_str(&text).map_err(|_| "the discovery document is not JSON".to_string())?;
                let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
                if s("issuer").as_deref() != Some(self.issuer.as_str()) {
                    return Err("the discovery document names another issuer".into());
                }
                let jwks_uri = s("jwks_uri").ok_or("no jwks_uri in the discovery document")?;
                let methods: Vec<&str> = d
                    .get("token_endpoint_auth_methods_supported")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_else(|| vec!["client_secret_basic"]);
                let auth = if methods.contains(&"client_secret_basic") {
                    TokenEndpointAuth::ClientSecretBasic
                } else if methods.contains(&"client_secret_post") {
                    TokenEndpointAuth::ClientSecretPost
                } else {
                    return Err("the provider supports neither client_secret_basic nor client_secret_post".into());
                };
                let jwks = self.text(&FileInlineOrRemote::Remote(model::UrlRef { url: jwks_uri })).await?;
                (
                    s("authorization_endpoint").ok_or("no authorization_endpoint in the discovery document")?,
                    s("token_endpoint").ok_or("no token_endpoint in the discovery document")?,
                    jwks,
                    auth,
                )
            }
        };
        let keys = KeySet::parse(&jwks).map_err(|e| format!("the provider's keys: {e}"))?;
        let token: Uri = token.parse().map_err(|_| "the token endpoint is not a URL".to_string())?;
        let validator = Validator {
            providers: vec![Provider {
                issuer: self.issuer.clone(),
                audiences: vec![self.client_id.clone()],
                required_claims: vec!["exp".into(), "sub".into()],
                keys: Arc::new(KeyStore::new(keys)),
                clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
            }],
        };
        Ok(Meta { authorization, token, auth, validator })
    }

    async fn text(&self, s: &FileInlineOrRemote) -> Result<String, String> {
        match s {
            FileInlineOrRemote::Inline(t) => Ok(t.clone()),
            FileInlineOrRemote::File(f) => crate::resolve::read_text_file(&f.file),
            FileInlineOrRemote::Remote(u) => {
                let uri: Uri = u.url.parse().map_err(|_| format!("`{}` is not a URL", u.url))?;
                let req = Request::builder()
                    .uri(uri)
                    .header(header::ACCEPT, "application/json")
                    .body(body::empty())
                    .map_err(|e| e.to_string())?;
                let (status, bytes) = self.call(req).await?;
                if !status.is_success() {
                    return Err(format!("{} answered {status}", agw_config::redact::url(&u.url)));
                }
                String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8".to_string())
            }
        }
    }

    async fn call(&self, req: Request<Body>) -> Result<(StatusCode, Bytes), String> {
        let answer = self.client.fetch(req, MAX_ANSWER, CALL_TIMEOUT).await;
        answer.map(|f| (f.status, f.body)).map_err(|e| e.to_string())
    }

    fn set_cookie(&self, name: &str, value: &str, ttl: Duration) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", ttl.as_secs())
    }

    fn clear_cookie(&self, name: &str) -> String {
        self.set_cookie(name, "", Duration::ZERO)
    }
}

struct Callback {
    state: String,
    code: Option<String>,
    error: Option<String>,
}

impl Callback {
    /// A request to the callback path is a callback when it has `state` and `code` or `error`.
    fn parse(parts: &Parts) -> Option<Callback> {
        let (mut state, mut code, mut error) = (None, None, None);
        for (k, v) in form_urlencoded::parse(parts.uri.query()?.as_bytes()) {
            match k.as_ref() {
                "state" => state = Some(v.into_owned()),
                "code" => code = Some(v.into_owned()),
                "error" => error = Some(v.into_owned()),
                _ => {}
            }
        }
        let state = state.filter(|s| s.len() <= 512)?;
        (code.is_some() || error.is_some()).then_some(Callback { state, code, error })
    }
}

/// The value of cookie `name` in the request.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Removes the cookies whose names `drop` picks (the gateway's own never reach the backend).
fn strip_cookies(parts: &mut Parts, drop: impl Fn(&str) -> bool) {
    let kept: Vec<String> = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !drop(pair.split('=').next().unwrap_or_default()))
        .map(str::to_string)
        .collect();
    parts.headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        parts.headers.insert(header::COOKIE, v);
    }
}

/// Where to send the browser after sign-in: the path it asked for when that is a path on this
/// host (never `//host`, `/\host` or over 2 KiB: an open redirect), else `/`.
fn local_target(original: &str) -> &str {
    let foreign = !original.starts_with('/') || original.starts_with("//") || original.contains('\\');
    if foreign || original.len() > MAX_ORIGINAL_URI { "/" } else { original }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn redirect(location: &str, cookies: &[String]) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(l) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(body::full(text.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests;
