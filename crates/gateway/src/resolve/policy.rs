//! Building runtime policies: CORS, authentication (loading key and password files),
//! timeouts and header changes.

use std::sync::Arc;
use std::time::Duration;

use agw_config::FieldPath;
use agw_config::model::{
    self, AuthMode, FileInlineOrRemote, GatewayPolicies as RawGatewayPolicies, JwtAuth, McpAuthentication, McpProvider,
    RoutePolicies, SecretFileOrInline,
};
use agw_policy::apikey::ApiKeys;
use agw_policy::basic::Htpasswd;
use agw_policy::cors::Cors;
use agw_policy::jwt::cache::TokenCache;
use agw_policy::jwt::{DEFAULT_CLOCK_SKEW_SECS, KeySet, KeyStore, Provider, Validator};
use agw_policy::location::Location;
use agw_policy::rules::Rules;
use http::Uri;
use http::header::{HeaderName, HeaderValue};
use serde_json::Map;

use super::Builder;
use crate::auth::{Authn, AuthnKind, ResourceMetadata, snake_case};
use crate::jwks::RemoteJwks;
use crate::oauth::{self, AuthServer};

/// Listener policies, applied before routing.
#[derive(Debug, Default)]
pub struct GatewayPolicies {
    pub cors: Option<Cors>,
    pub authn: Vec<Authn>,
    /// HTTP-level rules, merged with the route's.
    pub authorization: Option<Rules>,
    /// `localRateLimit` on the listener (an extension).
    pub(crate) rate_limits: Option<Arc<crate::ratelimit::RateLimits>>,
    /// `extAuthz`, asked before the route's.
    pub(crate) ext_authz: Option<Arc<crate::ext_authz::ExtAuthzPolicy>>,
}

/// Route policies in runtime form.
#[derive(Debug, Default)]
pub struct Policies {
    pub cors: Option<Cors>,
    pub authn: Vec<Authn>,
    /// Set by `mcpAuthentication`: the metadata served for this route.
    pub resource_metadata: Option<Arc<ResourceMetadata>>,
    /// Set by `mcpAuthentication` with a URL issuer: the authorization-server endpoints the
    /// gateway serves for this route.
    pub auth_server: Option<Arc<AuthServer>>,
    /// `mcpAuthorization`: which tools, prompts and resources callers see and use.
    pub mcp_authorization: Option<Rules>,
    /// `authorization`: HTTP-level rules (403).
    pub authorization: Option<Rules>,
    /// `backendAuth.passthrough`: where the validated token goes upstream.
    pub passthrough: Option<Location>,
    pub request_timeout: Option<Duration>,
    pub backend_timeout: Option<Duration>,
    pub request_headers: HeaderChanges,
    pub response_headers: HeaderChanges,
    /// `backendAuth.key` and `credentials`: secrets put on requests to a `host:` backend (MCP
    /// targets carry theirs, see `resolve/upstream.rs`).
    pub credentials: Vec<Credential>,
    /// `backendAuth.jwtSign`: a token signed per request.
    pub jwt_sign: Option<Arc<JwtSign>>,
    /// `backendAuth.oauthTokenExchange` / `crossAppAccess`: a token obtained per caller.
    pub token_exchange: Option<Arc<crate::token_exchange::TokenExchange>>,
    /// `localRateLimit`.
    pub(crate) rate_limits: Option<Arc<crate::ratelimit::RateLimits>>,
    /// `remoteRateLimit`.
    pub(crate) remote_rate_limits: Option<Arc<crate::remote_ratelimit::RemoteRateLimits>>,
    /// `extAuthz`.
    pub(crate) ext_authz: Option<Arc<crate::ext_authz::ExtAuthzPolicy>>,
    /// `mcpGuardrails` (the route's, or its backend's).
    pub(crate) mcp_guardrails: Option<Arc<crate::guardrails::GuardrailsPolicy>>,
    /// `a2a`: the route carries A2A traffic.
    pub a2a: bool,
    /// `oidc`: browser sign-in.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    /// `urlRewrite`, `requestRedirect`, `delay`, `directResponse`, `requestMirror`, `retry`.
    pub(crate) traffic: Option<Box<crate::traffic::Traffic>>,
}

/// A signer and where its tokens go.
#[derive(Debug)]
pub struct JwtSign {
    pub signer: agw_policy::jwt::sign::Signer,
    pub location: Location,
}

