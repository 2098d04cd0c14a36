//! The client-facing side of an MCP backend: Streamable HTTP (and legacy SSE) in, upstream
//! transports out.
//!
//! One Streamable HTTP target with names unchanged takes the fast path (`passthrough`): bytes
//! relayed as they come. Anything else — several targets, stdio or legacy SSE upstreams,
//! prefixed names, stateless mode, legacy SSE clients — goes through the multiplexer
//! ([`crate::mux`], glued to HTTP in `multi` and `legacy`).

mod legacy;
mod multi;
mod passthrough;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderName, HeaderValue, ORIGIN};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body as HttpBody;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::warn;

use crate::authz::Authorizer;
use crate::body::{self, Body, BoxError, ReadError, read_limited};
use crate::caller::Caller;
use crate::error::{RelayError, UpstreamFailure};
use crate::jsonrpc;
use crate::local::LocalSessions;
use crate::metrics::{McpCall, McpLabels, Metrics};
use crate::mux::naming::PrefixMode;
use crate::quota::{NewSessions, QuotaSettings};
use crate::session::{SessionCodec, SessionState};
use crate::trace::{Attr, Kind, SpanContext, SpanData, Tracer};
use crate::upstream::{HttpClient, LAST_EVENT_ID, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, Upstream};

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

/// MCP settings that shape every request (`config.mcp`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McpOptions {
    /// Most messages in a JSON-RPC batch from a client.
    pub max_batch: usize,
    /// Time allowed for an upstream's whole answer when the route sets no
    /// `timeout.requestTimeout` (the standalone `GET` stream is not bounded).
    pub request_timeout: Duration,
    pub quotas: QuotaSettings,
}

/// Batches are for old clients; none of the SDKs sends long ones.
pub const DEFAULT_MAX_BATCH: usize = 16;
/// Longer than any client SDK's default request timeout (60 s in the TypeScript SDK), short
/// enough that a hung upstream does not hold a client, a connection and a task for ever.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            max_batch: DEFAULT_MAX_BATCH,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            quotas: QuotaSettings::default(),
        }
    }
}

/// The first protocol version without JSON-RPC batches.
const NO_BATCHES_FROM: &str = "2025-06-18";

/// One upstream MCP server of a backend.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub upstream: Upstream,
}

/// What happens when a target fails during a fan-out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureMode {
    #[default]
    FailClosed,
    FailOpen,
}

/// An MCP backend as the relay runs it.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    /// Identifies the backend in session ids (an id from one route is refused on another).
    pub key: String,
    pub targets: Vec<Target>,
    pub prefix_mode: PrefixMode,
    pub failure_mode: FailureMode,
    /// A throwaway upstream session per request.
    pub stateless: bool,
    pub dns_rebinding_protection: bool,
    /// Tool allow/deny lists and tool-definition pinning (extensions); `None`: neither.
    pub tools: Option<Arc<crate::guard::ToolGuard>>,
}

impl Backend {
    /// Whether requests can take the byte-for-byte fast path.
    fn passthrough(&self) -> bool {
        matches!(self.targets.as_slice(), [t] if matches!(t.upstream, Upstream::Http(_)))
            && self.prefix_mode != PrefixMode::Always
            && !self.stateless
    }

    fn has_stateful(&self) -> bool {
        self.targets.iter().any(|t| t.upstream.is_stateful())
    }

    fn has_stdio(&self) -> bool {
        self.targets.iter().any(|t| matches!(t.upstream, Upstream::Stdio(_)))
    }
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
    /// `mcpGuardrails`: external processors asked about chosen methods (`None`: none).
    pub guardrails: Option<Arc<dyn crate::guardrails::Guardrails>>,
    /// Filled in by the relay as it reads the body; ends up in the response's extensions.
    pub(crate) observed: std::sync::OnceLock<McpCall>,
    /// The client request's span, when traces are exported: upstream calls are its children.
    pub trace: Option<SpanContext>,
    /// Who is calling: sessions are bound to it and quotas counted against it.
    pub caller: Caller,
}

