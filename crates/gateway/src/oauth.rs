//! `mcpAuthentication`'s public endpoints, answered before authentication (a client reads them
//! to learn how to get a token):
//!
//! - `/.well-known/oauth-protected-resource<path>`: RFC 9728 metadata for the route at `<path>`;
//! - `/.well-known/oauth-authorization-server<path>` (also `<path>/.well-known/…`, the form
//!   older clients use): the provider's RFC 8414 / OpenID metadata, fetched from the issuer,
//!   cached, and adapted to the provider ([`provider::rewrite`]);
//! - beneath that metadata URL, `/client-registration` (RFC 7591: answered with the configured
//!   `clientId`, or proxied to the provider) and, for Entra, `/authorize` and `/token`.
//!
//! Which route's policy applies is decided by `<path>`, as if a request for it had arrived.
//! Requests only pick among URLs derived from the configured issuer at load time: nothing a
//! client sends, and nothing in a fetched document, becomes a URL the gateway calls.

pub mod fetch;
pub mod provider;

use std::sync::Arc;

use agw_config::model::{McpProvider, Secret};
use agw_http::HttpClient;
use agw_http::body::{self, Body, BoxError, read_limited};
use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, AUTHORIZATION,
    CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION,
};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::auth::{Origin, ResourceMetadata};
use crate::error::GatewayError;
use crate::route::Listener;
use provider::{Entra, Issuer, Served};

const PROTECTED_RESOURCE: &str = "/.well-known/oauth-protected-resource";
const AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
/// Largest registration or token request accepted from a client.
pub const MAX_REQUEST_BYTES: usize = 64 << 10;

/// Why an authorization-server endpoint could not be answered. The client sees
/// [`OAuthError::public`]; the log gets the detail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    #[error("the issuer is not a URL, so there is no authorization server metadata to serve")]
    NoMetadata,
    #[error("authorization server call failed: {0}")]
    Upstream(String),
    #[error("authorization server did not answer within {}s", fetch::CALL_TIMEOUT.as_secs())]
    UpstreamTimeout,
    #[error("authorization server answered HTTP {0}")]
    UpstreamStatus(u16),
    #[error("authorization server's answer is larger than {0} bytes")]
    UpstreamTooLarge(usize),
    #[error("authorization server metadata is unusable: {0}")]
    BadMetadata(&'static str),
    #[error("too many calls to the authorization server in flight")]
    Busy,
    #[error("client registration is not available: {0}")]
    NoRegistration(&'static str),
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("request body could not be read")]
    BodyUnreadable,
}

impl OAuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::NoMetadata => StatusCode::NOT_FOUND,
            OAuthError::Upstream(_)
            | OAuthError::UpstreamStatus(_)
            | OAuthError::UpstreamTooLarge(_)
            | OAuthError::BadMetadata(_) => StatusCode::BAD_GATEWAY,
            OAuthError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            OAuthError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::NoRegistration(_) => StatusCode::NOT_IMPLEMENTED,
            OAuthError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::BodyUnreadable => StatusCode::BAD_REQUEST,
        }
    }

    /// What the client is told: no provider addresses or transport detail.
    pub fn public(&self) -> String {
        match self {
            OAuthError::Upstream(_)
            | OAuthError::UpstreamStatus(_)
            | OAuthError::UpstreamTooLarge(_)
            | OAuthError::BadMetadata(_) => "the authorization server could not be used; see the gateway's log".into(),
            other => other.to_string(),
        }
    }
}

/// The authorization-server side of one route's `mcpAuthentication`.
#[derive(Debug)]
pub struct AuthServer {
    pub provider: Option<McpProvider>,
    /// The first configured audience (Auth0 and Okta take it as `audience=`).
    audience: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    /// Where registrations are proxied, or why they cannot be.
    registration: Result<Uri, &'static str>,
    /// Entra's real endpoints (authorize, token).
    entra: Option<(String, Uri)>,
    upstream: fetch::Upstream,
}

/// What `mcpAuthentication` configures, as [`AuthServer::new`] needs it.
#[derive(Debug)]
pub struct AuthServerConfig<'a> {
    pub issuer: &'a Issuer,
    pub provider: Option<McpProvider>,
    pub audiences: &'a [String],
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a Secret>,
}