impl JwtSign {
    /// A fresh token as a header.
    pub fn header(&self) -> Option<(HeaderName, HeaderValue)> {
        match self.signer.sign(std::time::SystemTime::now()) {
            Ok(token) => self.location.header(&token),
            Err(e) => {
                tracing::warn!(error = %e, "jwtSign could not sign a token");
                None
            }
        }
    }
}

/// On an MCP target: a token signed for each request to it.
impl agw_mcp::upstream::PerRequestHeader for JwtSign {
    fn header(&self) -> Option<(HeaderName, HeaderValue)> {
        JwtSign::header(self)
    }
}

/// A static secret for upstream requests and where it goes.
#[derive(Debug, Clone)]
pub struct Credential {
    pub location: Location,
    pub value: model::Secret,
}

pub use agw_mcp::upstream::HeaderChanges;

impl crate::oidc::Build for Builder {
    fn err(&mut self, at: FieldPath, message: String) {
        Builder::err(self, at, message);
    }
    fn client(&self) -> agw_http::HttpClient {
        self.client.clone()
    }
}

impl Builder {
    pub(super) fn gateway_policies(&mut self, at: &FieldPath, p: &RawGatewayPolicies) -> GatewayPolicies {
        let mut out = GatewayPolicies {
            cors: p.cors.as_ref().and_then(|c| self.cors(&at.key("cors"), c)),
            authn: Vec::new(),
            authorization: p.authorization.as_ref().and_then(|r| self.rules(&at.key("authorization"), r)),
            rate_limits: None,
            ext_authz: None,
        };
        out.ext_authz = p.ext_authz.as_ref().and_then(|a| {
            crate::ext_authz::ExtAuthzPolicy::resolve(&at.key("extAuthz"), a, &mut self.errors).map(Arc::new)
        });
        out.rate_limits = p.local_rate_limit.as_ref().and_then(|l| {
            crate::ratelimit::RateLimits::resolve(&at.key("localRateLimit"), l, &mut self.errors).map(Arc::new)
        });
        if let Some(j) = &p.jwt_auth {
            out.authn.extend(self.jwt_auth(&at.key("jwtAuth"), j));
        }
        if let Some(k) = &p.api_key {
            out.authn.extend(self.api_key(&at.key("apiKey"), k));
        }
        if let Some(b) = &p.basic_auth {
            out.authn.extend(self.basic_auth(&at.key("basicAuth"), b));
        }
        out
    }

    pub(super) fn route_policies(&mut self, at: &FieldPath, p: &RoutePolicies) -> Policies {
        let mut out =
            Policies { cors: p.cors.as_ref().and_then(|c| self.cors(&at.key("cors"), c)), ..Policies::default() };
        if let Some(m) = &p.mcp_authentication
            && let Some((authn, meta, server)) = self.mcp_authentication(&at.key("mcpAuthentication"), m)
        {
            out.authn.push(authn);
            out.resource_metadata = Some(meta);
            out.auth_server = server;
        }
        if let Some(j) = &p.jwt_auth {
            out.authn.extend(self.jwt_auth(&at.key("jwtAuth"), j));
        }
        if let Some(k) = &p.api_key {
            out.authn.extend(self.api_key(&at.key("apiKey"), k));
        }
        if let Some(b) = &p.basic_auth {
            out.authn.extend(self.basic_auth(&at.key("basicAuth"), b));
        }
        out.mcp_authorization = p.mcp_authorization.as_ref().and_then(|r| self.rules(&at.key("mcpAuthorization"), r));
        out.authorization = p.authorization.as_ref().and_then(|r| self.rules(&at.key("authorization"), r));
        if let Some(b) = &p.backend_auth {
            out.credentials = self.credentials(&at.key("backendAuth"), b);
            out.jwt_sign = b.jwt_sign.as_ref().and_then(|j| self.jwt_sign(&at.key("backendAuth").key("jwtSign"), j));
            out.token_exchange = self.token_exchange(&at.key("backendAuth"), b);
        }
        if let Some(pass) = p.backend_auth.as_ref().and_then(|b| b.passthrough.as_ref()) {
            out.passthrough = self.location(
                &at.key("backendAuth").key("passthrough").key("location"),
                pass.location.as_ref(),
                Location::bearer(),
            );
        }
        if let Some(t) = &p.timeout {
            out.request_timeout = t.request_timeout.map(|d| d.get()).filter(|d| !d.is_zero());
            out.backend_timeout = t.backend_request_timeout.map(|d| d.get()).filter(|d| !d.is_zero());
        }
        if let Some(m) = &p.request_header_modifier {
            out.request_headers = self.header_changes(&at.key("requestHeaderModifier"), m);
        }
        if let Some(m) = &p.response_header_modifier {
            out.response_headers = self.header_changes(&at.key("responseHeaderModifier"), m);
        }
        out.rate_limits = p.local_rate_limit.as_ref().and_then(|l| {
            crate::ratelimit::RateLimits::resolve(&at.key("localRateLimit"), l, &mut self.errors).map(Arc::new)
        });
        out.remote_rate_limits = p.remote_rate_limit.as_ref().and_then(|r| {
            crate::remote_ratelimit::RemoteRateLimits::resolve(&at.key("remoteRateLimit"), r, &mut self.errors)
                .map(Arc::new)
        });
        out.ext_authz = p.ext_authz.as_ref().and_then(|a| {
            crate::ext_authz::ExtAuthzPolicy::resolve(&at.key("extAuthz"), a, &mut self.errors).map(Arc::new)
        });
        out.mcp_guardrails = p.mcp_guardrails.as_ref().and_then(|g| {
            crate::guardrails::GuardrailsPolicy::resolve(&at.key("mcpGuardrails"), g, &mut self.errors).map(Arc::new)
        });
        out.a2a = p.a2a.is_some();
        if let Some(o) = &p.oidc {
            let at = at.key("oidc");
            out.oidc = crate::oidc::Oidc::compile(self, &at, &at.to_string(), o).map(Arc::new);
        }
        out.traffic = crate::traffic::Traffic::resolve(at, p, &mut self.errors).map(Box::new);
        out
    }

