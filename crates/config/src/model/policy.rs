//! Policies: on listeners (before routing) and on routes.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::common::{Duration, FileInlineOrRemote, FileRef, Secret, Unsupported};

/// Policies on a listener, applied to every request before a route is chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayPolicies {
    /// Validate JWT bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_auth: Option<JwtAuth>,
    /// Require an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// Require HTTP Basic credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// HTTP-level CEL rules; a denied request gets 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RuleSet>,
    /// Cross-origin resource sharing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Token-bucket rate limits for every request of the listener, checked before routing
    /// (an extension: agentgateway has `localRateLimit` on routes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rate_limit: Option<LocalRateLimits>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Unsupported>,
    /// Ask an external authorization service for every request of the listener, before the
    /// route's own policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_authz: Option<super::external::ExtAuthz>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_proc: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformations: Option<Unsupported>,
}

impl GatewayPolicies {
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        super::common::present([
            ("oidc", &self.oidc),
            ("extProc", &self.ext_proc),
            ("transformations", &self.transformations),
        ])
    }
}

/// Policies on a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoutePolicies {
    /// Cross-origin resource sharing; preflights are answered before authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Validate JWT bearer tokens; claims become `jwt.*` in rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_auth: Option<JwtAuth>,
    /// MCP OAuth: protected-resource metadata (RFC 9728) plus JWT validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_authentication: Option<McpAuthentication>,
    /// CEL rules deciding which tools, prompts and resources a caller sees and uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_authorization: Option<RuleSet>,
    /// HTTP-level CEL rules; a denied request gets 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RuleSet>,
    /// Require an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// Require HTTP Basic credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Token-bucket rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rate_limit: Option<LocalRateLimits>,
    /// Credentials sent to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_auth: Option<BackendAuth>,
    /// Time limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    /// Headers to add, set or remove on the request before it goes to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// Headers to add, set or remove on the response before it goes to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,

    /// Answer with a redirect (`Location` derived from the request's URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<super::traffic::RequestRedirect>,
    /// Rewrite the path and `Host` before a `host:` backend gets the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<super::traffic::UrlRewrite>,
    /// Send a copy of a share of the requests to another backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<super::traffic::RequestMirror>,
    /// Answer from the gateway (a route with it needs no backend), or `{conditional: [...]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<super::traffic::DirectResponse>,
    /// External MCP processors asked about chosen MCP methods, before the request goes
    /// upstream and after its answer (agentgateway's `ExtMcp` gRPC protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_guardrails: Option<super::guardrails::McpGuardrails>,
    /// Marks the route as A2A (agent-to-agent) traffic: agent cards are rewritten to the
    /// gateway's address, calls are classified (method, task) for logs, metrics, traces and
    /// `authorization` rules (`a2a.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a: Option<A2aPolicy>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<Unsupported>,
    /// TLS to the route's backends and MCP targets (their own `backendTLS` takes precedence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<super::tls::BackendTls>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_tunnel: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<Unsupported>,
    /// Ask an Envoy rate-limit service (a limit shared by every replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_rate_limit: Option<super::external::RemoteRateLimit>,
    /// Browser sign-in (OpenID Connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<super::oidc::Oidc>,
    /// Ask an external authorization service (Envoy `ext_authz`, gRPC or HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_authz: Option<super::external::ExtAuthz>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_proc: Option<Unsupported>,
    /// CEL changes to request and response headers and bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformations: Option<super::traffic::Transformations>,
    /// Refuse state-changing requests from other sites (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<super::traffic::Csrf>,
    /// Read request and response bodies whole before they go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<super::traffic::Buffer>,
    /// Try a `host:` backend again on failure or on given statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<super::traffic::Retry>,
    /// Injected latency (fault injection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<super::traffic::Delay>,
}

impl RoutePolicies {
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        super::common::present([
            ("ai", &self.ai),
            ("backendTunnel", &self.backend_tunnel),
            ("concurrencyLimit", &self.concurrency_limit),
            ("extProc", &self.ext_proc),
        ])
    }
}

/// CORS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cors {
    /// Send `Access-Control-Allow-Credentials: true`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Request headers a browser may send; `*` allows any.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Methods a browser may use; `*` allows any.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Origins allowed, exactly (`https://app.example.com`), or `*` for any.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Response headers a browser may read, e.g. `Mcp-Session-Id`.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
}

/// How requests without valid credentials are treated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuthMode {
    /// Credentials are required and must be valid.
    Strict,
    /// Credentials are validated when present; requests without them pass unauthenticated.
    Optional,
    /// Never reject; valid credentials are used, invalid ones ignored.
    Permissive,
}