impl CallOptions {
    pub fn new(
        deadline: Option<(Instant, Duration)>,
        backend_timeout: Option<Duration>,
        extra_headers: HeaderMap,
        authorizer: Option<Arc<dyn Authorizer>>,
    ) -> CallOptions {
        CallOptions {
            deadline,
            backend_timeout,
            extra_headers,
            authorizer,
            guardrails: None,
            observed: std::sync::OnceLock::new(),
            trace: None,
            caller: Caller::default(),
        }
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
    pub(crate) client: HttpClient,
    pub(crate) codec: SessionCodec,
    pub(crate) limits: Limits,
    /// Sessions whose state this gateway holds (stateful upstreams, legacy SSE clients).
    pub(crate) locals: Arc<LocalSessions>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tracer: Option<Tracer>,
    pub(crate) options: McpOptions,
    /// New sessions per caller and per address.
    pub(crate) new_sessions: Arc<NewSessions>,
    /// Bytes all request bodies being read may hold together (none: no gateway-wide limit).
    pub(crate) budget: Option<Arc<body::Budget>>,
}

/// An upstream call's span, begun.
pub(crate) struct UpstreamSpan {
    context: SpanContext,
    parent: SpanContext,
    start: std::time::SystemTime,
}

impl UpstreamSpan {
    pub(crate) fn traceparent(&self) -> HeaderValue {
        self.context.traceparent()
    }
}

impl Relay {
    pub fn new(
        client: HttpClient,
        limits: Limits,
        codec: SessionCodec,
        locals: Arc<LocalSessions>,
        metrics: Arc<Metrics>,
    ) -> Relay {
        Relay {
            client,
            codec,
            limits,
            locals,
            metrics,
            tracer: None,
            options: McpOptions::default(),
            new_sessions: Arc::new(NewSessions::new(QuotaSettings::default())),
            budget: None,
        }
    }

    /// Batch limit, default timeout and quotas (`config.mcp`).
    pub fn with_options(mut self, options: McpOptions) -> Relay {
        self.new_sessions = Arc::new(NewSessions::new(options.quotas));
        self.options = options;
        self
    }

    pub fn options(&self) -> &McpOptions {
        &self.options
    }

    /// Holds request bodies being read within `budget` (503 beyond it).
    pub fn with_budget(mut self, budget: Arc<body::Budget>) -> Relay {
        self.budget = Some(budget);
        self
    }

    /// Exports a span per upstream call when traces are on.
    pub fn with_tracer(mut self, tracer: Option<Tracer>) -> Relay {
        self.tracer = tracer;
        self
    }

    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// Begins the span of an upstream call (when traces are on and the request has a span).
    pub(crate) fn begin_upstream(&self, opts: &CallOptions) -> Option<UpstreamSpan> {
        self.tracer.as_ref()?;
        let parent = opts.trace?;
        Some(UpstreamSpan { context: parent.child(), parent, start: std::time::SystemTime::now() })
    }

