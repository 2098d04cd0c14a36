//! The client-facing side of an MCP backend: Streamable HTTP in, upstream transports out.
//!
//! `POST` carries JSON-RPC messages; the answer is JSON or an SSE stream that is forwarded event
//! by event as it arrives. `GET` opens the server's own stream, `DELETE` ends the session. The
//! gateway's `Mcp-Session-Id` is the upstream session ids, encoded (see [`crate::session`]).

mod stream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderName, HeaderValue, ORIGIN};
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::authz::{self, Authorizer, ListKind, ListRequests};
use crate::body::{self, Body, BoxError, ReadError, read_limited};
use crate::error::{FailureKind, RelayError, UpstreamFailure};
use crate::jsonrpc::{self, Kind};
use crate::session::{SessionCodec, SessionState, TargetSession};
use crate::sse::Event;
use crate::upstream::{HttpClient, LAST_EVENT_ID, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, Outgoing, SendError, Upstream};

/// Size limits for what is read from clients and upstreams.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted from a client.
    pub max_request: usize,
    /// Largest JSON response or single SSE event accepted from an upstream.
    pub max_response: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_request: 16 << 20, max_response: 32 << 20 }
    }
}

/// One upstream MCP server of a backend.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub upstream: Upstream,
}

/// An MCP backend as the relay runs it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub targets: Vec<Target>,
    pub dns_rebinding_protection: bool,
}

/// Per-request settings that come from route policies.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Whole-request limit (`timeout.requestTimeout`), counted from when the request arrived.
    pub deadline: Option<(Instant, Duration)>,
    /// Limit for upstream response headers (`timeout.backendRequestTimeout`).
    pub backend_timeout: Option<Duration>,
    /// Headers to send upstream in addition to the forwarded ones (`requestHeaderModifier`).
    pub extra_headers: HeaderMap,
    /// Decides which tools, prompts and resources the caller may see and use.
    pub authorizer: Option<Arc<dyn Authorizer>>,
}

/// What a POST turns into: what goes upstream, and what the gateway answers itself.
struct Plan {
    /// The body for the upstream (`None`: nothing to forward).
    forward: Option<Bytes>,
    /// Ids of the forwarded requests, which the upstream must answer.
    pending: Vec<Box<RawValue>>,
    /// The gateway's own answers to refused calls.
    denied: Vec<Bytes>,
    /// Forwarded list requests, whose answers are filtered.
    lists: ListRequests,
}

impl Plan {
    fn new(msgs: &jsonrpc::Body<'_>, bytes: &Bytes, target: &str, authz: Option<&dyn Authorizer>) -> Plan {
        let Some(authz) = authz else {
            let pending = msgs.requests().filter_map(|m| m.id.map(ToOwned::to_owned)).collect();
            return Plan { forward: Some(bytes.clone()), pending, denied: Vec::new(), lists: Vec::new() };
        };
        let mut kept = Vec::new();
        let mut denied = Vec::new();
        let mut lists = Vec::new();
        for m in &msgs.messages {
            if m.kind == Kind::Request {
                if let Some(answer) = authz::denied_call(m, target, authz) {
                    denied.push(answer);
                    continue;
                }
                if let (Some(kind), Some(id)) = (m.method().and_then(ListKind::of), m.id.and_then(authz::raw_id)) {
                    lists.push((id, kind));
                }
            }
            kept.push(m);
        }
        let pending =
            kept.iter().filter(|m| m.kind == Kind::Request).filter_map(|m| m.id.map(ToOwned::to_owned)).collect();
        let forward = match (kept.len(), denied.is_empty()) {
            (0, _) => None,
            (_, true) => Some(bytes.clone()),
            _ => Some(authz::join_array(kept.iter().map(|m| m.raw.get().as_bytes()))),
        };
        Plan { forward, pending, denied, lists }
    }

    /// The answer when nothing needs the upstream's: the refused calls' errors.
    fn answer_alone(&self, batch: bool) -> Bytes {
        match (&self.denied[..], batch) {
            ([one], false) => one.clone(),
            (all, _) => authz::join_array(all.iter().map(|b| &b[..])),
        }
    }

