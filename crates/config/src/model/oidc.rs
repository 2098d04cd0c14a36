//! `oidc`: browser sign-in (OpenID Connect authorization code with PKCE) in front of a route.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{FileInlineOrRemote, Secret};

/// Browser sign-in with an OpenID provider. The session lives in a cookie sealed with the key
/// in the environment variable `OIDC_COOKIE_SECRET` (64 hex digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Oidc {
    /// The provider's issuer (the ID token's `iss`; discovery at
    /// `<issuer>/.well-known/openid-configuration` unless the endpoints are given).
    pub issuer: String,
    /// The discovery document: `{url}`, `{file}` or inline. Default: from `issuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<FileInlineOrRemote>,
    /// The authorization endpoint (with `tokenEndpoint` and `jwks`: no discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// `clientSecretBasic` (default) or `clientSecretPost`, with explicit endpoints; discovery
    /// picks from the provider's `token_endpoint_auth_methods_supported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth: Option<TokenEndpointAuth>,
    /// The keys that sign ID tokens: `{url}`, `{file}` or inline JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<FileInlineOrRemote>,
    /// The gateway's client at the provider.
    pub client_id: String,
    /// Its secret (`$VAR` works).
    pub client_secret: Secret,
    /// The absolute callback URL the provider sends the browser back to; its path is answered
    /// by the gateway on this route.
    #[serde(rename = "redirectURI")]
    pub redirect_uri: String,
    /// More scopes (`openid` is always asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Extension: a path on this route that ends the session (clears the cookie; answers a
    /// "Signed out." page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_path: Option<String>,
}

/// How the gateway authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TokenEndpointAuth {
    ClientSecretBasic,
    ClientSecretPost,
}
