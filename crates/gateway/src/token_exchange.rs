//! `backendAuth.oauthTokenExchange` and `backendAuth.crossAppAccess`: a credential for the
//! upstream obtained per caller from an authorization server. The caller's token (the
//! subject) is sent to a token endpoint — RFC 8693 token exchange, or RFC 7523 JWT bearer —
//! and the token it returns replaces the caller's on the way upstream. Cross-app access is
//! two such calls in a row: the identity provider turns the caller's token into an ID-JAG for
//! the resource's authorization server, which turns that into an access token.
//!
//! Answers are cached by a digest of what was sent (`cache.rs`), never beyond the subject
//! token's own `exp`; a subject token whose `exp` has passed is not sent at all.

mod cache;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agw_config::FieldPath;
use agw_config::model::{
    self, ClientAuthMethod, CredentialLocation, GrantType, OauthTokenExchange, RAW_TOKEN_EXPRESSIONS,
    SecretFileOrInline,
};
use agw_http::HttpClient;
use agw_http::body;
use agw_policy::expr::{Expression, Inputs};
use agw_policy::jwt::sign::Signer;
use agw_policy::location::Location;
use agw_policy::rules::Uses;
use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use http::{Method, Request, StatusCode, Uri};
use serde_json::{Map, Value};
use tracing::debug;

pub use cache::TokenCache;

use crate::auth::Identity;

/// Time for one call to a token endpoint, from connecting to the last byte of the answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token endpoint answer read.
pub const MAX_ANSWER_BYTES: usize = 64 << 10;
/// Largest subject or actor token sent to a token endpoint.
pub const MAX_TOKEN_BYTES: usize = 16 << 10;
/// Token endpoint calls in flight at once per policy; more wait (within the time limit).
pub const MAX_CALLS: usize = 64;
/// Default cache size and lifetime of answers without `expires_in` (agentgateway's).
pub const DEFAULT_CACHE_ENTRIES: usize = 8192;
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// A `privateKeyJwt` client assertion's lifetime.
const ASSERTION_TTL: Duration = Duration::from_secs(300);

const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A compiled `oauthTokenExchange` or `crossAppAccess`.
#[derive(Debug)]
pub struct TokenExchange {
    subject: Source,
    subject_type: String,
    actor: Option<Actor>,
    /// `additionalParams` of the first call, sorted by name.
    params: Vec<(String, Expression)>,
    uses: Uses,
    /// One call, or two for cross-app access (the second's assertion is the first's answer).
    legs: Vec<Leg>,
    /// Where the obtained token goes.
    pub location: Location,
    cache: Option<TokenCache>,
    calls: tokio::sync::Semaphore,
}

/// Where a token is read from in the client's request.
#[derive(Debug, Clone)]
enum Source {
    Location(Location),
    /// The token `jwtAuth` validated (`expression: jwt.rawToken`).
    Validated,
}

#[derive(Debug)]
struct Actor {
    source: Source,
    token_type: String,
    enforce_may_act: bool,
}

/// One call to a token endpoint.
#[derive(Debug)]
struct Leg {
    url: Uri,
    client: HttpClient,
    grant: GrantType,
    audiences: Vec<String>,
    scope: Option<String>,
    resources: Vec<String>,
    requested_type: Option<String>,
    client_auth: Option<ClientAuth>,
}

enum ClientAuth {
    Basic { id: String, secret: model::Secret },
    Post { id: String, secret: Option<model::Secret> },
    Assertion { id: String, signer: Box<Signer> },
}

impl std::fmt::Debug for ClientAuth {
    // The secrets stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (method, id) = match self {
            ClientAuth::Basic { id, .. } => ("clientSecretBasic", id),
            ClientAuth::Post { id, .. } => ("clientSecretPost", id),
            ClientAuth::Assertion { id, .. } => ("privateKeyJwt", id),
        };
        f.debug_struct("ClientAuth").field("method", &method).field("client_id", id).finish_non_exhaustive()
    }
}

/// Why no token was obtained; the messages name no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("no token to exchange: the request carries none where the policy reads it")]
    NoSubject,
    #[error("the caller's token has expired; it is not exchanged")]
    Expired,
    #[error("the caller's token is too large to exchange")]
    TooLarge,
    #[error("the actor token is missing")]
    NoActor,
    #[error("the caller's token does not allow this actor (`may_act`)")]
    ActorNotAllowed,
    #[error("an additional parameter could not be computed: {0}")]
    Param(String),
    #[error("the authorization server refused the exchange ({0})")]
    Refused(StatusCode),
    #[error("the authorization server failed: {0}")]
    Upstream(String),
}

