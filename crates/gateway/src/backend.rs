//! Sending a routed request to its backend: the MCP relay, or a plain HTTP reverse proxy.

use std::net::SocketAddr;
use std::time::Duration;

use agw_http::SendError;
use agw_http::body::{Body, BoxError};
use std::sync::Arc;

use agw_mcp::authz::Authorizer;
use agw_mcp::{CallOptions, Caller, HttpClient, Relay};
use agw_policy::location::Location;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, Uri};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::time::Instant;
use tracing::warn;

use crate::auth::Identity;
use crate::error::GatewayError;
use crate::resolve::{Backend, Policies};
use crate::token_exchange::{ExchangeError, TokenExchange};
use crate::traffic::retry;
use crate::traffic::rewrite::HostOverride;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// When the request arrived at the route (its `requestTimeout` counts from there).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrived(pub(crate) Instant);

/// What the MCP relay is handed for one request: the rules, the guardrails, the trace.
pub(crate) struct Hooks {
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
    pub(crate) guardrails: Option<Arc<dyn agw_mcp::guardrails::Guardrails>>,
    pub(crate) trace: Option<agw_mcp::trace::SpanContext>,
}

pub(crate) async fn call<B>(
    backend: &Backend,
    policies: &Policies,
    (relay, client): (&Relay, &HttpClient),
    peer: SocketAddr,
    Hooks { authorizer, guardrails, trace }: Hooks,
    req: Request<B>,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let arrived = req.extensions().get::<Arrived>().map_or_else(Instant::now, |a| a.0);
    // A weighted split: this request's backend is drawn first.
    let backend = match backend {
        Backend::Split(s) => s.pick(),
        other => other,
    };
    // The validated token goes upstream only when a policy says so.
    let forward = req.extensions().get::<Identity>().and_then(|id| id.token.as_ref()).and_then(|t| {
        match (&policies.passthrough, t.preserved) {
            (Some(loc), _) => Some((loc.clone(), t.value.clone())),
            (None, true) => Some((Location::bearer(), t.value.clone())),
            (None, false) => None,
        }
    });
    // `jwtSign`: a fresh token per request (its location is a header; see resolve).
    let signed = match &policies.jwt_sign {
        Some(j) => match j.header() {
            Some(h) => Some(h),
            None => return GatewayError::UpstreamFailed.into_response(),
        },
        None => None,
    };
    // `oauthTokenExchange` / `crossAppAccess`: the caller's token for one meant for this
    // backend (header location only; see resolve).
    let (req, exchanged) = match &policies.token_exchange {
        Some(x) => {
            let (mut parts, body) = req.into_parts();
            match exchange(x, &parts, peer).await {
                Ok(token) => {
                    x.remove_sources(&mut parts);
                    (Request::from_parts(parts, body), x.location.header(token.expose()))
                }
                Err(e) => return exchange_failed(backend, &e),
            }
        }
        None => (req, None),
    };
    let signed = signed.or(exchanged);
    match backend {
        Backend::Mcp(mcp) => {
            let mut extra = HeaderMap::new();
            if let Some((name, value)) = forward.as_ref().and_then(|(loc, token)| loc.header(token)) {
                extra.insert(name, value);
            }
            if let Some((name, value)) = signed {
                extra.insert(name, value);
            }
            // The header modifier in effect and static credentials travel with each target
            // (`HttpTarget::headers`): a target's own replace the route's.
            let mut opts = CallOptions::new(
                policies.request_timeout.map(|d| (arrived + d, d)),
                policies.backend_timeout,
                extra,
                authorizer,
            );
            opts.trace = trace;
            opts.guardrails = guardrails;
            // Who is calling matters to MCP sessions only: worked out here, not for every route.
            opts.caller = req
                .extensions()
                .get::<Identity>()
                .map_or_else(|| Caller::anonymous(Some(peer.ip())), |id| id.caller(peer));
            relay.serve(mcp.clone(), req, opts).await
        }
        Backend::Host { authority, client: tls_client } => {
            // Response headers within the route's timeouts, else the gateway's default: a hung
            // upstream must not hold the client (and a connection) for ever. The body streams.
            let limit = [policies.request_timeout, policies.backend_timeout]
                .into_iter()
                .flatten()
                .min()
                .or(Some(relay.options().request_timeout));
            let req = match forward {
                Some((loc, token)) => {
                    let (mut parts, body) = req.into_parts();
                    loc.insert(&mut parts, &token);
                    Request::from_parts(parts, body)
                }
                None => req,
            };
            let req = match signed {
                Some((name, value)) => {
                    let (mut parts, body) = req.into_parts();
                    parts.headers.insert(name, value);
                    Request::from_parts(parts, body)
                }
                None => req,
            };
            let upstream =
                Upstream { client: tls_client.as_ref().unwrap_or(client), tls: tls_client.is_some(), authority };
            let deadline = policies.request_timeout.map(|d| arrived + d);
            send_to_host(upstream, policies, peer, req, (limit, deadline))
                .await
                .unwrap_or_else(GatewayError::into_response)
        }
        Backend::Split(_) | Backend::None => GatewayError::NoRoute.into_response(),
    }
}

/// The proxy call, with `retry` when the route has it and the request may be retried.
async fn send_to_host<B>(
    upstream: Upstream<'_>,
    policies: &Policies,
    peer: SocketAddr,
    req: Request<B>,
    (limit, deadline): (Option<Duration>, Option<Instant>),
) -> Result<Response<Body>, GatewayError>
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let retry = policies
        .traffic
        .as_ref()
        .and_then(|t| t.retry.as_ref())
        .filter(|_| req.extensions().get::<retry::Retryable>().is_some());
    match retry {
        None => proxy(upstream, policies, peer, req, limit).await,
        Some(r) => proxy_retrying(upstream, (policies, r), peer, req, (limit, deadline)).await,
    }
}