    /// Compiles CEL rules; each failure names its rule. Deny rules get a load-time warning:
    /// a deny rule that fails to evaluate does not deny.
    fn rules(&mut self, at: &FieldPath, set: &model::RuleSet) -> Option<Rules> {
        for (i, r) in set.rules.iter().enumerate() {
            if let model::Rule::Deny(expr) = r {
                self.warn(
                    at.key("rules").index(i),
                    format!("deny rule `{expr}` does not deny when it cannot be evaluated (e.g. a missing claim); pair it with a `require` rule if that matters"),
                );
            }
        }
        match Rules::compile(&set.rules) {
            Ok(rules) => Some(rules),
            Err(errors) => {
                for e in errors {
                    self.err(at.key("rules").index(e.index), e.message);
                }
                None
            }
        }
    }

    fn cors(&mut self, at: &FieldPath, c: &model::Cors) -> Option<Cors> {
        if c.allow_credentials && c.allow_origins.iter().any(|o| o.trim() == "*") {
            self.warn(
                at.key("allowOrigins"),
                "`*` with `allowCredentials: true` lets any web site make credentialed requests; list the origins \
                 (the opaque origin `null` is never allowed with credentials)",
            );
        }
        Cors::new(c).map_err(|e| self.err(at.clone(), e)).ok()
    }

    pub(super) fn location(
        &mut self,
        at: &FieldPath,
        c: Option<&model::CredentialLocation>,
        default: Location,
    ) -> Option<Location> {
        Location::from_config(c, default).map_err(|e| self.err(at.clone(), e)).ok()
    }

    fn jwt_auth(&mut self, at: &FieldPath, j: &JwtAuth) -> Option<Authn> {
        let location = self.location(&at.key("location"), j.location.as_ref(), Location::bearer())?;
        // Both forms become a list of providers, each with the field path of its `jwks`.
        let providers: Vec<(FieldPath, model::JwtProvider)> = match &j.providers {
            Some(list) => list.iter().enumerate().map(|(i, p)| (at.key("providers").index(i), p.clone())).collect(),
            None => vec![(
                at.clone(),
                model::JwtProvider {
                    issuer: j.issuer.clone()?,
                    audiences: j.audiences.clone(),
                    jwks: j.jwks.clone()?,
                    jwt_validation_options: j.jwt_validation_options.clone(),
                },
            )],
        };
        let mut built = Vec::new();
        let mut remotes = Vec::new();
        for (p_at, p) in providers {
            let (keys, remote) = self.jwks(&p_at.key("jwks"), &p.jwks)?;
            let options = p.jwt_validation_options.as_ref();
            built.push(Provider {
                issuer: p.issuer.clone(),
                audiences: p.audiences.clone().unwrap_or_default(),
                required_claims: options.and_then(|o| o.required_claims.clone()).unwrap_or_else(|| vec!["exp".into()]),
                keys,
                clock_skew_secs: options
                    .and_then(|o| o.clock_skew)
                    .map_or(DEFAULT_CLOCK_SKEW_SECS, |d| d.get().as_secs()),
            });
            remotes.push(remote);
        }
        Some(Authn {
            mode: j.mode.unwrap_or(AuthMode::Optional),
            location,
            kind: AuthnKind::Jwt {
                validator: Validator { providers: built },
                cache: TokenCache::default(),
                remotes,
                resource: None,
                preserve: j.preserve_token.unwrap_or(false),
            },
        })
    }