    /// Filters list answers and adds the refused calls' errors to a JSON answer.
    fn rewrite_json(&self, bytes: Bytes, target: &str, authz: Option<&dyn Authorizer>) -> Bytes {
        let Some(authz) = authz.filter(|_| !self.lists.is_empty() || !self.denied.is_empty()) else { return bytes };
        let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else { return bytes };
        let mut changed = false;
        let messages: Vec<&mut Value> = match &mut value {
            Value::Array(items) => items.iter_mut().collect(),
            one => vec![one],
        };
        for m in messages {
            if let Some(kind) = authz::list_kind_of(m, &self.lists) {
                changed |= authz::filter_list(m, kind, target, authz);
            }
        }
        if !self.denied.is_empty() {
            let mut all = match value {
                Value::Array(items) => items,
                one => vec![one],
            };
            all.extend(self.denied.iter().filter_map(|d| serde_json::from_slice::<Value>(d).ok()));
            value = Value::Array(all);
            changed = true;
        }
        if changed { Bytes::from(serde_json::to_vec(&value).expect("JSON re-serialises")) } else { bytes }
    }
}

/// Client headers that are forwarded to upstreams. Everything else (cookies, credentials,
/// hop-by-hop headers) stays at the gateway.
const FORWARDED: [HeaderName; 6] = [
    MCP_PROTOCOL_VERSION,
    LAST_EVENT_ID,
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
    HeaderName::from_static("baggage"),
    http::header::USER_AGENT,
];

const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Relays MCP traffic for any number of backends; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Relay {
    client: HttpClient,
    codec: SessionCodec,
    limits: Limits,
}

impl Relay {
    pub fn new(client: HttpClient, limits: Limits) -> Relay {
        Relay { client, codec: SessionCodec, limits }
    }