/// Where a credential is read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum CredentialLocation {
    /// A request header, with an optional prefix such as `Bearer `.
    Header(HeaderLocation),
    /// A query parameter.
    QueryParameter(NamedLocation),
    /// A cookie.
    Cookie(NamedLocation),
    /// A CEL expression. Not supported yet.
    Expression(Unsupported),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderLocation {
    /// Header name.
    pub name: String,
    /// Prefix before the credential, e.g. `Bearer `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedLocation {
    /// Parameter or cookie name.
    pub name: String,
}

/// JWT validation: one issuer (`issuer` + `jwks`) or several (`providers`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtAuth {
    /// `strict`, `optional` (default) or `permissive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
    /// Where the token is. Default: `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<CredentialLocation>,
    /// Forward the token to the backend instead of removing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_token: Option<bool>,
    /// Expected `iss` claim (single-issuer form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted `aud` values; the token's `aud` must contain one. Empty: any audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// The issuer's public keys (JWKS): inline JSON, `{file}` or `{url}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<FileInlineOrRemote>,
    /// Claim requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_validation_options: Option<JwtValidationOptions>,
    /// Several issuers (multi-provider form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<JwtProvider>>,
}

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtProvider {
    /// Expected `iss` claim.
    pub issuer: String,
    /// Accepted `aud` values. Empty: any audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// The issuer's public keys (JWKS): inline JSON, `{file}` or `{url}`.
    pub jwks: FileInlineOrRemote,
    /// Claim requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_validation_options: Option<JwtValidationOptions>,
}

/// Claim requirements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtValidationOptions {
    /// Claims that must be present. Default `[exp]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_claims: Option<Vec<String>>,
    /// Allowance for clock differences when checking `exp` and `nbf`. Default `30s`.
    /// (An extension: agentgateway has no such field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew: Option<Duration>,
}

/// MCP authentication (OAuth protected resource, RFC 9728).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpAuthentication {
    /// The authorization server (token issuer).
    pub issuer: String,
    /// Accepted `aud` values. Empty: any audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// The identity provider, when it needs adapting to what MCP clients expect: `{auth0: {}}`,
    /// `{keycloak: {}}`, `{okta: {}}`, `{descope: {}}`, `{authentik: {}}` or `{entra: {}}`.
    /// With a provider the gateway presents itself as the authorization server
    /// (`authorization_servers` names the gateway) and serves the provider's metadata, adapted,
    /// at `/.well-known/oauth-authorization-server/<path>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<McpProvider>,
    /// Extra protected-resource metadata fields (RFC 9728); camelCase keys become snake_case.
    /// `resource` overrides the resource URL derived from the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// The issuer's public keys. Default: derived from `issuer` and `provider`
    /// (`<issuer>/.well-known/jwks.json`; keycloak `<issuer>/protocol/openid-connect/certs`;
    /// authentik `<issuer>/jwks/`; descope the project's keys; entra the tenant's keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<FileInlineOrRemote>,
    /// `strict` (default), `optional` or `permissive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
    /// Where the token is. Default: `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_location: Option<CredentialLocation>,
    /// Claim requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_validation_options: Option<JwtValidationOptions>,
    /// A pre-registered OAuth client: the gateway answers client registration (RFC 7591) with
    /// this id instead of registering with the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The secret of `clientId` (entra only): added to the token requests the gateway proxies
    /// for that client. Never logged; redacted in `/config_dump`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
}

/// An identity provider the gateway adapts to MCP clients (`mcpAuthentication.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum McpProvider {
    /// Auth0: `?audience=<first audience>` is added to the authorization endpoint (Auth0 has
    /// no RFC 8707 resource indicators).
    Auth0 {},
    /// Keycloak: metadata from OIDC discovery; registration proxied through the gateway (to
    /// `<issuer>/clients-registrations/openid-connect`, which sends no CORS headers).
    Keycloak {},
    /// Okta: metadata from OIDC discovery, `?audience=` added, registration proxied to
    /// `<org>/oauth2/v1/clients`.
    Okta {},
    /// Descope: metadata from OIDC discovery, registration proxied to the management API.
    Descope {},
    /// authentik: metadata from OIDC discovery; it has no registration, so the gateway
    /// advertises its own, answered with `clientId`.
    Authentik {},
    /// Microsoft Entra ID: the gateway serves `/authorize` and `/token` (dropping the RFC 8707
    /// `resource` parameter Entra refuses, adding `clientSecret`) and answers registration
    /// with `clientId`.
    Entra {},
}

impl McpProvider {
    pub fn name(self) -> &'static str {
        match self {
            McpProvider::Auth0 {} => "auth0",
            McpProvider::Keycloak {} => "keycloak",
            McpProvider::Okta {} => "okta",
            McpProvider::Descope {} => "descope",
            McpProvider::Authentik {} => "authentik",
            McpProvider::Entra {} => "entra",
        }
    }
}