    fn mcp_authentication(
        &mut self,
        at: &FieldPath,
        m: &McpAuthentication,
    ) -> Option<(Authn, Arc<ResourceMetadata>, Option<Arc<AuthServer>>)> {
        let location =
            self.location(&at.key("authorizationLocation"), m.authorization_location.as_ref(), Location::bearer())?;
        let server = self.auth_server(at, m)?;
        let derived;
        let configured = match &m.jwks {
            // `{url: ""}` asks for the default location too (as in agentgateway).
            Some(FileInlineOrRemote::Remote(r)) if r.url.is_empty() => None,
            other => other.as_ref(),
        };
        let jwks = match configured {
            Some(j) => j,
            None => match oauth::provider::default_jwks_url(m.provider, &m.issuer) {
                Ok(url) => {
                    derived = FileInlineOrRemote::Remote(model::UrlRef { url });
                    &derived
                }
                Err(e) => {
                    self.err(at.key("issuer"), e);
                    return None;
                }
            },
        };
        let (keys, remote) = self.jwks(&at.key("jwks"), jwks)?;
        let options = m.jwt_validation_options.as_ref();
        let validator = Validator {
            providers: vec![Provider {
                issuer: m.issuer.clone(),
                audiences: m.audiences.clone().unwrap_or_default(),
                required_claims: options.and_then(|o| o.required_claims.clone()).unwrap_or_else(|| vec!["exp".into()]),
                keys,
                clock_skew_secs: options
                    .and_then(|o| o.clock_skew)
                    .map_or(DEFAULT_CLOCK_SKEW_SECS, |d| d.get().as_secs()),
            }],
        };
        let extra: Map<String, serde_json::Value> =
            m.resource_metadata.iter().flatten().map(|(k, v)| (snake_case(k), v.clone())).collect();
        let meta = Arc::new(ResourceMetadata { issuer: m.issuer.clone(), extra, via_gateway: m.provider.is_some() });
        let authn = Authn {
            mode: m.mode.unwrap_or(AuthMode::Strict),
            location,
            kind: AuthnKind::Jwt {
                validator,
                cache: TokenCache::default(),
                remotes: vec![remote],
                resource: Some(meta.clone()),
                preserve: false,
            },
        };
        Some((authn, meta, server))
    }

    /// The authorization-server endpoints (`Some(None)` when the issuer is not a URL and no
    /// provider needs one); `None` after recording an error.
    fn auth_server(&mut self, at: &FieldPath, m: &McpAuthentication) -> Option<Option<Arc<AuthServer>>> {
        if m.client_secret.is_some() && !matches!(m.provider, Some(McpProvider::Entra {})) {
            self.warn(at.key("clientSecret"), "only the `entra` provider uses `clientSecret`; it is ignored");
        } else if m.client_secret.is_some() && m.client_id.is_none() {
            self.warn(at.key("clientSecret"), "`clientSecret` is used only with `clientId`; it is ignored");
        }
        let Some(issuer) = oauth::provider::Issuer::parse(&m.issuer) else {
            if let Some(p) = m.provider {
                self.err(
                    at.key("issuer"),
                    format!("with `provider: {{{}: {{}}}}` the issuer must be an http(s) URL (without credentials or query)", p.name()),
                );
                return None;
            }
            return Some(None);
        };
        let config = oauth::AuthServerConfig {
            issuer: &issuer,
            provider: m.provider,
            audiences: m.audiences.as_deref().unwrap_or_default(),
            client_id: m.client_id.as_deref(),
            client_secret: m.client_secret.as_ref(),
        };
        match AuthServer::new(config, self.client.clone()) {
            Ok(s) => Some(Some(Arc::new(s))),
            Err(e) => {
                self.err(at.key("issuer"), e);
                None
            }
        }
    }