    /// Answers one client request for `backend`.
    pub async fn serve<B>(&self, backend: Arc<Backend>, req: http::Request<B>, opts: CallOptions) -> Response<Body>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        if backend.dns_rebinding_protection && !local_host_and_origin(&parts.headers) {
            return error_response(&RelayError::DnsRebinding, &[]);
        }
        let result = match parts.method {
            Method::POST => self.post(&backend, &parts, body, &opts).await,
            Method::GET => self.get(&backend, &parts, &opts).await,
            Method::DELETE => self.delete(&backend, &parts, &opts).await,
            _ => Err(RelayError::MethodNotAllowed),
        };
        result.unwrap_or_else(|e| error_response(&e, &[]))
    }

    async fn post<B>(
        &self,
        backend: &Backend,
        parts: &Parts,
        body: B,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let bytes = read_limited(body, self.limits.max_request).await.map_err(|e| match e {
            ReadError::TooLarge { limit } => RelayError::BodyTooLarge { limit },
            ReadError::Io(_) => RelayError::BodyRead,
        })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| RelayError::Parse(jsonrpc::ParseError::Json("body is not UTF-8".into())))?;
        let msgs = jsonrpc::Body::parse(text)?;
        let is_init = msgs.messages.iter().any(|m| m.kind == Kind::Request && m.method() == Some("initialize"));
        if is_init && msgs.batch {
            return Err(RelayError::InitializeInBatch);
        }
        let state = if is_init { None } else { Some(self.session(&parts.headers)?) };
        let target = &backend.targets[0];
        let plan = Plan::new(&msgs, &bytes, &target.name, opts.authorizer.as_deref());
        let Some(forward) = plan.forward.clone() else {
            // Every request was refused here; nothing goes upstream.
            return Ok(json_response(StatusCode::OK, plan.answer_alone(msgs.batch)));
        };
        let out = Outgoing {
            method: Method::POST,
            body: forward,
            session: state.as_ref().and_then(|s| s.upstream_session(&target.name)).map(str::to_string),
            headers: forward_headers(&parts.headers, &opts.extra_headers),
        };
        match self.forward_post(target, out, is_init, &plan, opts).await {
            Ok(resp) => Ok(resp),
            Err(failure) => {
                log_failure(&failure);
                let rpc = RelayError::Upstream(failure).to_rpc();
                let mut answers = plan.denied.clone();
                answers.extend(plan.pending.iter().map(|id| jsonrpc::error_response(Some(id), &rpc)));
                Ok(json_response(
                    StatusCode::OK,
                    if answers.len() == 1 && !msgs.batch {
                        answers.remove(0)
                    } else {
                        authz::join_array(answers.iter().map(|b| &b[..]))
                    },
                ))
            }
        }
    }

    async fn forward_post(
        &self,
        target: &Target,
        out: Outgoing,
        is_init: bool,
        plan: &Plan,
        opts: &CallOptions,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let had_session = out.session.is_some();
        let resp = self.send(target, out, opts).await?;
        let status = resp.status();
        let fail = |kind| UpstreamFailure { target: target.name.clone(), kind };
        let session_header = if is_init && status.is_success() {
            let upstream = resp.headers().get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
            let state = SessionState { targets: vec![TargetSession { name: target.name.clone(), session: upstream }] };
            Some(HeaderValue::from_str(&self.codec.encode(&state)).expect("base64url is a valid header"))
        } else {
            None
        };
        let mut response = match status {
            // Only notifications went upstream; the refused requests still need their answers.
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT if !plan.denied.is_empty() => {
                json_response(StatusCode::OK, plan.answer_alone(true))
            }
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT => accepted(),
            s if s.is_success() => match media_type(resp.headers()).as_deref() {
                Some("text/event-stream") => {
                    let rewrite = stream::Rewrite {
                        prefix: plan.denied.iter().map(|d| Event::encode_message(d, None)).collect(),
                        lists: plan.lists.clone(),
                        authorizer: opts.authorizer.clone(),
                    };
                    let events = stream::relay_events(
                        target.name.clone(),
                        resp.into_body(),
                        &plan.pending,
                        self.limits.max_response,
                        opts.deadline,
                        rewrite,
                    );
                    sse_response(events)
                }
                Some("application/json") => {
                    let bytes = self.read_upstream(target, resp.into_body(), opts).await?;
                    check_json_rpc(&bytes).map_err(|e| fail(FailureKind::Garbage(e)))?;
                    json_response(StatusCode::OK, plan.rewrite_json(bytes, &target.name, opts.authorizer.as_deref()))
                }
                other => {
                    return Err(fail(FailureKind::Garbage(format!("unexpected content type {other:?}"))));
                }
            },
            StatusCode::NOT_FOUND if had_session => {
                debug!(target = %target.name, "upstream session expired");
                return Ok(error_response(&RelayError::SessionUnknown, &[]));
            }
            s if s.is_client_error() => self.pass_through(target, resp, opts).await?,
            s => return Err(fail(FailureKind::Status(s))),
        };
        if let Some(v) = session_header {
            response.headers_mut().insert(MCP_SESSION_ID, v);
        }
        Ok(response)
    }

    async fn get(&self, backend: &Backend, parts: &Parts, opts: &CallOptions) -> Result<Response<Body>, RelayError> {
        let state = self.session(&parts.headers)?;
        let target = &backend.targets[0];
        let out = Outgoing {
            method: Method::GET,
            body: Bytes::new(),
            session: state.upstream_session(&target.name).map(str::to_string),
            headers: forward_headers(&parts.headers, &opts.extra_headers),
        };
        // The standalone stream lives as long as the session: the request timeout does not
        // apply to it, only the wait for its headers.
        let opts = CallOptions { deadline: None, ..opts.clone() };
        let resp = self.send(target, out, &opts).await?;
        let status = resp.status();
        if status == StatusCode::OK && media_type(resp.headers()).as_deref() == Some("text/event-stream") {
            let rewrite = stream::Rewrite { prefix: Vec::new(), lists: Vec::new(), authorizer: None };
            return Ok(sse_response(stream::relay_events(
                target.name.clone(),
                resp.into_body(),
                &[],
                self.limits.max_response,
                None,
                rewrite,
            )));
        }
        if status == StatusCode::NOT_FOUND && state.upstream_session(&target.name).is_some() {
            return Err(RelayError::SessionUnknown);
        }
        if status.is_client_error() || status.is_success() {
            return Ok(self.pass_through(target, resp, &opts).await?);
        }
        Err(UpstreamFailure { target: target.name.clone(), kind: FailureKind::Status(status) }.into())
    }

    async fn delete(&self, backend: &Backend, parts: &Parts, opts: &CallOptions) -> Result<Response<Body>, RelayError> {
        let state = self.session(&parts.headers)?;
        let target = &backend.targets[0];
        let Some(session) = state.upstream_session(&target.name) else {
            // Nothing to end upstream: the session lived only in the id.
            return Ok(empty_response(StatusCode::OK));
        };
        let out = Outgoing {
            method: Method::DELETE,
            body: Bytes::new(),
            session: Some(session.to_string()),
            headers: forward_headers(&parts.headers, &opts.extra_headers),
        };
        let resp = self.send(target, out, opts).await?;
        match resp.status() {
            s if s.is_success() => Ok(empty_response(s)),
            StatusCode::NOT_FOUND => Err(RelayError::SessionUnknown),
            s if s.is_client_error() => Ok(self.pass_through(target, resp, opts).await?),
            s => Err(UpstreamFailure { target: target.name.clone(), kind: FailureKind::Status(s) }.into()),
        }
    }

    fn session(&self, headers: &HeaderMap) -> Result<SessionState, RelayError> {
        let value = headers.get(MCP_SESSION_ID).ok_or(RelayError::SessionRequired)?;
        let id = value.to_str().map_err(|_| RelayError::SessionUnknown)?;
        self.codec.decode(id).map_err(|e| {
            debug!(error = %e, "refused session id");
            RelayError::SessionUnknown
        })
    }

    /// Sends to the upstream, bounded by the backend timeout and the request deadline.
    async fn send(
        &self,
        target: &Target,
        out: Outgoing,
        opts: &CallOptions,
    ) -> Result<Response<Incoming>, UpstreamFailure> {
        let Upstream::Http(http) = &target.upstream;
        let fut = self.client.send(http.request(out));
        let (limit, at) = effective_limit(opts);
        let result = match at {
            Some(at) => match tokio::time::timeout_at(at, fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(UpstreamFailure { target: target.name.clone(), kind: FailureKind::Timeout(limit) });
                }
            },
            None => fut.await,
        };
        result.map_err(|e| UpstreamFailure {
            target: target.name.clone(),
            kind: match e {
                SendError::Connect(d) => FailureKind::Connect(d),
                SendError::Other(d) => FailureKind::Io(d),
            },
        })
    }

    async fn read_upstream(
        &self,
        target: &Target,
        body: Incoming,
        opts: &CallOptions,
    ) -> Result<Bytes, UpstreamFailure> {
        let fail = |kind| UpstreamFailure { target: target.name.clone(), kind };
        let read = read_limited(body, self.limits.max_response);
        let result = match opts.deadline {
            Some((at, limit)) => {
                tokio::time::timeout_at(at, read).await.map_err(|_| fail(FailureKind::Timeout(limit)))?
            }
            None => read.await,
        };
        result.map_err(|e| match e {
            ReadError::TooLarge { limit } => fail(FailureKind::TooLarge(limit)),
            ReadError::Io(e) => fail(FailureKind::Io(crate::upstream::error_chain(e.as_ref()))),
        })
    }

    /// Forwards an upstream answer that is not ours to interpret (e.g. a 400 with its reason).
    async fn pass_through(
        &self,
        target: &Target,
        resp: Response<Incoming>,
        opts: &CallOptions,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let (parts, body) = resp.into_parts();
        let bytes = self.read_upstream(target, body, opts).await?;
        let mut out = Response::new(body::full(bytes));
        *out.status_mut() = parts.status;
        if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
            out.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        for name in [http::header::WWW_AUTHENTICATE, ALLOW, http::header::RETRY_AFTER] {
            for v in parts.headers.get_all(&name) {
                out.headers_mut().append(name.clone(), v.clone());
            }
        }
        Ok(out)
    }
}