impl AuthServer {
    /// Derives every URL the gateway may call for this route; `Err` names a bad issuer.
    pub fn new(c: AuthServerConfig<'_>, client: HttpClient) -> Result<AuthServer, String> {
        let uri = |s: String| s.parse::<Uri>().map_err(|_| format!("`{s}` is not a valid URL"));
        let metadata = uri(provider::metadata_url(c.provider, c.issuer)?)?;
        let registration = match provider::registration_url(c.provider, c.issuer) {
            Ok(url) => Ok(uri(url)?),
            Err(why) => Err(why),
        };
        let entra = match c.provider {
            Some(McpProvider::Entra {}) => {
                let e = Entra::from_issuer(c.issuer)?;
                Some((e.authorization_endpoint, uri(e.token_endpoint)?))
            }
            _ => None,
        };
        Ok(AuthServer {
            provider: c.provider,
            audience: c.audiences.first().cloned(),
            client_id: c.client_id.map(str::to_string),
            client_secret: c.client_secret.cloned(),
            registration,
            entra,
            upstream: fetch::Upstream::new(client, Some(metadata)),
        })
    }

    /// The provider's metadata, adapted for this request.
    async fn metadata(&self, served: &Served) -> Result<Value, OAuthError> {
        let mut doc = (*self.upstream.metadata().await?).clone();
        provider::rewrite(self.provider, self.audience.as_deref(), &mut doc, served).map_err(|why| {
            warn!(provider = self.provider.map(McpProvider::name), "{why}");
            OAuthError::BadMetadata(why)
        })?;
        Ok(Value::Object(doc))
    }

    /// RFC 7591 registration: the configured client, or the provider's answer.
    async fn register(&self, headers: &HeaderMap, body: Bytes) -> Result<Response<Body>, OAuthError> {
        if let Some(client_id) = &self.client_id {
            return Ok(preregistered(client_id, &body));
        }
        let url = self.registration.as_ref().map_err(|why| OAuthError::NoRegistration(why))?;
        let mut forward = HeaderMap::new();
        // An initial access token (RFC 7591 §3) for the provider, when the client has one.
        if let Some(auth) = headers.get(AUTHORIZATION) {
            forward.insert(AUTHORIZATION, auth.clone());
        }
        let answer = self.upstream.post(url, "application/json", forward, body).await?;
        debug!(status = answer.status.as_u16(), "client registration proxied");
        Ok(relayed(answer))
    }

    /// Entra's authorization endpoint, without the `resource` parameter it refuses.
    fn entra_authorize(&self, query: Option<&str>) -> Option<Response<Body>> {
        let (authorize, _) = self.entra.as_ref()?;
        let kept: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(k, _)| k != "resource")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let location = if kept.is_empty() {
            authorize.clone()
        } else {
            format!("{authorize}?{}", form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish())
        };
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::FOUND;
        r.headers_mut().insert(LOCATION, HeaderValue::try_from(location).ok()?);
        Some(r)
    }

    /// Entra's token endpoint: `resource` dropped, and the configured secret added for the
    /// configured client on user-delegated grants only. This endpoint is public: adding the
    /// secret to `client_credentials` would let anyone mint application tokens with it.
    async fn entra_token(&self, headers: &HeaderMap, body: Bytes) -> Result<Response<Body>, OAuthError> {
        let Some((_, token)) = &self.entra else { return Err(OAuthError::NoMetadata) };
        let mut forward = HeaderMap::new();
        if let Some(auth) = headers.get(AUTHORIZATION) {
            forward.insert(AUTHORIZATION, auth.clone());
        }
        let form = self.entra_token_form(forward.contains_key(AUTHORIZATION), &body);
        let answer = self.upstream.post(token, "application/x-www-form-urlencoded", forward, Bytes::from(form)).await?;
        let mut r = relayed(answer);
        r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(r)
    }
}

