//! Talking to upstream MCP servers: Streamable HTTP (a request per message, answered as JSON
//! or SSE), and two kinds that hold a connection per session: legacy HTTP+SSE and stdio.

pub mod conn;
pub mod quickack;
pub mod sse;
pub mod stdio;
pub mod tls;

use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::{self, Body};
use quickack::QuickAckConnector;

pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The `Accept` a Streamable HTTP POST must carry.
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const ACCEPT_SSE: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

type Pool = Client<HttpsConnector<QuickAckConnector>, Body>;

/// A pooled HTTP/1.1 client (plain HTTP, and HTTPS verified against the system's root
/// certificates) shared by every upstream of the gateway. Its connections send no delayed ACKs
/// (see [`quickack`]).
///
/// Each thread gets its own connection pool: a connection's task then runs on the thread
/// that uses it, so a request and its upstream call never hand off between threads.
#[derive(Clone, Debug)]
pub struct HttpClient {
    /// Tells this client's pools apart from other clients' in the per-thread table.
    id: u64,
    connector: HttpsConnector<QuickAckConnector>,
}

static NEXT_CLIENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    static POOLS: std::cell::RefCell<std::collections::HashMap<u64, Pool>> = Default::default();
}

impl HttpClient {
    pub fn new(connect_timeout: Duration) -> HttpClient {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = system_roots("HTTPS upstreams");
        let connector = builder.https_or_http().enable_http1().wrap_connector(QuickAckConnector::new(http));
        HttpClient { id: NEXT_CLIENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed), connector }
    }

    /// A client for upstreams with `backendTLS`: every connection uses TLS with these settings
    /// (an `http://` URL too). Reads the files it names.
    pub fn with_tls(options: &tls::TlsOptions) -> Result<HttpClient, tls::TlsError> {
        let built = tls::build(options)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(tls::CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(built.config).https_only();
        let builder = match built.server_name {
            Some(name) => builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name)),
            None => builder,
        };
        let connector = match built.versions {
            tls::Versions::Http1 => builder.enable_http1().wrap_connector(QuickAckConnector::new(http)),
            tls::Versions::Http2 => builder.enable_http2().wrap_connector(QuickAckConnector::new(http)),
            tls::Versions::Both => builder.enable_all_versions().wrap_connector(QuickAckConnector::new(http)),
        };
        Ok(HttpClient { id: NEXT_CLIENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed), connector })
    }

    /// This thread's pool.
    fn pool(&self) -> Pool {
        POOLS.with(|pools| {
            pools
                .borrow_mut()
                .entry(self.id)
                .or_insert_with(|| {
                    Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(90))
                        .pool_max_idle_per_host(64)
                        .build(self.connector.clone())
                })
                .clone()
        })
    }

    /// Sends a request; the error says whether the failure was connecting or later.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, SendError> {
        self.pool().request(req).await.map_err(|e| {
            let detail = error_chain(&e);
            if e.is_connect() { SendError::Connect(detail) } else { SendError::Other(detail) }
        })
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(Duration::from_secs(10))
    }
}

/// A TLS connector builder verifying against the system's root certificates; without any (a
/// bare container), an empty store, so that plain HTTP still works and `https://` fails to
/// verify, with a warning naming `what` will fail.
pub fn system_roots(what: &str) -> hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes> {
    match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no system root certificates: {what} will fail");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )
        }
    }
}

/// Why a request to an upstream failed before a response arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Other(String),
}

/// The innermost causes of an error, joined: hyper's top-level messages alone are vague.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        cur = s.source();
    }
    parts.join(": ")
}

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