    pub(crate) fn end_upstream(
        &self,
        opts: &CallOptions,
        span: Option<UpstreamSpan>,
        target: &str,
        status: Option<u16>,
        error: Option<String>,
    ) {
        let (Some(span), Some(tracer)) = (span, &self.tracer) else { return };
        let method = opts.observed.get().map_or_else(|| "mcp".to_string(), |c| c.method.clone());
        let mut attributes: Vec<(&'static str, Attr)> =
            vec![("mcp.target", target.into()), ("mcp.method.name", method.as_str().into())];
        if let Some(s) = status {
            attributes.push(("http.response.status_code", i64::from(s).into()));
        }
        tracer.record(SpanData {
            name: format!("{method} {target}"),
            kind: Kind::Client,
            context: span.context,
            parent: Some(span.parent.span_id),
            start: span.start,
            end: std::time::SystemTime::now(),
            attributes: attributes.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            error,
        });
    }

    pub fn locals(&self) -> &Arc<LocalSessions> {
        &self.locals
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Counts one client request (metrics) and notes the first of a body (access log).
    /// `name` is the `params.name` of a `tools/call`.
    pub(crate) fn observe(&self, opts: &CallOptions, method: &str, name: Option<&str>, target: Option<&str>, n: usize) {
        let label = crate::metrics::method_label(method);
        self.metrics
            .mcp_requests
            .get_or_create(&McpLabels {
                method: label,
                target: target.unwrap_or_default().to_string(),
                tool: name.map(|t| self.metrics.tool_label(t)).unwrap_or_default(),
            })
            .inc();
        // Logged and traced as sent, but cut to a bounded length.
        let _ = opts.observed.set(McpCall {
            method: crate::metrics::cut(method).to_string(),
            target: target.map(str::to_string),
            tool: name.map(|t| crate::metrics::cut(t).to_string()),
            requests: n,
        });
    }

    /// A client's request body, within the size limit.
    pub(crate) async fn read_request<B>(&self, body: B) -> Result<Bytes, RelayError>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let limit = self.limits.max_request;
        // A declared length is judged before anything is read: a client announcing too much
        // is answered at once instead of being allowed to fill memory first.
        if let Some(declared) = body.size_hint().exact().and_then(|n| usize::try_from(n).ok()) {
            if declared > limit {
                return Err(RelayError::BodyTooLarge { limit });
            }
            if self.budget.as_ref().is_some_and(|b| declared > b.available()) {
                self.metrics.requests_over_budget.inc();
                return Err(RelayError::BodyBudget);
            }
        }
        let read = match &self.budget {
            Some(budget) => body::read_budgeted(body, limit, budget).await,
            None => read_limited(body, limit).await,
        };
        read.map_err(|e| match e {
            ReadError::TooLarge { limit } => RelayError::BodyTooLarge { limit },
            ReadError::Io(e) if e.is::<body::BodyTimedOut>() => RelayError::BodyTimeout,
            ReadError::Io(e) if e.is::<body::OverBudget>() => {
                self.metrics.requests_over_budget.inc();
                RelayError::BodyBudget
            }
            ReadError::Io(_) => RelayError::BodyRead,
        })
    }

    /// Reads a client's MCP request body as the relay would (size limit, buffer budget), for
    /// a policy that must see the messages before the relay does; the error is the relay's
    /// own answer.
    pub async fn read_body<B>(&self, body: B) -> Result<Bytes, Response<Body>>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        self.read_request(body).await.map_err(|e| error_response(&e, &[]))
    }

    /// Answers one client request for `backend`.
    pub async fn serve<B>(&self, backend: Arc<Backend>, req: http::Request<B>, mut opts: CallOptions) -> Response<Body>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        if let Some(guard) = &backend.tools {
            opts.authorizer = Some(guard.around(opts.authorizer.take(), self.metrics.clone()));
        }
        if opts.deadline.is_none() {
            let limit = self.options.request_timeout;
            opts.deadline = Some((Instant::now() + limit, limit));
        }
        if backend.dns_rebinding_protection && !local_host_and_origin(&parts.headers, &parts.uri) {
            return error_response(&RelayError::DnsRebinding, &[]);
        }
        let path = parts.uri.path();
        let result = if parts.method == Method::GET && path.ends_with("/sse") {
            self.legacy_open(&backend, &parts, &opts).await
        } else if parts.method == Method::POST
            && (path.ends_with("/sse") || path.ends_with("/message"))
            && parts.uri.query().is_some_and(|q| q.contains("sessionId="))
        {
            self.legacy_post(&backend, &parts, body, &opts).await
        } else if backend.passthrough() {
            match parts.method {
                Method::POST => self.post(&backend, &parts, body, &opts).await,
                Method::GET => self.get(&backend, &parts, &opts).await,
                Method::DELETE => self.delete(&backend, &parts, &opts).await,
                _ => Err(RelayError::MethodNotAllowed),
            }
        } else {
            match parts.method {
                Method::POST => self.multi_post(backend.clone(), &parts, body, &opts).await,
                Method::GET => self.multi_get(backend.clone(), &parts, &opts).await,
                Method::DELETE => self.multi_delete(&backend, &parts, &opts).await,
                _ => Err(RelayError::MethodNotAllowed),
            }
        };
        let mut response = result.unwrap_or_else(|e| error_response(&e, &[]));
        if let Some(call) = opts.observed.into_inner() {
            response.extensions_mut().insert(call);
        }
        response
    }

