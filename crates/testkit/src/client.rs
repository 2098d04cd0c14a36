//! A small MCP client for tests: speaks Streamable HTTP, reads JSON and SSE answers, answers
//! server→client requests (sampling, elicitation, roots) through a callback, and keeps the raw
//! HTTP details so tests can assert on them.

use std::sync::atomic::{AtomicU64, Ordering};

use agw_mcp::sse::Decoder;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The protocol version the test client asks for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// Everything an HTTP exchange produced.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// JSON-RPC messages received, in order (one for a JSON answer, any number for SSE).
    pub messages: Vec<Value>,
    /// The raw body (for SSE: every event's bytes).
    pub body: Bytes,
}

impl Exchange {
    /// The response to request `id`, if it arrived.
    pub fn response(&self, id: &Value) -> Option<&Value> {
        self.messages
            .iter()
            .find(|m| m.get("id") == Some(id) && (m.get("result").is_some() || m.get("error").is_some()))
    }

    /// Notifications received (messages with a method and no id).
    pub fn notifications(&self) -> Vec<&Value> {
        self.messages.iter().filter(|m| m.get("method").is_some() && m.get("id").is_none()).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A handler for server→client requests: given the request, returns the `result` to send back.
pub type ServerRequestHandler<'a> = &'a mut (dyn FnMut(&Value) -> Value + Send);

/// Plain HTTP, or HTTPS with the roots (and client certificate) a test chose.
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

fn connector(tls: Option<rustls::ClientConfig>) -> Connector {
    let mut config = tls.unwrap_or_else(|| crate::tls::client_config(&[], None));
    // The connector sets ALPN itself (HTTP/1.1 here).
    config.alpn_protocols.clear();
    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1().build()
}

pub struct McpClient {
    http: Client<Connector, Full<Bytes>>,
    pub url: String,
    pub session: Option<String>,
    pub protocol: Option<String>,
    pub headers: HeaderMap,
    next_id: AtomicU64,
}

impl McpClient {
    pub fn new(url: impl Into<String>) -> McpClient {
        McpClient::with_tls(url, None)
    }

    /// A client for `https://` URLs, trusting what `tls` says (see [`crate::tls::client_config`]).
    pub fn with_tls(url: impl Into<String>, tls: Option<rustls::ClientConfig>) -> McpClient {
        McpClient {
            http: Client::builder(TokioExecutor::new()).build(connector(tls)),
            url: url.into(),
            session: None,
            protocol: None,
            headers: HeaderMap::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// A second client on the same session (e.g. to hold the GET stream open).
    pub fn same_session(&self) -> McpClient {
        McpClient {
            session: self.session.clone(),
            protocol: self.protocol.clone(),
            headers: self.headers.clone(),
            http: self.http.clone(),
            ..McpClient::new(self.url.clone())
        }
    }

    /// The same client on a given session (e.g. one made through another gateway).
    pub fn with_session(mut self, session: &str) -> McpClient {
        self.session = Some(session.to_string());
        self.protocol = Some(PROTOCOL_VERSION.to_string());
        self
    }

    /// Adds a header to every request (e.g. `Authorization`).
    pub fn with_header(mut self, name: &str, value: &str) -> McpClient {
        self.headers.insert(HeaderName::try_from(name).unwrap(), HeaderValue::try_from(value).unwrap());
        self
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn request_builder(&self, method: Method) -> http::request::Builder {
        let mut b = Request::builder().method(method).uri(&self.url);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        if let Some(s) = &self.session {
            b = b.header("mcp-session-id", s);
        }
        if let Some(p) = &self.protocol {
            b = b.header("mcp-protocol-version", p);
        }
        b
    }

    /// POSTs raw bytes and reads the whole answer, answering server requests with `handler`.
    pub async fn post_bytes(
        &self,
        body: impl Into<Bytes>,
        handler: Option<ServerRequestHandler<'_>>,
    ) -> anyhow::Result<Exchange> {
        let req = self
            .request_builder(Method::POST)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(body.into()))?;
        self.exchange(req, handler).await
    }

    /// POSTs one JSON value.
    pub async fn post(&self, message: &Value) -> anyhow::Result<Exchange> {
        self.post_bytes(serde_json::to_vec(message)?, None).await
    }

    /// Opens the GET stream and reads events until `stop` says enough (or the stream ends).
    pub async fn get_stream(
        &self,
        extra: &[(&str, &str)],
        mut stop: impl FnMut(&[Value]) -> bool,
    ) -> anyhow::Result<Exchange> {
        let mut b = self.request_builder(Method::GET).header("accept", "text/event-stream");
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let resp = self.http.request(b.body(Full::new(Bytes::new()))?).await?;
        let (parts, mut body) = resp.into_parts();
        let mut decoder = Decoder::new(64 << 20);
        let mut messages = Vec::new();
        let mut raw = Vec::new();
        while !stop(&messages) {
            let Some(frame) = body.frame().await else {
                break;
            };
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            decoder.feed(&data);
            while let Some(ev) = decoder.next_event()? {
                raw.extend_from_slice(&ev.raw);
                if ev.is_message() {
                    messages.push(serde_json::from_str(ev.data())?);
                }
            }
        }
        Ok(Exchange { status: parts.status, headers: parts.headers, messages, body: raw.into() })
    }

    /// Sends DELETE for the session.
    pub async fn delete(&self) -> anyhow::Result<Exchange> {
        let req = self.request_builder(Method::DELETE).body(Full::new(Bytes::new()))?;
        self.exchange(req, None).await
    }

    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        mut handler: Option<ServerRequestHandler<'_>>,
    ) -> anyhow::Result<Exchange> {
        let resp = self.http.request(req).await?;
        let (parts, mut body) = resp.into_parts();
        let is_sse = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if !is_sse {
            let bytes = body.collect().await?.to_bytes();
            let messages = match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Array(items)) => items,
                Ok(v) => vec![v],
                Err(_) => Vec::new(),
            };
            return Ok(Exchange { status: parts.status, headers: parts.headers, messages, body: bytes });
        }
        let mut decoder = Decoder::new(64 << 20);
        let mut messages = Vec::new();
        let mut raw = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            decoder.feed(&data);
            while let Some(ev) = decoder.next_event()? {
                raw.extend_from_slice(&ev.raw);
                if !ev.is_message() {
                    continue;
                }
                let msg: Value = serde_json::from_str(ev.data())?;
                if let (Some(h), Some(id), Some(_)) = (handler.as_deref_mut(), msg.get("id"), msg.get("method")) {
                    let reply = json!({"jsonrpc": "2.0", "id": id, "result": h(&msg)});
                    let answered = Box::pin(self.post(&reply)).await?;
                    anyhow::ensure!(
                        answered.status == StatusCode::ACCEPTED,
                        "reply to server request got {}",
                        answered.status
                    );
                }
                messages.push(msg);
            }
        }
        Ok(Exchange { status: parts.status, headers: parts.headers, messages, body: raw.into() })
    }

