//! Traffic policies of a route, compiled once per config version and run in one order, after
//! authentication, authorization and rate limits (agentgateway's order):
//!
//! 0. `buffer` (`traffic/buffer.rs`) reads the request body, `transformations`
//!    (`traffic/transform.rs`) change the request's headers and body, then `csrf`
//!    (`traffic/csrf.rs`) refuses cross-site state-changing requests;
//! 1. `urlRewrite` (`traffic/rewrite.rs`) changes the path and the `Host` a `host:` backend
//!    gets;
//! 2. `requestRedirect` (`traffic/rewrite.rs`) answers with `Location`;
//! 3. `delay` (`traffic/delay.rs`) waits, within the route's `requestTimeout`;
//! 4. `directResponse` (`traffic/direct.rs`) answers, always or when a condition holds;
//! 5. `requestMirror` (`traffic/mirror.rs`) sends a copy, in the background;
//! 6. `retry` (`traffic/retry.rs`) wraps the call to a `host:` backend (in `backend.rs`);
//! 7. `buffer` reads the response body, `transformations` change the response
//!    ([`after_backend`]).
//!
//! A route without any of them has no [`Traffic`] at all: nothing is evaluated per request.

pub(crate) mod buffer;
pub(crate) mod csrf;
pub(crate) mod delay;
pub(crate) mod direct;
pub(crate) mod mirror;
pub(crate) mod retry;
pub(crate) mod rewrite;
pub(crate) mod transform;

use std::net::SocketAddr;

use agw_config::model::RoutePolicies;
use agw_config::{FieldError, FieldPath};
use agw_http::HttpClient;
use agw_http::body::Body;
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::Uses;
use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use tokio::time::Instant;

use crate::auth::Identity;
use crate::error::GatewayError;
use crate::listener::Admitted;
use crate::route::Route;

/// Compiles a route's traffic expressions, collecting errors and the variables they read.
pub(crate) struct Compiler<'a> {
    errors: &'a mut Vec<FieldError>,
    uses: Vec<&'static str>,
}

/// What request-side expressions may read (`response` is the retry condition's alone).
const REQUEST_VARIABLES: [&str; 5] = ["request", "source", "jwt", "apiKey", "basicAuth"];

impl Compiler<'_> {
    fn err(&mut self, at: FieldPath, message: impl Into<String>) {
        self.errors.push(FieldError::new(at, message));
    }

    /// A CEL expression over the request.
    fn expression(&mut self, at: &FieldPath, src: &str) -> Option<Expression> {
        let e = Expression::compile(src).map_err(|m| self.err(at.clone(), m)).ok()?;
        if let Some(v) = ["mcp", "response"].into_iter().find(|v| e.reads(v)) {
            self.err(at.clone(), format!("`{v}` is not known here (use {})", REQUEST_VARIABLES.join(", ")));
            return None;
        }
        self.uses.extend(REQUEST_VARIABLES.into_iter().filter(|v| e.reads(v)));
        Some(e)
    }

    /// A CEL expression over the request and its response.
    fn response_side_expression(&mut self, at: &FieldPath, src: &str) -> Option<Expression> {
        let e = Expression::compile(src).map_err(|m| self.err(at.clone(), m)).ok()?;
        if e.reads("mcp") {
            self.err(at.clone(), format!("`mcp` is not known here (use response, {})", REQUEST_VARIABLES.join(", ")));
            return None;
        }
        self.uses.extend(REQUEST_VARIABLES.into_iter().filter(|v| e.reads(v)));
        Some(e)
    }

    /// A CEL expression over a response (`response.code`, `response.headers`).
    fn response_expression(&mut self, at: &FieldPath, src: &str) -> Option<Expression> {
        let e = Expression::compile(src).map_err(|m| self.err(at.clone(), m)).ok()?;
        if let Some(v) = agw_policy::expr::VARIABLES.into_iter().find(|v| *v != "response" && e.reads(v)) {
            self.err(at.clone(), format!("`{v}` is not known here (a retry condition reads `response`)"));
            return None;
        }
        Some(e)
    }
}

/// A route's traffic policies in runtime form.
#[derive(Debug)]
pub(crate) struct Traffic {
    buffer: Option<buffer::Buffer>,
    transform: Option<transform::Transformations>,
    csrf: Option<csrf::Csrf>,
    rewrite: Option<rewrite::UrlRewrite>,
    redirect: Option<rewrite::Redirect>,
    delay: Option<delay::Delay>,
    direct: Option<direct::DirectResponses>,
    mirror: Option<mirror::Mirror>,
    pub(crate) retry: Option<retry::Retry>,
    /// The request variables the expressions read.
    uses: Uses,
}

