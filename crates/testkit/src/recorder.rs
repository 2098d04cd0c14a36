//! An upstream that records exactly what reaches it (method, headers, body bytes) and answers
//! every request with a small JSON result, for transparency and header tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use agw_mcp::body;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::serve::{self, Server};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The path and query as received.
    pub path: String,
}

pub struct Recorder {
    pub server: Server,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub async fn start() -> std::io::Result<Recorder> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("loopback");
        let server = serve::app(addr, move |req| {
            let log = log.clone();
            async move {
                let (parts, b) = req.into_parts();
                let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                log.lock().unwrap().push(Seen {
                    method: parts.method.clone(),
                    headers: parts.headers,
                    body: bytes.clone(),
                    path: parts.uri.path_and_query().map_or_else(String::new, |p| p.to_string()),
                });
                answer(&parts.method, &bytes)
            }
        })
        .await?;
        Ok(Recorder { server, seen })
    }

    pub fn url(&self) -> String {
        self.server.url("/mcp")
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the recorder saw a request")
    }
}

fn answer(method: &Method, bytes: &[u8]) -> Response<body::Body> {
    if method != Method::POST {
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return r;
    }
    let msg: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let one = |m: &Value| -> Option<Value> {
        let id = m.get("id")?;
        m.get("method")?;
        let result = if m["method"] == "initialize" {
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "recorder", "version": "1"}})
        } else {
            json!({"echoedMethod": m["method"], "echoedParams": m.get("params").cloned().unwrap_or(Value::Null)})
        };
        Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    };
    let reply = match &msg {
        Value::Array(items) => {
            let out: Vec<Value> = items.iter().filter_map(one).collect();
            if out.is_empty() { None } else { Some(Value::Array(out)) }
        }
        m => one(m),
    };
    match reply {
        None => {
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::ACCEPTED;
            r
        }
        Some(v) => {
            let mut r = Response::new(body::full(v.to_string()));
            r.headers_mut().insert("content-type", "application/json".parse().unwrap());
            r.headers_mut().insert("mcp-session-id", "recorded-session".parse().unwrap());
            r
        }
    }
}