    /// `initialize` + `notifications/initialized`; keeps the session id. Returns the result.
    pub async fn initialize(&mut self) -> anyhow::Result<Value> {
        self.initialize_version(PROTOCOL_VERSION).await
    }

    /// [`McpClient::initialize`] asking for protocol `version`.
    pub async fn initialize_version(&mut self, version: &str) -> anyhow::Result<Value> {
        let id = self.next_id();
        let ex = self
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
                "protocolVersion": version,
                "capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}},
                "clientInfo": {"name": "agw-testkit", "version": "1.0.0"}
            }}))
            .await?;
        anyhow::ensure!(
            ex.status == StatusCode::OK,
            "initialize: HTTP {} {}",
            ex.status,
            String::from_utf8_lossy(&ex.body)
        );
        let result = ex.response(&json!(id)).and_then(|r| r.get("result")).cloned();
        let result = result.ok_or_else(|| anyhow::anyhow!("initialize: no result in {:?}", ex.messages))?;
        self.session = ex.header("mcp-session-id").map(str::to_string);
        self.protocol = result.get("protocolVersion").and_then(Value::as_str).map(str::to_string);
        let ack = self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
        anyhow::ensure!(ack.status == StatusCode::ACCEPTED, "initialized: HTTP {}", ack.status);
        Ok(result)
    }

    /// Sends a request; returns the whole exchange and the response message.
    pub async fn request_with(
        &self,
        method: &str,
        params: Value,
        handler: Option<ServerRequestHandler<'_>>,
    ) -> anyhow::Result<(Exchange, Value)> {
        let id = self.next_id();
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let ex = self.post_bytes(serde_json::to_vec(&msg)?, handler).await?;
        let resp = ex.response(&json!(id)).cloned().ok_or_else(|| {
            anyhow::anyhow!("{method}: no response (HTTP {}): {}", ex.status, String::from_utf8_lossy(&ex.body))
        })?;
        Ok((ex, resp))
    }

    /// Sends a request and returns its `result`, or fails with its `error`.
    pub async fn request(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let (_, resp) = self.request_with(method, params, None).await?;
        match resp.get("result") {
            Some(r) => Ok(r.clone()),
            None => anyhow::bail!("{method}: error {}", resp.get("error").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Names from `tools/list`.
    pub async fn tool_names(&self) -> anyhow::Result<Vec<String>> {
        let result = self.request("tools/list", json!({})).await?;
        Ok(result["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect())
    }

    /// `tools/call`, returning the whole response message (result or error).
    pub async fn call_tool(&self, name: &str, arguments: Value) -> anyhow::Result<Value> {
        Ok(self.request_with("tools/call", json!({"name": name, "arguments": arguments}), None).await?.1)
    }
}

/// The text of the first content item of a `tools/call` response.
pub fn first_text(response: &Value) -> Option<&str> {
    response.get("result")?.get("content")?.get(0)?.get("text")?.as_str()
}

/// One plain HTTP request on loopback (admin, metrics, raw checks): status and body as text.
/// `headers` are added as given (`host` replaces the URL's).
pub async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> anyhow::Result<(u16, String)> {
    https(method, url, headers, body, None).await
}

/// [`http`] for `https://` URLs too, trusting what `tls` says.
pub async fn https(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    tls: Option<rustls::ClientConfig>,
) -> anyhow::Result<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector(tls));
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::new(Bytes::from(body.to_string())))?).await?;
    let status = resp.status().as_u16();
    Ok((status, String::from_utf8_lossy(&resp.into_body().collect().await?.to_bytes()).into_owned()))
}