impl AuthServer {
    /// The token request as Entra gets it (see [`AuthServer::entra_token`]). A client that
    /// authenticates itself (`Authorization` or its own `client_secret`) gets nothing added.
    fn entra_token_form(&self, client_authenticates: bool, body: &[u8]) -> String {
        let form = TokenForm::parse(body);
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.extend_pairs(form.kept.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let delegated = matches!(form.grant_type.as_deref(), Some("authorization_code" | "refresh_token"));
        if !client_authenticates
            && !form.has_secret
            && delegated
            && self.client_id.is_some()
            && form.client_id == self.client_id
            && let Some(secret) = &self.client_secret
        {
            out.append_pair("client_secret", secret.expose());
        }
        out.finish()
    }
}

/// A token request form, re-encoded without `resource`.
#[derive(Debug, Default)]
struct TokenForm {
    kept: Vec<(String, String)>,
    has_secret: bool,
    grant_type: Option<String>,
    client_id: Option<String>,
}

impl TokenForm {
    fn parse(body: &[u8]) -> TokenForm {
        let mut f = TokenForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "resource" => continue,
                "client_secret" => f.has_secret = true,
                "grant_type" => f.grant_type = Some(v.to_string()),
                "client_id" => f.client_id = Some(v.to_string()),
                _ => {}
            }
            f.kept.push((k.into_owned(), v.into_owned()));
        }
        f
    }
}

/// The registration answer for a pre-registered client: its id, and the redirect URIs the
/// client asked for (strict clients check them); never anything else the client sent.
fn preregistered(client_id: &str, request: &[u8]) -> Response<Body> {
    let redirect_uris = serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|v| v.get("redirect_uris").cloned())
        .filter(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
        .unwrap_or_else(|| json!([]));
    let doc = json!({
        "client_id": client_id,
        "client_id_issued_at": 0,
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": redirect_uris,
    });
    let mut r = json_response(StatusCode::CREATED, &doc);
    public_cors(&mut r, "POST, OPTIONS");
    r
}

/// The provider's answer as the client gets it: status, JSON type, body; none of its other
/// headers (cookies, caching) and CORS added.
fn relayed(answer: fetch::Answer) -> Response<Body> {
    let mut r = Response::new(body::full(answer.body));
    *r.status_mut() = answer.status;
    let json = HeaderValue::from_static("application/json");
    r.headers_mut().insert(CONTENT_TYPE, answer.content_type.unwrap_or(json));
    public_cors(&mut r, "POST, OPTIONS");
    r
}

fn json_response(status: StatusCode, doc: &Value) -> Response<Body> {
    let mut r = Response::new(body::full(doc.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// These endpoints are public and take no cookies: any origin may read them.
fn public_cors(r: &mut Response<Body>, methods: &'static str) {
    let h = r.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization, mcp-protocol-version"),
    );
}

/// Which endpoint below the authorization-server metadata URL a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Metadata,
    Registration,
    Authorize,
    Token,
}

/// One reading of an authorization-server path.
#[derive(Debug, PartialEq, Eq)]
struct AsPath<'a> {
    kind: Kind,
    /// The resource path whose route decides (`""` for the root).
    resource: &'a str,
    /// The metadata URL's path; the gateway's own endpoints go beneath it.
    metadata: String,
}

const SUB_ENDPOINTS: [(&str, Kind); 3] =
    [("/client-registration", Kind::Registration), ("/authorize", Kind::Authorize), ("/token", Kind::Token)];

/// The readings of `path`, most specific first: `/.well-known/oauth-authorization-server/mcp/token`
/// is Entra's token endpoint for `/mcp`, or the metadata of a resource at `/mcp/token`.
fn as_paths(path: &str) -> Vec<AsPath<'_>> {
    let mut out = Vec::new();
    if let Some(rest) = path.strip_prefix(AUTHORIZATION_SERVER).filter(|r| r.is_empty() || r.starts_with('/')) {
        for (suffix, kind) in SUB_ENDPOINTS {
            if let Some(resource) = rest.strip_suffix(suffix) {
                out.push(AsPath { kind, resource, metadata: format!("{AUTHORIZATION_SERVER}{resource}") });
            }
        }
        out.push(AsPath { kind: Kind::Metadata, resource: rest, metadata: path.to_string() });
    } else if let Some(at) = path.find(AUTHORIZATION_SERVER).filter(|at| *at > 0) {
        // The older form, the well-known segment after the resource path.
        let (resource, after) = (&path[..at], &path[at + AUTHORIZATION_SERVER.len()..]);
        let metadata = format!("{resource}{AUTHORIZATION_SERVER}");
        let kind = match after {
            "" | "/" => Some(Kind::Metadata),
            _ => SUB_ENDPOINTS.iter().find(|(s, _)| *s == after).map(|(_, k)| *k),
        };
        if let Some(kind) = kind {
            out.push(AsPath { kind, resource, metadata });
        }
    }
    out
}