/// A list of CEL rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleSet {
    /// Rules: a bare string is an allow rule; or `{allow: …}`, `{deny: …}`, `{require: …}`.
    pub rules: Vec<Rule>,
}

/// One CEL rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    /// Allows when true.
    Allow(String),
    /// Denies when true (an evaluation error does not deny).
    Deny(String),
    /// Denies unless true.
    Require(String),
}

impl Rule {
    pub fn expression(&self) -> &str {
        match self {
            Rule::Allow(e) | Rule::Deny(e) | Rule::Require(e) => e,
        }
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RuleVisitor;
        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = Rule;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CEL expression string, or one of {allow: …}, {deny: …}, {require: …}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rule, E> {
                Ok(Rule::Allow(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rule, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("empty rule: expected one of `allow`, `deny`, `require`"));
                };
                let expr: String = map.next_value()?;
                let rule = match key.as_str() {
                    "allow" => Rule::Allow(expr),
                    "deny" => Rule::Deny(expr),
                    "require" => Rule::Require(expr),
                    _ => {
                        return Err(de::Error::unknown_field(&key, &["allow", "deny", "require"]));
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a rule has exactly one of `allow`, `deny`, `require`; found `{key}` and `{extra}`"
                    )));
                }
                Ok(rule)
            }
        }
        d.deserialize_any(RuleVisitor)
    }
}

/// API-key authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyAuth {
    /// Accepted keys.
    pub keys: Vec<ApiKey>,
    /// `strict`, `optional` (default) or `permissive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
    /// Where the key is. Default: `Authorization: Bearer <key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<CredentialLocation>,
}

/// One API key: the key itself or its SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKey {
    /// The key, in plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// `sha256:<hex>` of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    /// Data exposed to rules as `apiKey.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Unsupported>,
}

/// HTTP Basic authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicAuth {
    /// htpasswd content (inline) or `{file}`; bcrypt, SHA-1 and apr1 hashes. Inline, write
    /// each `$` of a hash as `$$` (`$` starts an environment variable); a file is read as is.
    pub htpasswd: SecretFileOrInline,
    /// Realm in `WWW-Authenticate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// `strict` or `optional` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
    /// Where the credentials are. Default: `Authorization: Basic …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_location: Option<CredentialLocation>,
}

/// Secret content inline, or a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretFileOrInline {
    /// The content, inline.
    Inline(Secret),
    /// A file to read, relative to the working directory.
    File(FileRef),
}

/// `localRateLimit`: a list of token buckets (a request must pass every one), or
/// `{conditional: [...]}` (the first entry whose `condition` holds applies).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum LocalRateLimits {
    /// Every limit applies.
    List(Vec<LocalRateLimit>),
    /// The first entry whose condition is true applies; an entry without a condition is the
    /// fallback and must come last.
    Conditional(ConditionalRateLimits),
}

impl<'de> Deserialize<'de> for LocalRateLimits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LocalRateLimits;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of rate limits, or {conditional: [...]}")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(LocalRateLimits::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                ConditionalRateLimits::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(LocalRateLimits::Conditional)
            }
        }
        d.deserialize_any(V)
    }
}

impl LocalRateLimits {
    /// Each limit with its condition (none in the list form).
    pub fn entries(&self) -> Vec<(Option<&str>, LocalRateLimit)> {
        match self {
            LocalRateLimits::List(l) => l.iter().map(|r| (None, r.clone())).collect(),
            LocalRateLimits::Conditional(c) => c
                .conditional
                .iter()
                .map(|e| {
                    let limit = LocalRateLimit {
                        max_tokens: e.max_tokens,
                        tokens_per_fill: e.tokens_per_fill,
                        fill_interval: e.fill_interval,
                        kind: e.kind,
                        key: e.key.clone(),
                    };
                    (e.condition.as_deref(), limit)
                })
                .collect(),
        }
    }

    pub fn is_conditional(&self) -> bool {
        matches!(self, LocalRateLimits::Conditional(_))
    }
}

/// `{conditional: [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionalRateLimits {
    /// At most 64 entries; the first whose condition holds applies.
    pub conditional: Vec<ConditionalRateLimit>,
}

