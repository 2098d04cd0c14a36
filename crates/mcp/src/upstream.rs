//! Talking to upstream MCP servers: Streamable HTTP (a request per message, answered as JSON
//! or SSE), and two kinds that hold a connection per session: legacy HTTP+SSE and stdio.

pub mod conn;
pub mod sse;
pub mod stdio;

pub use agw_http::client::{HttpClient, SendError, error_chain, system_roots};
pub use agw_http::{quickack, tls};

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};

use crate::body::{self, Body};

pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The `Accept` a Streamable HTTP POST must carry.
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const ACCEPT_SSE: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// `requestHeaderModifier` / `responseHeaderModifier`, with names and values parsed.
#[derive(Debug, Clone, Default)]
pub struct HeaderChanges {
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderChanges {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.set.is_empty() && self.remove.is_empty()
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// What every request to one target gets, worked out once per config version: the header
/// modifier in effect for it, and its credentials (`backendAuth.key`, `credentials`) as
/// headers. Credential values are marked sensitive, so they never show in debug output.
#[derive(Debug, Clone, Default)]
pub struct TargetHeaders {
    /// Headers the target's own `backendAuth` replaces (the route's passthrough token).
    pub remove: Vec<HeaderName>,
    pub modifier: HeaderChanges,
    pub credentials: Vec<(HeaderName, HeaderValue)>,
    /// A credential made afresh for each request (`backendAuth.jwtSign` on the target).
    pub per_request: Option<Arc<dyn PerRequestHeader>>,
}

/// A header computed for every request to a target (a freshly signed token). `None`: it could
/// not be made; the request goes without it (and the implementation logs why).
pub trait PerRequestHeader: Send + Sync + std::fmt::Debug {
    fn header(&self) -> Option<(HeaderName, HeaderValue)>;
}

impl TargetHeaders {
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        self.modifier.apply(headers);
        for (name, value) in &self.credentials {
            headers.insert(name.clone(), value.clone());
        }
        if let Some((name, value)) = self.per_request.as_ref().and_then(|p| p.header()) {
            headers.insert(name, value);
        }
    }
}

/// A Streamable HTTP (or legacy SSE) upstream.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    pub url: Uri,
    /// Its own client when it has `backendTLS`; otherwise the relay's.
    pub client: Option<HttpClient>,
    /// Header changes and credentials for every request to it.
    pub headers: Option<Arc<TargetHeaders>>,
}

impl HttpTarget {
    pub fn new(url: Uri) -> HttpTarget {
        HttpTarget { url, client: None, headers: None }
    }

    /// The client to reach this target with.
    pub fn client<'a>(&'a self, shared: &'a HttpClient) -> &'a HttpClient {
        self.client.as_ref().unwrap_or(shared)
    }
}

/// A request to an upstream: what the relay decided to send.
#[derive(Debug)]
pub struct Outgoing {
    pub method: Method,
    pub body: Bytes,
    pub session: Option<String>,
    /// Client headers that pass through (protocol version, Last-Event-ID, trace context…).
    pub headers: HeaderMap,
}

impl HttpTarget {
    pub fn request(&self, out: Outgoing) -> Request<Body> {
        let mut builder = Request::builder().method(out.method.clone()).uri(self.url.clone());
        let headers = builder.headers_mut().expect("fresh builder");
        *headers = out.headers;
        if let Some(t) = &self.headers {
            t.apply(headers);
        }
        match out.method {
            Method::POST => {
                headers.insert(ACCEPT, ACCEPT_BOTH);
                headers.insert(CONTENT_TYPE, JSON);
            }
            Method::GET => {
                headers.insert(ACCEPT, ACCEPT_SSE);
            }
            _ => {}
        }
        if let Some(session) = out.session.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.insert(MCP_SESSION_ID, session);
        }
        let body = if out.body.is_empty() { body::empty() } else { body::full(out.body) };
        builder.body(body).expect("request parts are valid")
    }
}

/// How to reach one target.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// MCP Streamable HTTP.
    Http(HttpTarget),
    /// Legacy HTTP+SSE: the URL of the event stream.
    Sse(HttpTarget),
    /// A child process per session.
    Stdio(stdio::StdioTarget),
    /// An MCP server inside the gateway (an OpenAPI service's operations as tools).
    Local(Arc<dyn LocalServer>),
}

impl Upstream {
    /// Whether the gateway holds a connection per session for it.
    pub fn is_stateful(&self) -> bool {
        match self {
            Upstream::Http(_) | Upstream::Local(_) => false,
            Upstream::Sse(_) | Upstream::Stdio(_) => true,
        }
    }
}

/// An MCP server the gateway runs itself: it answers each request message without a session
/// of its own. `headers` are the client headers the relay forwards (trace context) and the
/// route's per-request credentials; the server decides what to pass on.
pub trait LocalServer: Send + Sync + std::fmt::Debug {
    /// The JSON-RPC response to `request` (a message with an `id`).
    fn handle<'a>(
        &'a self,
        request: &'a serde_json::Value,
        headers: &'a HeaderMap,
    ) -> std::pin::Pin<Box<dyn Future<Output = serde_json::Value> + Send + 'a>>;
}

/// A per-session connection to a stateful upstream.
#[derive(Debug, Clone)]
pub enum Conn {
    Stdio(Arc<stdio::StdioConn>),
    Sse(Arc<sse::SseConn>),
}

impl Conn {
    pub fn router(&self) -> &conn::Router {
        match self {
            Conn::Stdio(c) => &c.router,
            Conn::Sse(c) => &c.router,
        }
    }

    pub async fn send(&self, message: Bytes) -> Result<(), conn::ConnError> {
        match self {
            Conn::Stdio(c) => c.send(message).await,
            Conn::Sse(c) => c.send(message).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Conn::Stdio(c) => c.close().await,
            Conn::Sse(c) => c.close().await,
        }
    }
}