/// The proxy call with `retry`: the body is read once (when it can be replayed) and the
/// request sent again while the answer is retryable, at most `retries` more times, within the
/// route's `requestTimeout`.
async fn proxy_retrying<B>(
    upstream: Upstream<'_>,
    (policies, r): (&Policies, &retry::Retry),
    peer: SocketAddr,
    req: Request<B>,
    (limit, deadline): (Option<Duration>, Option<Instant>),
) -> Result<Response<Body>, GatewayError>
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let Some(size) = retry::replayable_size(&parts) else {
        return proxy(upstream, policies, peer, Request::from_parts(parts, body), limit).await;
    };
    let bytes = crate::traffic::read_bounded(body, size).await?;
    let mut attempt: u8 = 0;
    loop {
        let mut head = parts.clone();
        if attempt > 0 {
            head.headers.insert(HeaderName::from_static("x-retry-attempt"), HeaderValue::from(u16::from(attempt)));
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let this_limit = [limit, left].into_iter().flatten().min();
        let req = Request::from_parts(head, http_body_util::Full::new(bytes.clone()));
        let result = proxy(upstream, policies, peer, req, this_limit).await;
        let again = match &result {
            Ok(resp) => r.retries_response(resp.status(), resp.headers()),
            Err(e) => matches!(
                e,
                GatewayError::UpstreamConnect | GatewayError::UpstreamTimeout | GatewayError::UpstreamFailed
            ),
        };
        if !again || attempt >= r.retries {
            return result;
        }
        let wait = r.backoff.unwrap_or_default();
        if deadline.is_some_and(|d| Instant::now() + wait >= d) {
            // No time left for another attempt: the last answer stands.
            return result;
        }
        drop(result);
        attempt += 1;
        tracing::debug!(attempt, upstream = %upstream.authority, "retrying");
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Runs a token exchange for the request in `parts`.
async fn exchange(
    x: &TokenExchange,
    parts: &http::request::Parts,
    peer: SocketAddr,
) -> Result<agw_config::model::Secret, ExchangeError> {
    let identity = parts.extensions.get::<Identity>();
    let uses = x.uses();
    let inputs = if uses == agw_policy::rules::Uses::default() {
        agw_policy::expr::Inputs::default()
    } else {
        let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let v = crate::authz::request_vars(parts, host, peer, identity.unwrap_or(&Identity::default()), uses);
        agw_policy::expr::Inputs::from(v)
    };
    x.token(parts, identity, &inputs).await
}

/// The answer when no credential could be obtained for the backend: the status says whose
/// problem it is; on an MCP route, the body is a JSON-RPC error an agent can read.
fn exchange_failed(backend: &Backend, e: &ExchangeError) -> Response<Body> {
    let status = e.status();
    if status.is_server_error() {
        warn!(error = %e, "backend credentials could not be obtained");
    } else {
        tracing::debug!(error = %e, "backend credentials refused for this caller");
    }
    let message = format!("backend credentials: {e}");
    let text = match backend {
        Backend::Mcp(_) => serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32603, "message": message, "data": {"status": status.as_u16()}},
        }),
        Backend::Host { .. } | Backend::Split(_) | Backend::None => serde_json::json!({ "error": message }),
    }
    .to_string();
    let mut r = Response::new(agw_http::body::full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status == http::StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    }
    r
}

/// Where a `host:` backend's requests go.
#[derive(Clone, Copy)]
struct Upstream<'a> {
    client: &'a HttpClient,
    /// `https` (the client has `backendTLS`) or `http`.
    tls: bool,
    authority: &'a http::uri::Authority,
}

/// Plain reverse proxy: same method, path and body; bodies stream both ways.
async fn proxy<B>(
    Upstream { client, tls, authority }: Upstream<'_>,
    policies: &Policies,
    peer: SocketAddr,
    req: Request<B>,
    limit: Option<Duration>,
) -> Result<Response<Body>, GatewayError>
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = Uri::builder()
        .scheme(if tls { "https" } else { "http" })
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|_| GatewayError::UpstreamFailed)?;
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    // `urlRewrite` may have chosen the `Host` the backend sees; by default, its own authority.
    let host = match parts.extensions.remove::<HostOverride>() {
        Some(HostOverride(h)) => h,
        None => HeaderValue::from_str(authority.as_str()).map_err(|_| GatewayError::UpstreamFailed)?,
    };
    parts.headers.insert(header::HOST, host);
    append_forwarded_for(&mut parts.headers, peer);
    policies.request_headers.apply(&mut parts.headers);
    for c in &policies.credentials {
        c.location.insert(&mut parts, c.value.expose());
    }
    let upstream = Request::from_parts(parts, body.map_err(Into::into).boxed());
    let send = client.send(upstream);
    let result = match limit {
        Some(d) => tokio::time::timeout(d, send).await.map_err(|_| GatewayError::UpstreamTimeout)?,
        None => send.await,
    };
    let resp = result.map_err(|e| {
        warn!(upstream = %authority, error = %e, "proxy upstream failed");
        match e {
            SendError::Connect(_) => GatewayError::UpstreamConnect,
            SendError::Other(_) => GatewayError::UpstreamFailed,
        }
    })?;
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.map_err(Into::into).boxed()))
}

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(listed.iter()) {
        headers.remove(name);
    }
    // `Upgrade` only means something with `Connection: upgrade`, which is not proxied.
    headers.remove(header::UPGRADE);
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
}