/// One entry of the conditional form: a condition and a token bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionalRateLimit {
    /// CEL over `request`, `source`, `jwt`, `apiKey`, `basicAuth`; absent: the fallback (last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Bucket size (and the tokens it starts with).
    #[serde(default)]
    pub max_tokens: u64,
    /// Tokens added every `fillInterval` (never above `maxTokens`).
    #[serde(default)]
    pub tokens_per_fill: u64,
    /// Refill period, e.g. `60s`.
    pub fill_interval: Duration,
    /// `requests` (default); `tokens` (LLM tokens) is not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind: Option<RateLimitKind>,
    /// A bucket per value of this CEL expression (an extension), counted per MCP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A token bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalRateLimit {
    /// Bucket size (and the tokens it starts with).
    #[serde(default)]
    pub max_tokens: u64,
    /// Tokens added every `fillInterval` (never above `maxTokens`).
    #[serde(default)]
    pub tokens_per_fill: u64,
    /// Refill period, e.g. `60s`.
    pub fill_interval: Duration,
    /// `requests` (default); `tokens` (LLM tokens) is not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind: Option<RateLimitKind>,
    /// A bucket per value of this CEL expression, e.g. `jwt.sub` (per caller) or
    /// `mcp.tool.name` (per tool). With a key, MCP requests are counted one per JSON-RPC
    /// request (a batch counts each), and a request over the limit gets a JSON-RPC error at
    /// HTTP 200. A message for which the key cannot be evaluated is not counted by this limit.
    /// (An extension: agentgateway has no such field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RateLimitKind {
    /// Requests.
    Requests,
    /// LLM tokens.
    Tokens,
}

/// `a2a`: no settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct A2aPolicy {}

/// Credentials for the backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendAuth {
    /// Forward the client's validated token to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<Passthrough>,
    /// A static secret for the backend: `key: <secret>`, `key: {file: <path>}`, or
    /// `key: {value: <secret or {file}>, location: …}`. Default location:
    /// `Authorization: Bearer <secret>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyAuth>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<Unsupported>,
    /// Sign a short-lived JWT for each request with a private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_sign: Option<JwtSign>,
    /// Exchange the caller's token for one meant for this backend (RFC 8693 / RFC 7523).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_token_exchange: Option<super::token_exchange::OauthTokenExchange>,
    /// Cross-app access (ID-JAG): the caller's token exchanged at its identity provider, then
    /// at the resource's authorization server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_app_access: Option<super::token_exchange::CrossAppAccess>,
    /// More secrets to send, each at its own location (alone or with one of the kinds above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<BackendCredential>>,
}

/// `backendAuth.key`: the short form (the secret, inline or `{file}`) or the long form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KeyAuth {
    /// `{value, location}`.
    Full(KeyValue),
    /// The secret alone, sent as `Authorization: Bearer <secret>`.
    Short(SecretFileOrInline),
}

impl KeyAuth {
    pub fn value(&self) -> &SecretFileOrInline {
        match self {
            KeyAuth::Full(k) => &k.value,
            KeyAuth::Short(s) => s,
        }
    }

    pub fn location(&self) -> Option<&CredentialLocation> {
        match self {
            KeyAuth::Full(k) => k.location.as_ref(),
            KeyAuth::Short(_) => None,
        }
    }
}

/// The long form of `backendAuth.key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyValue {
    /// The secret, inline (`$VAR` works) or `{file: <path>}`.
    pub value: SecretFileOrInline,
    /// Where it goes. Default `Authorization: Bearer <secret>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<CredentialLocation>,
}

/// `backendAuth.jwtSign`: a JWT signed for every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtSign {
    /// PEM private key, inline or `{file: <path>}`: `RSA PRIVATE KEY` (PKCS#1) for RS*/PS*,
    /// `PRIVATE KEY` (PKCS#8) for ES256/ES384 (P-256/P-384) and EdDSA (Ed25519).
    pub signing_key: SecretFileOrInline,
    /// `RS256` (default), `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key id (`kid` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Claims of every token (`iss`, `sub`, `aud`, …; any JSON). `iat`, `exp` and `nbf` are
    /// set by the signer.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub claims: std::collections::BTreeMap<String, serde_json::Value>,
    /// Token lifetime (`exp` − signing time). Default `300s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Where the token goes: a header (default `Authorization: Bearer <token>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<CredentialLocation>,
}

/// One more secret for the backend, at its own location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendCredential {
    /// Where it goes (`header: {name, prefix}`, `queryParameter: {name}`, `cookie: {name}`).
    pub location: CredentialLocation,
    /// The secret, inline or `{file: <path>}`.
    pub key: SecretFileOrInline,
}

impl BackendAuth {
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        super::common::present([("gcp", &self.gcp), ("aws", &self.aws), ("azure", &self.azure)])
    }
}

/// Token passthrough.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Passthrough {
    /// Where to put the token upstream. Default: `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<CredentialLocation>,
}

/// Time limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timeout {
    /// Whole request: from arrival until the response is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Duration>,
    /// Each upstream request: until the upstream's response headers arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request_timeout: Option<Duration>,
    /// Longest gap between response body frames. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_idle_timeout: Option<Unsupported>,
}

/// Header changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderModifier {
    /// Headers to append (existing values stay).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, Secret>,
    /// Headers to set (existing values are replaced).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Secret>,
    /// Headers to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}