/// An endpoint this module answers, found for a request.
pub(crate) enum Endpoint {
    ResourceMetadata { meta: Arc<ResourceMetadata>, resource_path: String },
    Server { server: Arc<AuthServer>, kind: Kind, served: Served },
}

/// The route that a request for `resource_path` would take, as a POST with this request's
/// headers (an MCP request).
fn route_for<'l>(
    listener: &'l Listener,
    parts: &Parts,
    host: &str,
    resource_path: &str,
) -> Option<&'l crate::route::Route> {
    let mut probe = Request::builder().method(Method::POST).uri(resource_path).body(()).ok()?.into_parts().0;
    probe.headers = parts.headers.clone();
    listener.route(&probe, host)
}

/// Recognises the well-known paths of routes with `mcpAuthentication`.
pub(crate) fn endpoint(listener: &Listener, parts: &Parts, host: &str, origin: &Origin) -> Option<Endpoint> {
    let path = parts.uri.path();
    if let Some(suffix) = path.strip_prefix(PROTECTED_RESOURCE).filter(|s| s.is_empty() || s.starts_with('/')) {
        let resource_path = if suffix.is_empty() { "/" } else { suffix };
        let meta = route_for(listener, parts, host, resource_path)?.policies.resource_metadata.clone()?;
        return Some(Endpoint::ResourceMetadata { meta, resource_path: resource_path.to_string() });
    }
    for reading in as_paths(path) {
        let resource_path = if reading.resource.is_empty() { "/" } else { reading.resource };
        let Some(server) = route_for(listener, parts, host, resource_path).and_then(|r| r.policies.auth_server.clone())
        else {
            continue;
        };
        if matches!(reading.kind, Kind::Authorize | Kind::Token) && server.entra.is_none() {
            continue;
        }
        let base = format!("{}://{}", origin.scheme, origin.host);
        let served = Served {
            metadata_url: format!("{base}{}", reading.metadata),
            issuer: format!("{base}{}", reading.resource),
        };
        return Some(Endpoint::Server { server, kind: reading.kind, served });
    }
    None
}

impl Endpoint {
    /// The answer; reads the request body only where one is expected (bounded).
    pub(crate) async fn answer<B>(self, parts: &Parts, body: B, origin: &Origin) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (server, kind, served) = match self {
            Endpoint::ResourceMetadata { meta, resource_path } => {
                if let Some(r) = not_served(&parts.method, "GET, HEAD, OPTIONS") {
                    return r;
                }
                let mut r = json_response(StatusCode::OK, &meta.document(origin, &resource_path));
                public_cors(&mut r, "GET, OPTIONS");
                r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
                return r;
            }
            Endpoint::Server { server, kind, served } => (server, kind, served),
        };
        let methods = match kind {
            Kind::Metadata | Kind::Authorize => "GET, HEAD, OPTIONS",
            Kind::Registration | Kind::Token => "POST, OPTIONS",
        };
        if let Some(r) = not_served(&parts.method, methods) {
            return r;
        }
        let result = match kind {
            Kind::Metadata => server.metadata(&served).await.map(|doc| {
                let mut r = json_response(StatusCode::OK, &doc);
                public_cors(&mut r, "GET, OPTIONS");
                r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
                r
            }),
            Kind::Authorize => {
                Ok(server.entra_authorize(parts.uri.query()).unwrap_or_else(|| GatewayError::NoRoute.into_response()))
            }
            Kind::Registration => match read_body(body).await {
                Ok(b) => server.register(&parts.headers, b).await,
                Err(e) => Err(e),
            },
            Kind::Token => match read_body(body).await {
                Ok(b) => server.entra_token(&parts.headers, b).await,
                Err(e) => Err(e),
            },
        };
        result.unwrap_or_else(|e| {
            warn!(path = parts.uri.path(), error = %e, "authorization server endpoint failed");
            let mut r = GatewayError::from(e).into_response();
            public_cors(&mut r, methods);
            r
        })
    }
}