    /// The session a request names: decoded, bound to this backend and to its caller. An id
    /// presented by anyone but the caller that created it is an unknown session.
    fn session(&self, headers: &HeaderMap, backend: &Backend, caller: &Caller) -> Result<SessionState, RelayError> {
        let value = headers.get(MCP_SESSION_ID).ok_or(RelayError::SessionRequired)?;
        let id = value.to_str().map_err(|_| RelayError::SessionUnknown)?;
        let state = self.codec.decode(id).map_err(|e| {
            tracing::debug!(error = %e, "refused session id");
            RelayError::SessionUnknown
        })?;
        if state.backend != backend.key {
            tracing::debug!("session id of another backend refused");
            return Err(RelayError::SessionUnknown);
        }
        if state.owner != caller.owner {
            tracing::debug!("session id of another caller refused");
            self.refused("owner");
            return Err(RelayError::SessionUnknown);
        }
        Ok(state)
    }

    /// Counts a refused session request by reason (metrics).
    pub(crate) fn refused(&self, reason: &'static str) {
        self.metrics.sessions_refused.get_or_create(&crate::metrics::RefusedLabels { reason }).inc();
    }

    /// Lets a new session through `caller`'s rate quota; `id` is the raw JSON id of the
    /// request being answered.
    pub(crate) fn admit(&self, caller: &Caller, id: Option<&RawValue>) -> Result<(), RelayError> {
        self.new_sessions.admit(caller).map_err(|quota| {
            self.refused("rate");
            RelayError::OverQuota { quota, id: id.map(|i| i.get().to_string()) }
        })
    }

    /// Maps a refused local session to the client's error.
    pub(crate) fn refusal(&self, refused: crate::local::Refused, id: Option<String>) -> RelayError {
        match refused {
            crate::local::Refused::TooMany(n) => {
                self.refused("capacity");
                RelayError::TooManySessions(n)
            }
            crate::local::Refused::OverQuota(quota) => {
                self.refused("live");
                RelayError::OverQuota { quota, id }
            }
        }
    }
}

/// Refuses a batch when the protocol version in use has none (2025-06-18 and later): the
/// version the session was opened with or the one the request names
/// (`MCP-Protocol-Version`), whichever is later — a client cannot talk its way back to
/// batches with a header.
pub(crate) fn check_batch(batch: bool, headers: &HeaderMap, state: &SessionState) -> Result<(), RelayError> {
    if !batch {
        return Ok(());
    }
    let header = headers.get(MCP_PROTOCOL_VERSION).map(|v| v.to_str().unwrap_or("?"));
    let init = state.init.as_ref().and_then(|i| i.get("protocolVersion")).and_then(serde_json::Value::as_str);
    let newest = [header, state.version.as_deref(), init].into_iter().flatten().max();
    match newest {
        Some(v) if v >= NO_BATCHES_FROM || v.is_empty() => {
            Err(RelayError::BatchNotAllowed(crate::metrics::cut(v).to_string()))
        }
        _ => Ok(()),
    }
}

/// A request body's messages, and whether it is an `initialize` (which may not be batched).
pub(crate) fn parse_request(bytes: &Bytes, max_batch: usize) -> Result<(jsonrpc::Body<'_>, bool), RelayError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| RelayError::Parse(jsonrpc::ParseError::Json("body is not UTF-8".into())))?;
    let msgs = jsonrpc::Body::parse_limited(text, max_batch)?;
    let is_init = msgs.messages.iter().any(|m| m.kind == jsonrpc::Kind::Request && m.method() == Some("initialize"));
    if is_init && msgs.batch {
        return Err(RelayError::InitializeInBatch);
    }
    Ok((msgs, is_init))
}

/// The tool name of a `tools/call` (`params.name`), read from raw params.
pub(crate) fn tool_name(method: Option<&str>, params: Option<&RawValue>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: Option<String>,
    }
    if method != Some("tools/call") {
        return None;
    }
    serde_json::from_str::<Named>(params?.get()).ok()?.name
}