impl ExchangeError {
    /// The status for the client: its own token is the problem (401), the authorization server
    /// refused it for this upstream (403), or the gateway could not get a credential (502).
    pub fn status(&self) -> StatusCode {
        match self {
            ExchangeError::NoSubject | ExchangeError::Expired => StatusCode::UNAUTHORIZED,
            ExchangeError::TooLarge | ExchangeError::NoActor | ExchangeError::Param(_) => StatusCode::BAD_REQUEST,
            ExchangeError::ActorNotAllowed | ExchangeError::Refused(_) => StatusCode::FORBIDDEN,
            ExchangeError::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

/// What the builder needs to compile a policy: its errors and warnings, and clients.
pub trait Build {
    fn err(&mut self, at: FieldPath, message: String);
    fn warn(&mut self, at: FieldPath, message: String);
    fn secret(&mut self, at: &FieldPath, s: &SecretFileOrInline) -> Option<model::Secret>;
    fn secret_text(&mut self, at: &FieldPath, s: &SecretFileOrInline) -> Option<model::Secret>;
    fn tls_client(&mut self, at: &FieldPath, tls: &model::BackendTls) -> Option<HttpClient>;
    /// The shared client: plain HTTP, or HTTPS verified against the system roots.
    fn client(&self) -> HttpClient;
}

/// The endpoint of one call as written: host, path, policies, client authentication.
struct Endpoint<'a> {
    at: FieldPath,
    host: Option<&'a str>,
    path: Option<&'a str>,
    policies: Option<&'a model::BackendPolicies>,
    client_auth: Option<&'a model::ClientAuth>,
}

impl TokenExchange {
    /// Compiles `oauthTokenExchange` (written at `at`); errors go to `b`.
    pub fn oauth(b: &mut impl Build, at: &FieldPath, t: &OauthTokenExchange) -> Option<TokenExchange> {
        let subject_spec = t.subject_token.clone().unwrap_or_default();
        let leg = Leg::build(
            b,
            Endpoint {
                at: at.clone(),
                host: t.host.as_deref(),
                path: t.path.as_deref(),
                policies: t.policies.as_deref(),
                client_auth: t.client_auth.as_ref(),
            },
            t.grant_type.unwrap_or_default(),
            (t.audiences.clone(), scope(&t.scopes), t.resources.clone()),
            t.requested_token_type.clone(),
        );
        let actor = t.actor_token.as_ref().and_then(|a| {
            Some(Actor {
                source: source(b, &at.key("actorToken").key("source"), Some(&a.source))?,
                token_type: a.token_type.clone().unwrap_or_else(|| ACCESS_TOKEN.into()),
                enforce_may_act: a.enforce_may_act == Some(true),
            })
        });
        if t.actor_token.is_some() && actor.is_none() {
            return None;
        }
        let mut params = Vec::new();
        for (name, source) in &t.additional_params {
            match Expression::compile(source) {
                Ok(e) => params.push((name.clone(), e)),
                Err(e) => b.err(at.key("additionalParams").key(name), e),
            }
        }
        let uses = Uses::of(
            ["request", "jwt", "source", "apiKey", "basicAuth"]
                .into_iter()
                .filter(|n| params.iter().any(|(_, e)| e.reads(n))),
        );
        let location = output(b, &at.key("authorizationLocation"), t.authorization_location.as_ref());
        let subject = source(b, &at.key("subjectToken").key("source"), subject_spec.source.as_ref());
        Some(TokenExchange {
            subject: subject?,
            subject_type: subject_spec.token_type.unwrap_or_else(|| ACCESS_TOKEN.into()),
            actor,
            params,
            uses,
            legs: vec![leg?],
            location: location?,
            cache: cache(t.cache.as_ref()),
            calls: tokio::sync::Semaphore::new(MAX_CALLS),
        })
    }

    /// Compiles `crossAppAccess` (written at `at`).
    pub fn cross_app(b: &mut impl Build, at: &FieldPath, x: &model::CrossAppAccess) -> Option<TokenExchange> {
        let idp = &x.identity_provider;
        let first = Leg::build(
            b,
            Endpoint {
                at: at.key("identityProvider"),
                host: idp.host.as_deref(),
                path: idp.path.as_deref(),
                policies: idp.policies.as_deref(),
                client_auth: Some(&idp.client_auth),
            },
            GrantType::TokenExchange,
            (vec![x.audience.clone()], scope(&x.scopes), x.resources.clone()),
            Some(ID_JAG.into()),
        );
        let ras = &x.resource_authorization_server;
        let access_scopes = x.access_token_scopes.as_ref().unwrap_or(&x.scopes);
        if !x.scopes.is_empty()
            && let Some(extra) = access_scopes.iter().find(|s| !x.scopes.contains(s))
        {
            b.warn(
                at.key("accessTokenScopes"),
                format!(
                    "`{extra}` is not in `scopes`: the ID-JAG does not grant it, so the resource authorization server will likely refuse"
                ),
            );
        }
        let second = Leg::build(
            b,
            Endpoint {
                at: at.key("resourceAuthorizationServer"),
                host: ras.host.as_deref(),
                path: ras.path.as_deref(),
                policies: ras.policies.as_deref(),
                client_auth: Some(&ras.client_auth),
            },
            GrantType::JwtBearer,
            (Vec::new(), scope(access_scopes), Vec::new()),
            None,
        );
        let spec = x.subject_token.clone().unwrap_or_default();
        let subject = source(b, &at.key("subjectToken").key("source"), spec.source.as_ref());
        Some(TokenExchange {
            subject: subject?,
            subject_type: spec.token_type.unwrap_or_else(|| ID_TOKEN.into()),
            actor: None,
            params: Vec::new(),
            uses: Uses::default(),
            legs: vec![first?, second?],
            location: Location::bearer(),
            cache: cache(x.cache.as_ref()),
            calls: tokio::sync::Semaphore::new(MAX_CALLS),
        })
    }

    /// Takes the caller's tokens off a request (the obtained one replaces them).
    pub fn remove_sources(&self, parts: &mut Parts) {
        let actor = self.actor.as_ref().map(|a| &a.source);
        for source in [Some(&self.subject), actor].into_iter().flatten() {
            if let Source::Location(l) = source {
                l.remove(parts);
            }
        }
    }

    /// What the policy reads of the request for its `additionalParams`.
    pub fn uses(&self) -> Uses {
        self.uses
    }

    /// The token for the upstream: from the cache, or obtained now. `inputs` are the CEL
    /// inputs of `additionalParams` (see [`Self::uses`]).
    pub async fn token(
        &self,
        parts: &Parts,
        identity: Option<&Identity>,
        inputs: &Inputs,
    ) -> Result<model::Secret, ExchangeError> {
        let subject = read(&self.subject, parts, identity).ok_or(ExchangeError::NoSubject)?;
        if subject.len() > MAX_TOKEN_BYTES {
            return Err(ExchangeError::TooLarge);
        }
        let claims = unverified_claims(&subject);
        let subject_exp = claims.as_ref().and_then(|c| c.get("exp")).and_then(Value::as_u64);
        let now = SystemTime::now();
        if subject_exp.is_some_and(|exp| UNIX_EPOCH + Duration::from_secs(exp) <= now) {
            return Err(ExchangeError::Expired);
        }
        let actor = match &self.actor {
            Some(a) => {
                let token = read(&a.source, parts, identity).ok_or(ExchangeError::NoActor)?;
                if token.len() > MAX_TOKEN_BYTES {
                    return Err(ExchangeError::TooLarge);
                }
                if a.enforce_may_act && !may_act(claims.as_ref(), &token) {
                    return Err(ExchangeError::ActorNotAllowed);
                }
                Some((token, a.token_type.as_str()))
            }
            None => None,
        };
        let mut params = Vec::with_capacity(self.params.len());
        for (name, e) in &self.params {
            match e.eval_json(inputs) {
                Some(Value::String(s)) => params.push((name.as_str(), s)),
                Some(_) => return Err(ExchangeError::Param(format!("`{name}` is not a string"))),
                None => return Err(ExchangeError::Param(format!("`{name}` could not be evaluated"))),
            }
        }
        let request = Exchange { subject: &subject, subject_type: &self.subject_type, actor, params };
        let Some(cache) = &self.cache else { return self.obtain(&request).await.map(|(t, _)| t) };
        let key = cache::key(&request);
        let expiry = |expires_in: Option<u64>| cache.expiry(expires_in, subject_exp);
        cache.get_or_fetch(key, || self.obtain(&request), expiry).await
    }

    /// Every leg in turn; the token and its `expires_in`.
    async fn obtain(&self, x: &Exchange<'_>) -> Result<(model::Secret, Option<u64>), ExchangeError> {
        let Ok(_slot) = tokio::time::timeout(CALL_TIMEOUT, self.calls.acquire()).await else {
            return Err(ExchangeError::Upstream("too many token requests in flight".into()));
        };
        let mut assertion: Option<model::Secret> = None;
        let mut answer = None;
        for (i, leg) in self.legs.iter().enumerate() {
            let got = match &assertion {
                None => leg.call(x).await,
                Some(a) => {
                    let chained =
                        Exchange { subject: a.expose(), subject_type: ID_JAG, actor: None, params: Vec::new() };
                    // The caller's token was fine; what the second server says is the gateway's problem.
                    leg.call(&chained).await.map_err(|e| match e {
                        ExchangeError::Refused(s) => ExchangeError::Upstream(format!("chained exchange refused ({s})")),
                        e => e,
                    })
                }
            };
            let (token, expires_in) = got?;
            if i + 1 < self.legs.len() {
                assertion = Some(token);
            } else {
                answer = Some((token, expires_in));
            }
        }
        answer.ok_or_else(|| ExchangeError::Upstream("no token endpoint".into()))
    }
}

/// One exchange's inputs.
pub(crate) struct Exchange<'a> {
    subject: &'a str,
    subject_type: &'a str,
    actor: Option<(String, &'a str)>,
    params: Vec<(&'a str, String)>,
}

impl Leg {
    fn build(
        b: &mut impl Build,
        e: Endpoint<'_>,
        grant: GrantType,
        (audiences, scope, resources): (Vec<String>, Option<String>, Vec<String>),
        requested_type: Option<String>,
    ) -> Option<Leg> {
        let at = e.at;
        let host = e.host?;
        let path = e.path.filter(|p| !p.is_empty()).unwrap_or("/");
        let tls = e.policies.and_then(|p| p.backend_tls.as_ref());
        let (https, authority) = match host.strip_prefix("https://") {
            Some(rest) => (true, rest.trim_end_matches('/')),
            None => (host.ends_with(":443"), host),
        };
        let client = match tls {
            Some(tls) => b.tls_client(&at.key("policies").key("backendTLS"), tls)?,
            None => b.client(),
        };
        let scheme = if https || tls.is_some() { "https" } else { "http" };
        let url: Uri = match format!("{scheme}://{authority}{path}").parse() {
            Ok(u) => u,
            Err(_) => {
                b.err(at.key("path"), format!("`{path}` does not make a URL with `{host}`"));
                return None;
            }
        };
        let client_auth = match e.client_auth {
            Some(c) => Some(client_auth(b, &at.key("clientAuth"), c)?),
            None => None,
        };
        Some(Leg { url, client, grant, audiences, scope, resources, requested_type, client_auth })
    }

    /// The form of this leg's request for `x`, and its `Authorization` header (Basic).
    fn form(&self, x: &Exchange<'_>) -> Result<(String, Option<HeaderValue>), ExchangeError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        match self.grant {
            GrantType::TokenExchange => {
                form.append_pair("grant_type", GRANT_TOKEN_EXCHANGE);
                form.append_pair("subject_token", x.subject);
                form.append_pair("subject_token_type", x.subject_type);
                if let Some((token, token_type)) = &x.actor {
                    form.append_pair("actor_token", token);
                    form.append_pair("actor_token_type", token_type);
                }
                if let Some(t) = &self.requested_type {
                    form.append_pair("requested_token_type", t);
                }
            }
            GrantType::JwtBearer => {
                form.append_pair("grant_type", GRANT_JWT_BEARER);
                form.append_pair("assertion", x.subject);
            }
        }
        for a in &self.audiences {
            form.append_pair("audience", a);
        }
        for r in &self.resources {
            form.append_pair("resource", r);
        }
        if let Some(s) = &self.scope {
            form.append_pair("scope", s);
        }
        for (name, value) in &x.params {
            form.append_pair(name, value);
        }
        let mut basic = None;
        match &self.client_auth {
            None => {}
            Some(ClientAuth::Basic { id, secret }) => {
                // RFC 6749 §2.3.1: each part form-encoded before joining.
                let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(id), enc(secret.expose()));
                let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
                let mut v =
                    HeaderValue::from_str(&value).map_err(|_| ExchangeError::Upstream("bad client secret".into()))?;
                v.set_sensitive(true);
                basic = Some(v);
            }
            Some(ClientAuth::Post { id, secret }) => {
                form.append_pair("client_id", id);
                if let Some(s) = secret {
                    form.append_pair("client_secret", s.expose());
                }
            }
            Some(ClientAuth::Assertion { id, signer }) => {
                static SEQ: AtomicU64 = AtomicU64::new(0);
                let now = SystemTime::now();
                let nanos = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
                let jti = format!("{:x}-{:x}-{:x}", std::process::id(), nanos, SEQ.fetch_add(1, Ordering::Relaxed));
                let assertion = signer
                    .sign_with(now, [("jti", Value::String(jti))])
                    .map_err(|e| ExchangeError::Upstream(format!("client assertion not signed: {e}")))?;
                form.append_pair("client_id", id);
                form.append_pair("client_assertion_type", ASSERTION_TYPE);
                form.append_pair("client_assertion", &assertion);
            }
        }
        Ok((form.finish(), basic))
    }

    async fn call(&self, x: &Exchange<'_>) -> Result<(model::Secret, Option<u64>), ExchangeError> {
        let (form, basic) = self.form(x)?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body::full(Bytes::from(form)))
            .map_err(|e| ExchangeError::Upstream(e.to_string()))?;
        if let Some(v) = basic {
            req.headers_mut().insert(AUTHORIZATION, v);
        }
        let url = agw_config::redact::url(&self.url.to_string());
        let answer = self.client.fetch(req, MAX_ANSWER_BYTES, CALL_TIMEOUT).await;
        let (status, body) = answer.map(|f| (f.status, f.body)).map_err(|e| ExchangeError::Upstream(e.to_string()))?;
        if !status.is_success() {
            // The OAuth error code only (RFC 6749 §5.2): descriptions may quote the token.
            let code = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(|s| s.chars().take(64).collect::<String>()));
            debug!(%url, %status, error = code.as_deref().unwrap_or("-"), "token endpoint refused");
            // 401/403 say the gateway's own client authentication failed: not the caller's fault.
            return Err(
                if status.is_client_error() && !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                    ExchangeError::Refused(status)
                } else {
                    ExchangeError::Upstream(format!(
                        "status {status}{}",
                        code.map(|c| format!(" ({c})")).unwrap_or_default()
                    ))
                },
            );
        }
        self.answer(&body)
    }

    /// The token in a successful answer, checked for its type.
    fn answer(&self, body: &[u8]) -> Result<(model::Secret, Option<u64>), ExchangeError> {
        let bad = |what: &str| ExchangeError::Upstream(format!("answer {what}"));
        let v: Map<String, Value> = serde_json::from_slice(body).map_err(|_| bad("is not a JSON object"))?;
        let token = v.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty());
        let token = token.ok_or_else(|| bad("has no `access_token`"))?;
        if token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(bad("has an `access_token` that cannot go in a header"));
        }
        let token_type = v.get("token_type").and_then(Value::as_str);
        let issued = v.get("issued_token_type").and_then(Value::as_str);
        if self.requested_type.as_deref() == Some(ID_JAG) {
            // An ID-JAG is not a bearer token (its `token_type` is `N_A`).
            if issued != Some(ID_JAG) {
                return Err(bad("is not an ID-JAG (`issued_token_type`)"));
            }
            if token_type.is_some_and(|t| !t.eq_ignore_ascii_case("N_A")) {
                return Err(bad("has a `token_type` other than `N_A` for an ID-JAG"));
            }
        } else {
            if !token_type.is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
                return Err(bad("is not a bearer token (`token_type`)"));
            }
            if let (Some(want), Some(got)) = (&self.requested_type, issued)
                && want != got
            {
                return Err(bad("has another `issued_token_type` than requested"));
            }
        }
        Ok((model::Secret::new(token), v.get("expires_in").and_then(Value::as_u64)))
    }
}