/// What a request's method asks of an endpoint serving `methods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    Preflight,
    Serve,
    NotAllowed,
}

fn asked(method: &Method, methods: &'static str) -> Asked {
    if method == Method::OPTIONS {
        Asked::Preflight
    } else if methods.split(", ").any(|m| m == method.as_str()) {
        Asked::Serve
    } else {
        Asked::NotAllowed
    }
}

/// 405, or the preflight answer; `None` when the endpoint should serve the request.
fn not_served(method: &Method, methods: &'static str) -> Option<Response<Body>> {
    match asked(method, methods) {
        Asked::Serve => None,
        Asked::Preflight => Some(preflight(methods)),
        Asked::NotAllowed => {
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut().insert(ALLOW, HeaderValue::from_static(methods));
            Some(r)
        }
    }
}

fn preflight(methods: &'static str) -> Response<Body> {
    let mut r = Response::new(body::empty());
    public_cors(&mut r, methods);
    r.headers_mut().insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    r
}

async fn read_body<B>(body: B) -> Result<Bytes, OAuthError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read_limited(body, MAX_REQUEST_BYTES).await.map_err(|e| match e {
        body::ReadError::TooLarge { limit } => OAuthError::BodyTooLarge(limit),
        body::ReadError::Io(_) => OAuthError::BodyUnreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(path: &str) -> Vec<(Kind, &str, String)> {
        as_paths(path).into_iter().map(|p| (p.kind, p.resource, p.metadata)).collect()
    }

    #[test]
    fn authorization_server_paths() {
        let m = |s: &str| s.to_string();
        assert_eq!(kinds("/.well-known/oauth-authorization-server"), [(Kind::Metadata, "", m(AUTHORIZATION_SERVER))]);
        assert_eq!(
            kinds("/.well-known/oauth-authorization-server/mcp"),
            [(Kind::Metadata, "/mcp", m("/.well-known/oauth-authorization-server/mcp"))]
        );
        assert_eq!(
            kinds("/.well-known/oauth-authorization-server/mcp/client-registration"),
            [
                (Kind::Registration, "/mcp", m("/.well-known/oauth-authorization-server/mcp")),
                (
                    Kind::Metadata,
                    "/mcp/client-registration",
                    m("/.well-known/oauth-authorization-server/mcp/client-registration")
                ),
            ]
        );
        assert_eq!(kinds("/.well-known/oauth-authorization-server/mcp/token")[0].0, Kind::Token);
        assert_eq!(
            kinds("/.well-known/oauth-authorization-server/authorize")[0],
            (Kind::Authorize, "", m(AUTHORIZATION_SERVER))
        );
        assert_eq!(
            kinds("/mcp/.well-known/oauth-authorization-server/"),
            [(Kind::Metadata, "/mcp", m("/mcp/.well-known/oauth-authorization-server"))]
        );
        assert_eq!(kinds("/mcp/.well-known/oauth-authorization-server/client-registration")[0].0, Kind::Registration);
        assert!(kinds("/.well-known/oauth-authorization-server-evil").is_empty());
        assert!(kinds("/mcp/.well-known/oauth-authorization-server/other").is_empty());
        assert!(kinds("/mcp").is_empty());
    }

    #[test]
    fn token_forms_lose_resource_and_are_read_safely() {
        let f = TokenForm::parse(
            b"grant_type=authorization_code&client_id=abc&code=x&resource=https%3A%2F%2Fgw%2Fmcp&resource=b",
        );
        assert_eq!(f.grant_type.as_deref(), Some("authorization_code"));
        assert_eq!(f.client_id.as_deref(), Some("abc"));
        assert!(!f.has_secret);
        assert!(f.kept.iter().all(|(k, _)| k != "resource"));
        assert_eq!(f.kept.len(), 3);
        let f = TokenForm::parse(b"grant_type=refresh_token&client_secret=s");
        assert!(f.has_secret);
        let f = TokenForm::parse(b"%%%&&==\xff\xfe");
        assert!(f.grant_type.is_none());
    }

    #[tokio::test]
    async fn preregistered_answers_carry_only_the_redirect_uris() {
        let body = |r: Response<Body>| async move {
            let b = read_limited(r.into_body(), 1 << 16).await.unwrap();
            serde_json::from_slice::<Value>(&b).unwrap()
        };
        let r = preregistered(
            "op-id",
            br#"{"redirect_uris":["http://localhost:1/cb"],"client_id":"mine","client_name":"x"}"#,
        );
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let doc = body(r).await;
        assert_eq!(doc["client_id"], "op-id");
        assert_eq!(doc["redirect_uris"], json!(["http://localhost:1/cb"]));
        assert_eq!(doc["token_endpoint_auth_method"], "none");
        assert!(doc.get("client_name").is_none());
        for junk in [&b"not json"[..], b"[1,2]", b"", br#"{"redirect_uris":[1]}"#, br#"{"redirect_uris":"x"}"#] {
            let doc = body(preregistered("op-id", junk)).await;
            assert_eq!(doc["redirect_uris"], json!([]), "{}", String::from_utf8_lossy(junk));
        }
    }

    fn entra_server(secret: Option<&str>) -> AuthServer {
        let issuer = Issuer::parse("https://login.microsoftonline.com/tenant-1/v2.0").unwrap();
        let secret = secret.map(Secret::new);
        AuthServer::new(
            AuthServerConfig {
                issuer: &issuer,
                provider: Some(McpProvider::Entra {}),
                audiences: &["api://x".to_string()],
                client_id: Some("app-1"),
                client_secret: secret.as_ref(),
            },
            HttpClient::default(),
        )
        .unwrap()
    }

    #[test]
    fn entra_authorize_drops_resource() {
        let s = entra_server(None);
        let r = s
            .entra_authorize(Some(
                "client_id=app-1&resource=https%3A%2F%2Fgw%2Fmcp&state=s%20t&code_challenge_method=S256",
            ))
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let loc = r.headers()[LOCATION].to_str().unwrap();
        assert!(
            loc.starts_with("https://login.microsoftonline.com/tenant-1/oauth2/v2.0/authorize?client_id=app-1&"),
            "{loc}"
        );
        assert!(!loc.contains("resource"), "{loc}");
        assert!(loc.contains("state=s+t") && loc.contains("code_challenge_method=S256"), "{loc}");
        let bare = s.entra_authorize(None).unwrap();
        assert_eq!(bare.headers()[LOCATION], "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/authorize");
    }

    #[test]
    fn entra_secret_only_for_the_configured_client_and_delegated_grants() {
        let s = entra_server(Some("s3cret"));
        let form = |auth, body: &str| s.entra_token_form(auth, body.as_bytes());
        let code = "grant_type=authorization_code&client_id=app-1&code=c&code_verifier=v&resource=https%3A%2F%2Fgw";
        let sent = form(false, code);
        assert!(sent.contains("client_secret=s3cret"), "{sent}");
        assert!(!sent.contains("resource"), "{sent}");
        assert!(
            form(false, "grant_type=refresh_token&client_id=app-1&refresh_token=r").contains("client_secret=s3cret")
        );
        for (auth, body) in [
            (false, "grant_type=client_credentials&client_id=app-1&scope=x"),
            (false, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&client_id=app-1"),
            (false, "grant_type=authorization_code&client_id=other-app&code=c"),
            (false, "grant_type=authorization_code&code=c"),
            (true, code),
        ] {
            assert!(!form(auth, body).contains("s3cret"), "{body} (client authenticates: {auth})");
        }
        assert!(
            form(false, "grant_type=authorization_code&client_id=app-1&client_secret=theirs")
                .ends_with("client_secret=theirs")
        );
        assert!(!entra_server(None).entra_token_form(false, code.as_bytes()).contains("client_secret"));
        assert!(!format!("{s:?}").contains("s3cret"), "Debug never shows the secret");
    }

    #[test]
    fn errors_tell_clients_no_internals() {
        let e = OAuthError::Upstream("cannot connect: 10.0.0.7:8080 refused".into());
        assert!(!e.public().contains("10.0.0.7"));
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(OAuthError::NoRegistration("set `clientId`").status(), StatusCode::NOT_IMPLEMENTED);
        assert!(
            OAuthError::NoRegistration("set `clientId`").public().contains("clientId"),
            "the hint reaches the client"
        );
    }
}
