//! `backendAuth.oauthTokenExchange` and `backendAuth.crossAppAccess`: credentials for the
//! upstream obtained per caller from an OAuth authorization server (RFC 8693 token exchange,
//! RFC 7523 JWT bearer, and the ID-JAG chain of the two).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backend_policy::BackendPolicies;
use super::common::{Duration, Unsupported};
use super::policy::{CredentialLocation, SecretFileOrInline};

/// Form parameters the exchange sets itself: `additionalParams` may not name them.
pub const RESERVED_PARAMS: [&str; 14] = [
    "grant_type",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "assertion",
    "audience",
    "resource",
    "scope",
    "requested_token_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// The token type URNs of RFC 8693 §3 (and the ID-JAG draft's).
pub const TOKEN_TYPES: [&str; 7] = [
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:refresh_token",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml1",
    "urn:ietf:params:oauth:token-type:saml2",
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id-jag",
];

/// The expressions a token `source` may be: the token `jwtAuth` validated.
pub const RAW_TOKEN_EXPRESSIONS: [&str; 2] = ["jwt.rawToken", "jwt.rawToken.unredacted()"];

/// `backendAuth.oauthTokenExchange`: the caller's token is exchanged at an authorization
/// server's token endpoint for one meant for this upstream, which replaces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OauthTokenExchange {
    /// The token endpoint's server: `host:port` (plain HTTP unless `policies.backendTLS`),
    /// or `https://host[:port]` (TLS with the system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A named backend (`host:` kind) serving the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// A Kubernetes service. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Unsupported>,
    /// Policies for calls to the token endpoint (`backendTLS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Box<BackendPolicies>>,
    /// The token endpoint's path. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `tokenExchange` (RFC 8693, default) or `jwtBearer` (RFC 7523: the subject token is the
    /// `assertion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<GrantType>,
    /// Where the caller's token is read and its type. Default: the `Authorization: Bearer`
    /// header (with `jwtAuth` on the route: the token it validated), an access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token: Option<TokenSpec>,
    /// RFC 8693 delegation: the actor's token (token exchange only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token: Option<ActorTokenSpec>,
    /// `audience` parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// `scope` values (sent space-separated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `resource` parameters (RFC 8707).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// `requested_token_type` (a token type URN; token exchange only). Default: not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_token_type: Option<String>,
    /// How the gateway authenticates to the token endpoint. Default: not at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    /// More form parameters: name → CEL expression giving a string (e.g. `'"on_behalf_of"'`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_params: BTreeMap<String, String>,
    /// Where the obtained token goes. Default `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_location: Option<CredentialLocation>,
    /// The token cache. Default: 8192 entries, 300 s for answers without `expires_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<TokenCache>,
}

/// The grant of a token request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GrantType {
    /// RFC 8693 token exchange.
    #[default]
    TokenExchange,
    /// RFC 7523 JWT bearer.
    JwtBearer,
}

/// Where a token is read from and its type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenSpec {
    /// Where it is in the client's request. Default `Authorization: Bearer`. The expression
    /// `jwt.rawToken` (or `jwt.rawToken.unredacted()`) names the token `jwtAuth` validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<CredentialLocation>,
    /// Its RFC 8693 token type URN. Default `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

/// The actor's token (RFC 8693 delegation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ActorTokenSpec {
    /// Where it is in the client's request (no default: it must differ from the subject's).
    pub source: CredentialLocation,
    /// Its token type URN. Default `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Exchange only when the subject token's `may_act` claim names this actor (the actor
    /// token must then be a JWT: `tokenType: urn:ietf:params:oauth:token-type:jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_may_act: Option<bool>,
}

/// Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientAuth {
    /// The gateway's `client_id` at the authorization server.
    pub client_id: String,
    /// `clientSecretBasic` (default: HTTP Basic), `clientSecretPost` (in the form) or
    /// `privateKeyJwt` (a signed client assertion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ClientAuthMethod>,
    /// The client secret, inline (`$VAR` works) or `{file}`; the secret methods only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretFileOrInline>,
    /// `privateKeyJwt`: the PEM private key that signs the assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SecretFileOrInline>,
    /// `privateKeyJwt`: `RS256` (default), `RS384`, `RS512`, `PS256`…, `ES256`, `ES384`, `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// `privateKeyJwt`: the assertion's `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `privateKeyJwt`: the assertion's `aud` (usually the token endpoint URL or the issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion_audience: Option<String>,
    /// `privateKeyJwt`: a certificate chain for `x5c`/`x5t#S256`. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Unsupported>,
    /// Not supported yet (goes with `certificate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_header: Option<Unsupported>,
}

/// A client authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

/// The cache of obtained tokens, keyed by a digest of what was sent (subject and actor
/// tokens, their types, extra parameters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenCache {
    /// Most tokens kept; `0` turns the cache off. Default 8192.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<usize>,
    /// How long a token without `expires_in` is kept. Default `300s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<Duration>,
}

/// `backendAuth.crossAppAccess` (Identity Assertion JWT Authorization Grant, "ID-JAG"): the
/// caller's token is exchanged at its identity provider for an ID-JAG bound to the resource's
/// authorization server (RFC 8693), which is then exchanged there for an access token
/// (RFC 7523).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CrossAppAccess {
    /// The identity provider's token endpoint and the gateway's client there.
    pub identity_provider: CrossAppEndpoint,
    /// The resource authorization server's token endpoint and the gateway's client there.
    pub resource_authorization_server: CrossAppEndpoint,
    /// The resource authorization server's identifier: the ID-JAG's audience.
    pub audience: String,
    /// `resource` parameters (first leg).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// `scope` values of the ID-JAG.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `scope` values of the access token (second leg). Default: `scopes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_scopes: Option<Vec<String>>,
    /// The caller's token. Default: `Authorization: Bearer`, an ID token
    /// (`urn:ietf:params:oauth:token-type:id_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token: Option<TokenSpec>,
    /// The token cache (see `oauthTokenExchange.cache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<TokenCache>,
}

/// One token endpoint of `crossAppAccess`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CrossAppEndpoint {
    /// `host:port` or `https://host[:port]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A named backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// A Kubernetes service. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Unsupported>,
    /// Policies for calls to it (`backendTLS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Box<BackendPolicies>>,
    /// The token endpoint's path. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The gateway's client there.
    pub client_auth: ClientAuth,
}