impl Traffic {
    /// `None` when the route has none of these policies.
    pub(crate) fn resolve(at: &FieldPath, p: &RoutePolicies, errors: &mut Vec<FieldError>) -> Option<Traffic> {
        if p.buffer.is_none()
            && p.transformations.is_none()
            && p.csrf.is_none()
            && p.url_rewrite.is_none()
            && p.request_redirect.is_none()
            && p.delay.is_none()
            && p.direct_response.is_none()
            && p.request_mirror.is_none()
            && p.retry.is_none()
        {
            return None;
        }
        let mut c = Compiler { errors, uses: Vec::new() };
        let t = Traffic {
            buffer: p.buffer.as_ref().map(buffer::Buffer::resolve),
            transform: p
                .transformations
                .as_ref()
                .map(|t| transform::Transformations::resolve(&at.key("transformations"), t, &mut c)),
            csrf: p.csrf.as_ref().map(csrf::Csrf::resolve),
            rewrite: p.url_rewrite.as_ref().map(rewrite::UrlRewrite::resolve),
            redirect: p
                .request_redirect
                .as_ref()
                .and_then(|r| rewrite::Redirect::resolve(&at.key("requestRedirect"), r, &mut c)),
            delay: p.delay.as_ref().and_then(|d| delay::Delay::resolve(&at.key("delay"), d, &mut c)),
            direct: p
                .direct_response
                .as_ref()
                .and_then(|d| direct::DirectResponses::resolve(&at.key("directResponse"), d, &mut c)),
            mirror: p
                .request_mirror
                .as_ref()
                .and_then(|m| mirror::Mirror::resolve(&at.key("requestMirror"), m, &mut c)),
            retry: p.retry.as_ref().and_then(|r| retry::Retry::resolve(&at.key("retry"), r, &mut c)),
            uses: Uses::default(),
        };
        let uses = Uses::of(c.uses.iter().copied());
        Some(Traffic { uses, ..t })
    }

    /// Whether a policy replaces the matched path prefix (every match must then be a prefix).
    pub(crate) fn needs_prefix(&self) -> bool {
        self.rewrite.as_ref().is_some_and(|r| r.uses_prefix())
            || self.redirect.as_ref().is_some_and(|r| r.uses_prefix())
    }

    pub(crate) fn rewrites_url(&self) -> bool {
        self.rewrite.is_some()
    }

    pub(crate) fn changes_request_body(&self) -> bool {
        self.transform.as_ref().is_some_and(|t| t.changes_request_body())
    }
}

/// Who sent the request and how, for expressions and redirects.
pub(crate) struct Context<'a> {
    pub(crate) route: &'a Route,
    pub(crate) host: &'a str,
    pub(crate) peer: SocketAddr,
    pub(crate) identity: &'a Identity,
    pub(crate) tls: bool,
    /// The route's `requestTimeout` deadline.
    pub(crate) deadline: Option<Instant>,
    pub(crate) client: &'a HttpClient,
}

/// The request as it goes on: its body, and the variables the response side evaluates with.
pub(crate) struct Passed {
    pub(crate) body: Admitted,
    pub(crate) inputs: Inputs,
}

/// Steps 0–5: `Ok` with the body to send on, or the answer given here.
pub(crate) async fn before_backend(
    t: &Traffic,
    parts: &mut Parts,
    body: Admitted,
    cx: Context<'_>,
) -> Result<Passed, Response<Body>> {
    let inputs = inputs(t.uses, parts, &cx);
    // The prefix the route matched, before anything changes the request.
    let prefix = t.needs_prefix().then(|| cx.route.matched_prefix(parts).map(str::to_string)).flatten();
    let body = match &t.buffer {
        Some(b) => b.request(parts, body).await.map_err(GatewayError::into_response)?,
        None => body,
    };
    let body = match &t.transform {
        Some(tr) => tr.request(parts, body, &inputs, cx.host).await.map_err(GatewayError::into_response)?,
        None => body,
    };
    if let Some(refused) = t.csrf.as_ref().and_then(|c| c.check(parts, cx.tls)) {
        return Err(refused);
    }
    if let Some(rw) = &t.rewrite {
        rw.apply(parts, prefix.as_deref()).map_err(GatewayError::into_response)?;
    }
    if let Some(r) = &t.redirect {
        return Err(r.answer(parts, prefix.as_deref(), cx.tls).unwrap_or_else(GatewayError::into_response));
    }
    if let Some(d) = &t.delay {
        d.wait(&inputs, cx.deadline).await.map_err(GatewayError::into_response)?;
    }
    if let Some(answer) = t.direct.as_ref().and_then(|d| d.answer(&inputs)) {
        return Err(answer);
    }
    if let Some(r) = &t.retry
        && r.admits(&inputs)
    {
        parts.extensions.insert(retry::Retryable);
    }
    let Some(m) = t.mirror.as_ref().filter(|m| m.fires()) else { return Ok(Passed { body, inputs }) };
    let Some(size) = retry::replayable_size(parts) else {
        m.send(cx.client, parts, None);
        return Ok(Passed { body, inputs });
    };
    let bytes = read_bounded(body, size).await.map_err(GatewayError::into_response)?;
    m.send(cx.client, parts, Some(bytes.clone()));
    Ok(Passed { body: Admitted::Read(Some(bytes)), inputs })
}

/// Step 7: the response's `transformations`, when there are any.
pub(crate) async fn after_backend(t: &Traffic, resp: Response<Body>, inputs: &Inputs) -> Response<Body> {
    let resp = match &t.buffer {
        Some(b) if b.has_response() => b.response(resp).await,
        _ => resp,
    };
    match &t.transform {
        Some(tr) if tr.has_response() => tr.response(resp, inputs).await,
        _ => resp,
    }
}

/// Reads a body of known, small size whole.
pub(crate) async fn read_bounded<B>(body: B, size: u64) -> Result<Bytes, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<agw_http::body::BoxError>,
{
    // `size` was checked by `retry::replayable_size`: small, or what `buffer` already read.
    let limit = usize::try_from(size).unwrap_or(0);
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            tracing::debug!(error = %e, "request body could not be read for a mirror or retry");
            Err(GatewayError::BadRequestBody)
        }
    }
}

fn inputs(uses: Uses, parts: &Parts, cx: &Context<'_>) -> Inputs {
    if uses == Uses::default() {
        return Inputs::default();
    }
    Inputs::from(crate::authz::request_vars(parts, cx.host, cx.peer, cx.identity, uses))
}
