//! Plain HTTP upstreams that record and count what reaches them, and a client that keeps the
//! response headers: for traffic-policy tests that count requests instead of timing them.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agw_mcp::body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::serve::{self, Server};

/// One request as an upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub host: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A loopback upstream that records requests and answers with `status(n)` for its n-th
/// request (from 0), body `name`; with `hold`, it never answers (a slow mirror).
pub struct Upstream {
    server: Server,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(name: &'static str, status: fn(usize) -> u16) -> Upstream {
        Upstream::start_with(name, status, false).await
    }

    pub async fn start_with(name: &'static str, status: fn(usize) -> u16, hold: bool) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let count = Arc::new(AtomicUsize::new(0));
        let server = serve::app("127.0.0.1:0".parse().unwrap(), move |req: Request<hyper::body::Incoming>| {
            let (log, count) = (log.clone(), count.clone());
            async move {
                let (parts, b) = req.into_parts();
                let body = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
                let path = parts.uri.path_and_query().map_or_else(String::new, |p| p.to_string());
                log.lock().unwrap().push(Seen { path, host, headers: parts.headers, body });
                let n = count.fetch_add(1, Ordering::SeqCst);
                if hold {
                    std::future::pending::<()>().await;
                }
                let mut r = Response::new(body::full(name));
                *r.status_mut() = StatusCode::from_u16(status(n)).unwrap();
                r
            }
        })
        .await
        .unwrap();
        Upstream { server, seen }
    }

    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits (bounded) until the upstream has seen `n` requests; returns how many it saw.
    pub async fn wait_for(&self, n: usize) -> usize {
        for _ in 0..500 {
            if self.count() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.count()
    }
}

/// Always 200.
pub fn ok(_: usize) -> u16 {
    200
}

pub type ClientBody = BoxBody<Bytes, Infallible>;

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, ClientBody>,
}

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

impl Http {
    pub fn new() -> Http {
        Http { client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()) }
    }

    pub async fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: ClientBody) -> Answer {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.client.request(req.body(body).unwrap()).await.unwrap();
        let (parts, b) = resp.into_parts();
        let body = String::from_utf8_lossy(&b.collect().await.unwrap().to_bytes()).into_owned();
        Answer { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Answer {
        self.send("GET", url, headers, Full::new(Bytes::new()).boxed()).await
    }

    pub async fn post(&self, url: &str, body: &'static str) -> Answer {
        self.send("POST", url, &[], Full::new(Bytes::from_static(body.as_bytes())).boxed()).await
    }

    /// A POST whose body has no `Content-Length` (sent chunked).
    pub async fn post_chunked(&self, url: &str, body: &'static str) -> Answer {
        let frames = futures_util::stream::iter(vec![Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(
            body.as_bytes(),
        )))]);
        self.send("POST", url, &[], StreamBody::new(frames).boxed()).await
    }
}

/// A bind on a free port with `routes` (YAML list items indented by 4).
pub fn routes(routes: &str) -> String {
    format!("binds:\n- port: 0\n  listeners:\n  - routes:\n{routes}")
}

/// A response header as text (empty when absent).
pub fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Answers 503 to the first two requests, then 200.
pub fn fail_twice(n: usize) -> u16 {
    if n < 2 { 503 } else { 200 }
}

/// Always 503.
pub fn always_503(_: usize) -> u16 {
    503
}