fn scope(scopes: &[String]) -> Option<String> {
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

fn cache(c: Option<&model::TokenCache>) -> Option<TokenCache> {
    let entries = c.and_then(|c| c.max_entries).unwrap_or(DEFAULT_CACHE_ENTRIES);
    let ttl = c.and_then(|c| c.default_ttl).map(|d| d.get()).filter(|d| !d.is_zero()).unwrap_or(DEFAULT_CACHE_TTL);
    (entries > 0).then(|| TokenCache::new(entries, ttl))
}

fn source(b: &mut impl Build, at: &FieldPath, c: Option<&CredentialLocation>) -> Option<Source> {
    if let Some(CredentialLocation::Expression(e)) = c {
        // Validation let only the raw-token expressions through.
        return e.0.as_str().is_some_and(|s| RAW_TOKEN_EXPRESSIONS.contains(&s.trim())).then_some(Source::Validated);
    }
    Location::from_config(c, Location::bearer()).map(Source::Location).map_err(|e| b.err(at.clone(), e)).ok()
}

/// Where the obtained token goes: a header (like `jwtSign`'s; MCP targets take headers only).
fn output(b: &mut impl Build, at: &FieldPath, c: Option<&CredentialLocation>) -> Option<Location> {
    let location = Location::from_config(c, Location::bearer()).map_err(|e| b.err(at.clone(), e)).ok()?;
    if !matches!(location, Location::Header { .. }) {
        b.err(at.clone(), "not supported yet: the obtained token goes in a header".into());
        return None;
    }
    Some(location)
}

fn client_auth(b: &mut impl Build, at: &FieldPath, c: &model::ClientAuth) -> Option<ClientAuth> {
    let id = c.client_id.clone();
    Some(match c.method.unwrap_or(ClientAuthMethod::ClientSecretBasic) {
        ClientAuthMethod::ClientSecretBasic => {
            ClientAuth::Basic { id, secret: b.secret(&at.key("clientSecret"), c.client_secret.as_ref()?)? }
        }
        ClientAuthMethod::ClientSecretPost => {
            let secret = match &c.client_secret {
                Some(s) => Some(b.secret(&at.key("clientSecret"), s)?),
                None => None,
            };
            ClientAuth::Post { id, secret }
        }
        ClientAuthMethod::PrivateKeyJwt => {
            let key = b.secret_text(&at.key("signingKey"), c.signing_key.as_ref()?)?;
            let claims: Map<String, Value> = [
                ("iss".to_string(), Value::String(id.clone())),
                ("sub".to_string(), Value::String(id.clone())),
                ("aud".to_string(), Value::String(c.assertion_audience.clone().unwrap_or_default())),
            ]
            .into_iter()
            .collect();
            let alg = c.alg.as_deref().unwrap_or("RS256");
            match Signer::new(alg, key.expose().as_bytes(), c.kid.clone(), claims, ASSERTION_TTL) {
                Ok(signer) => ClientAuth::Assertion { id, signer: Box::new(signer) },
                Err(e) => {
                    let field = if matches!(e, agw_policy::jwt::sign::SignerError::Algorithm(_)) {
                        "alg"
                    } else {
                        "signingKey"
                    };
                    b.err(at.key(field), e.to_string());
                    return None;
                }
            }
        }
    })
}

/// A token from `source`: the request's, or for [`Source::Validated`] (and for the default
/// header when `jwtAuth` took the token off the request) the one `jwtAuth` validated.
fn read(source: &Source, parts: &Parts, identity: Option<&Identity>) -> Option<String> {
    let validated = || identity.and_then(|i| i.token.as_ref()).map(|t| t.value.clone());
    match source {
        Source::Validated => validated(),
        Source::Location(l) => l.extract(parts).or_else(validated),
    }
    .filter(|t| !t.trim().is_empty())
}

/// The claims of a JWT-shaped token, without checking anything: only to read `exp` and
/// `may_act`, never to trust.
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// RFC 8693 §4.4: every member of the subject's `may_act` claim matches the actor's claim
/// (a list in `may_act` allows any of its values). No claim, or an empty one, allows no one.
fn may_act(subject: Option<&Map<String, Value>>, actor_token: &str) -> bool {
    let Some(Value::Object(may)) = subject.and_then(|c| c.get("may_act")) else { return false };
    let Some(actor) = unverified_claims(actor_token) else { return false };
    !may.is_empty()
        && may.iter().all(|(k, want)| match want {
            Value::Array(any) => actor.get(k).is_some_and(|v| any.contains(v)),
            v => actor.get(k) == Some(v),
        })
}

#[cfg(test)]
mod tests;