/// The tighter of the backend timeout and the remaining request time.
fn effective_limit(opts: &CallOptions) -> (Duration, Option<Instant>) {
    let backend = opts.backend_timeout.map(|d| (d, Instant::now() + d));
    match (backend, opts.deadline) {
        (Some(b), Some(r)) => {
            if b.1 <= r.0 {
                (b.0, Some(b.1))
            } else {
                (r.1, Some(r.0))
            }
        }
        (Some(b), None) => (b.0, Some(b.1)),
        (None, Some(r)) => (r.1, Some(r.0)),
        (None, None) => (Duration::ZERO, None),
    }
}

fn forward_headers(client: &HeaderMap, extra: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED {
        for v in client.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    for (name, v) in extra {
        out.append(name.clone(), v.clone());
    }
    out
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

fn check_json_rpc(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "response is not UTF-8".to_string())?;
    jsonrpc::Body::parse(text).map(|_| ()).map_err(|e| e.to_string())
}

/// DNS rebinding protection: the request must name a loopback host.
fn local_host_and_origin(headers: &HeaderMap) -> bool {
    let host_ok = headers.get(HOST).and_then(|h| h.to_str().ok()).is_some_and(is_loopback_authority);
    let origin_ok = match headers.get(ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => {
            let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
            is_loopback_authority(authority.trim_end_matches('/'))
        }
        Some(Err(_)) => false,
    };
    host_ok && origin_ok
}

fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { authority })
    };
    matches!(host.to_ascii_lowercase().as_str(), "localhost" | "127.0.0.1" | "::1")
}