    /// Loads a JWKS: inline and files now, URLs in the background (shared per URL).
    fn jwks(
        &mut self,
        at: &FieldPath,
        source: &FileInlineOrRemote,
    ) -> Option<(Arc<KeyStore>, Option<Arc<RemoteJwks>>)> {
        let parse = |text: &str| KeySet::parse(text).map_err(|e| e.to_string());
        match source {
            FileInlineOrRemote::Inline(text) => match parse(text) {
                Ok(keys) => Some((Arc::new(KeyStore::new(keys)), None)),
                Err(e) => {
                    self.err(at.clone(), e);
                    None
                }
            },
            FileInlineOrRemote::File(f) => match read_file(&f.file).and_then(|t| parse(&t)) {
                Ok(keys) => Some((Arc::new(KeyStore::new(keys)), None)),
                Err(e) => {
                    self.err(at.key("file"), e);
                    None
                }
            },
            FileInlineOrRemote::Remote(r) => {
                let url: Uri = match r.url.parse() {
                    Ok(u) if matches!(Uri::scheme_str(&u), Some("http" | "https")) => u,
                    _ => {
                        self.err(at.key("url"), format!("`{}` is not an http(s) URL", agw_config::redact::url(&r.url)));
                        return None;
                    }
                };
                let client = self.client.clone();
                let remote =
                    self.remotes.entry(url.to_string()).or_insert_with(|| RemoteJwks::new(url, client)).clone();
                Some((remote.store.clone(), Some(remote)))
            }
        }
    }

    fn api_key(&mut self, at: &FieldPath, k: &model::ApiKeyAuth) -> Option<Authn> {
        let location = self.location(&at.key("location"), k.location.as_ref(), Location::bearer())?;
        for (i, key) in k.keys.iter().enumerate() {
            if let Some(u) = &key.allowed_models {
                let _ = u;
                self.err(at.key("keys").index(i).key("allowedModels"), "not supported yet");
            }
            if key.budgets.is_some() {
                self.err(at.key("keys").index(i).key("budgets"), "not supported yet");
            }
        }
        match ApiKeys::new(&k.keys) {
            Ok(keys) => {
                Some(Authn { mode: k.mode.unwrap_or(AuthMode::Optional), location, kind: AuthnKind::ApiKey(keys) })
            }
            Err((i, msg)) => {
                self.err(at.key("keys").index(i), msg);
                None
            }
        }
    }

    fn basic_auth(&mut self, at: &FieldPath, b: &model::BasicAuth) -> Option<Authn> {
        let location =
            self.location(&at.key("authorizationLocation"), b.authorization_location.as_ref(), Location::basic())?;
        let (text, where_) = match &b.htpasswd {
            SecretFileOrInline::Inline(s) => (Ok(s.expose().to_string()), at.key("htpasswd")),
            SecretFileOrInline::File(f) => (read_file(&f.file), at.key("htpasswd").key("file")),
        };
        let htpasswd = match text.and_then(|t| Htpasswd::parse(&t)) {
            Ok(h) => h,
            Err(e) => {
                self.err(where_, e);
                return None;
            }
        };
        Some(Authn {
            mode: b.mode.unwrap_or(AuthMode::Optional),
            location,
            kind: AuthnKind::Basic { htpasswd, realm: b.realm.clone().unwrap_or_else(|| "agentgateway".into()) },
        })
    }

    pub(super) fn header_changes(&mut self, at: &FieldPath, m: &model::HeaderModifier) -> HeaderChanges {
        let mut out = HeaderChanges::default();
        for (kind, map) in [("add", &m.add), ("set", &m.set)] {
            for (name, value) in map {
                match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.expose())) {
                    (Ok(n), Ok(v)) => {
                        if kind == "add" {
                            out.add.push((n, v));
                        } else {
                            out.set.push((n, v));
                        }
                    }
                    (Err(_), _) => self.err(at.key(kind).key(name), "not a valid header name"),
                    (_, Err(_)) => self.err(at.key(kind).key(name), "not a valid header value"),
                }
            }
        }
        for (i, name) in m.remove.iter().enumerate() {
            match HeaderName::try_from(name.as_str()) {
                Ok(n) => out.remove.push(n),
                Err(_) => self.err(at.key("remove").index(i), "not a valid header name"),
            }
        }
        out
    }
}

/// Reads a file named in the config; relative paths resolve against the working directory.
pub(super) fn read_file(path: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| describe_io(path, &e))?;
    if meta.len() > 4 << 20 {
        return Err(format!("`{path}` is larger than 4 MiB"));
    }
    std::fs::read_to_string(path).map_err(|e| describe_io(path, &e))
}

fn describe_io(path: &str, e: &std::io::Error) -> String {
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    if std::path::Path::new(path).is_relative() {
        format!("cannot read `{path}`: {e} (relative paths resolve against the working directory, {cwd})")
    } else {
        format!("cannot read `{path}`: {e}")
    }
}