/// The target a prefixed name belongs to (`<target>_<tool>`), when the backend has several.
pub(crate) fn target_of<'a>(backend: &'a Backend, name: Option<&str>) -> Option<&'a str> {
    match backend.targets.as_slice() {
        [one] => Some(one.name.as_str()),
        many => {
            let name = name?;
            many.iter()
                .find(|t| name.strip_prefix(t.name.as_str()).is_some_and(|rest| rest.starts_with('_')))
                .map(|t| t.name.as_str())
        }
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

/// DNS rebinding protection: the request must name a loopback host, and come from a loopback
/// origin if it names one. The host is in the `Host` header, or in the URI's authority: HTTP/2
/// requests carry it as `:authority` and usually have no `Host`. Every host the request names
/// must be loopback, and it must name one.
fn local_host_and_origin(headers: &HeaderMap, uri: &http::Uri) -> bool {
    let header = headers.get(HOST).map(|h| h.to_str().is_ok_and(is_loopback_authority));
    let authority = uri.authority().map(|a| is_loopback_authority(a.as_str()));
    let host_ok = match (header, authority) {
        (None, None) => false,
        (header, authority) => header.unwrap_or(true) && authority.unwrap_or(true),
    };
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
    if let RelayError::OverQuota { id, .. } = err {
        // Refused before anything went upstream: the status says so (429), and the body
        // answers the request it refused.
        let id = id.as_deref().and_then(|i| RawValue::from_string(i.to_string()).ok());
        let mut r = json_response(err.status(), jsonrpc::error_response(id.as_deref(), &rpc));
        add_retry_after(&mut r, err);
        return r;
    }
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
    add_retry_after(&mut r, err);
    if matches!(err, RelayError::MethodNotAllowed) {
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
    }
    r
}

fn add_retry_after(r: &mut Response<Body>, err: &RelayError) {
    if let Some(secs) = err.retry_after() {
        r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FailureKind;

    #[test]
    fn batches_depend_on_the_protocol_version() {
        let mut state = SessionState::default_for("b");
        let mut h = HeaderMap::new();
        assert!(check_batch(true, &h, &state).is_ok(), "no version: 2025-03-26 is assumed");
        state.version = Some("2025-06-18".into());
        assert!(check_batch(false, &h, &state).is_ok());
        assert!(matches!(check_batch(true, &h, &state), Err(RelayError::BatchNotAllowed(_))));
        h.insert(MCP_PROTOCOL_VERSION, HeaderValue::from_static("2025-03-26"));
        assert!(check_batch(true, &h, &state).is_err(), "a header cannot bring batches back");
        h.insert(MCP_PROTOCOL_VERSION, HeaderValue::from_static(""));
        assert!(check_batch(true, &h, &SessionState::default_for("b")).is_err(), "nor an empty one");
        h.insert(MCP_PROTOCOL_VERSION, HeaderValue::from_static("2025-03-26"));
        assert!(check_batch(true, &h, &SessionState::default_for("b")).is_ok());
        h.insert(MCP_PROTOCOL_VERSION, HeaderValue::from_static("2025-11-25"));
        assert!(check_batch(true, &h, &SessionState::default_for("b")).is_err());
        let state = SessionState {
            init: Some(serde_json::json!({"protocolVersion": "2025-06-18"})),
            ..SessionState::default_for("b")
        };
        assert!(check_batch(true, &HeaderMap::new(), &state).is_err(), "the multiplexer's stored params");
    }

    #[test]
    fn quota_refusals_are_429_with_retry_after_and_the_request_id() {
        let err = RelayError::OverQuota {
            quota: crate::quota::OverQuota { what: "too many", retry_after: 3 },
            id: Some("7".into()),
        };
        let resp = error_response(&err, &[]);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "3");
    }

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
        let path: http::Uri = "/mcp".parse().unwrap();
        let mut h = HeaderMap::new();
        assert!(!local_host_and_origin(&h, &path), "no host at all");
        h.insert(HOST, HeaderValue::from_static("localhost:3000"));
        assert!(local_host_and_origin(&h, &path));
        h.insert(ORIGIN, HeaderValue::from_static("http://evil.example.com"));
        assert!(!local_host_and_origin(&h, &path));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:3000"));
        assert!(local_host_and_origin(&h, &path));
        h.insert(HOST, HeaderValue::from_static("evil.example.com"));
        assert!(!local_host_and_origin(&h, &path));
    }

    #[test]
    fn dns_rebinding_reads_the_http2_authority() {
        let local: http::Uri = "http://127.0.0.1:3000/mcp".parse().unwrap();
        let evil: http::Uri = "http://evil.example.com/mcp".parse().unwrap();
        let mut h = HeaderMap::new();
        assert!(local_host_and_origin(&h, &local));
        assert!(!local_host_and_origin(&h, &evil));
        h.insert(HOST, HeaderValue::from_static("localhost:3000"));
        assert!(!local_host_and_origin(&h, &evil), "every named host must be loopback");
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
