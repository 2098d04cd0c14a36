//! The one HTTP client of the gateway's upstream calls: pooled HTTP/1.1 (and HTTP/2 with
//! `backendTLS` ALPN), plain HTTP and HTTPS verified against the system's roots or a
//! `backendTLS` block's settings, a pool per worker thread, connections without delayed ACKs
//! ([`crate::quickack`]).

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;
use crate::quickack::QuickAckConnector;
use crate::tls;

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

/// A whole answer read by [`HttpClient::fetch`].
#[derive(Debug)]
pub struct Fetched {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

/// Why [`HttpClient::fetch`] has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Send(#[from] SendError),
    #[error("the answer is over {0} bytes")]
    TooLarge(usize),
    #[error("the answer could not be read: {0}")]
    Read(String),
    #[error("no answer within {}s", .0.as_secs())]
    Timeout(Duration),
}

impl HttpClient {
    /// One call to a service (an identity provider, a token endpoint, a spec URL): sent and
    /// its answer read whole, at most `limit` bytes, all within `timeout`.
    pub async fn fetch(&self, req: Request<Body>, limit: usize, timeout: Duration) -> Result<Fetched, FetchError> {
        let run = async {
            let resp = self.send(req).await?;
            let (parts, body) = resp.into_parts();
            let body = crate::body::read_limited(body, limit).await.map_err(|e| match e {
                crate::body::ReadError::TooLarge { limit } => FetchError::TooLarge(limit),
                crate::body::ReadError::Io(e) => FetchError::Read(e.to_string()),
            })?;
            Ok(Fetched { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(timeout, run).await.unwrap_or(Err(FetchError::Timeout(timeout)))
    }
}