fn log_failure(f: &UpstreamFailure) {
    match f.kind.detail() {
        Some(detail) => warn!(target = %f.target, error = %f, detail, "upstream failure"),
        None => warn!(target = %f.target, error = %f, "upstream failure"),
    }
}

fn accepted() -> Response<Body> {
    empty_response(StatusCode::ACCEPTED)
}

fn empty_response(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = status;
    r
}

fn json_response(status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut r = Response::new(body::full(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}

fn sse_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(CONTENT_TYPE, EVENT_STREAM);
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The response for an error: one JSON-RPC error per pending request (HTTP 200, so MCP clients
/// see an MCP error rather than a transport failure), or the error's own status when there is
/// no request id to answer.
pub fn error_response(err: &RelayError, pending: &[Box<RawValue>]) -> Response<Body> {
    let rpc = err.to_rpc();
    let (status, bytes) = match pending {
        [] => (err.status(), jsonrpc::error_response(None, &rpc)),
        [one] => (StatusCode::OK, jsonrpc::error_response(Some(one), &rpc)),
        many => {
            let mut out = Vec::from(&b"["[..]);
            for (i, id) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&jsonrpc::error_response(Some(id), &rpc));
            }
            out.push(b']');
            (StatusCode::OK, Bytes::from(out))
        }
    };
    let mut r = json_response(status, bytes);
    if matches!(err, RelayError::MethodNotAllowed) {
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_authorities() {
        for ok in ["localhost", "localhost:3000", "127.0.0.1:80", "[::1]:8080", "[::1]", "LOCALHOST:1"] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in ["evil.example.com", "localhost.evil.com", "127.0.0.2", "evil:localhost", ""] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn dns_rebinding_checks_host_and_origin() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("localhost:3000"));
        assert!(local_host_and_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("http://evil.example.com"));
        assert!(!local_host_and_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:3000"));
        assert!(local_host_and_origin(&h));
        h.insert(HOST, HeaderValue::from_static("evil.example.com"));
        assert!(!local_host_and_origin(&h));
    }

    #[test]
    fn errors_answer_every_pending_request() {
        let ids: Vec<Box<RawValue>> =
            vec![RawValue::from_string("1".into()).unwrap(), RawValue::from_string("\"b\"".into()).unwrap()];
        let err = RelayError::Upstream(UpstreamFailure {
            target: "mcp".into(),
            kind: FailureKind::Connect("refused".into()),
        });
        let resp = error_response(&err, &ids);
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = error_response(&err, &[]);
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    }
}
