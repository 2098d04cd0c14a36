//! One `tools/call` of an OpenAPI operation: the arguments (`path`, `query`, `header`, `body`,
//! as the tool's input schema groups them) become an HTTP request to the service, and its answer
//! becomes the tool result: a 2xx JSON answer as structured content and text, any other answer
//! as text; a non-2xx status or a failed call is `isError: true` with the status and the start of
//! the body. Only parameters the spec declares are sent; the target's credentials and the
//! route's per-request ones ride on every request.

use std::time::Duration;

use agw_http::HttpClient;
use agw_http::body::{self, read_limited};
use agw_mcp::upstream::HttpTarget;
use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Uri};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::spec::{BodyKind, In, Operation};

/// RFC 3986 unreserved characters stay; everything else in a path parameter is escaped (a
/// value cannot add path segments).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How much of an error body the result quotes.
const EXCERPT: usize = 2048;

/// Client headers that are about the MCP exchange, not the service.
const NOT_FORWARDED: [&str; 5] = ["mcp-protocol-version", "mcp-session-id", "last-event-id", "accept", "content-type"];

#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest answer read from the service.
    pub max_response: usize,
    /// Time for one call.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_response: 4 << 20, timeout: Duration::from_secs(60) }
    }
}

/// A tool result with one text content.
fn text_result(text: String, is_error: bool) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error})
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The request for `op` with `args`; an error is a message for the agent.
pub fn request(
    service: &HttpTarget,
    base_path: &str,
    op: &Operation,
    args: &Value,
    forwarded: &HeaderMap,
) -> Result<Request<body::Body>, String> {
    let empty = Map::new();
    let args = match args {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err("the arguments must be an object".into()),
    };
    let group = |key: &str| args.get(key).and_then(Value::as_object);
    // Path: each `{name}` replaced by its escaped value.
    let mut path = String::with_capacity(base_path.len() + op.path.len() + 1);
    path.push_str(base_path);
    let mut rest = op.path.as_str();
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|c| open + c).ok_or("a path template without `}`")?;
        path.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let value = group("path").and_then(|p| p.get(name)).and_then(scalar);
        let value = value.ok_or_else(|| format!("missing path parameter `{name}`"))?;
        if value.is_empty() {
            return Err(format!("path parameter `{name}` is empty"));
        }
        path.extend(utf8_percent_encode(&value, SEGMENT));
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    // Whatever the spec said, the path starts at the root (it follows the host).
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    // Query: the target's own (credentials), then the declared parameters given.
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(q) = service.url.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            query.append_pair(&k, &v);
        }
    }
    for (name, value) in group("query").into_iter().flatten() {
        if !op.params.contains_key(&(In::Query, name.clone())) {
            continue;
        }
        match value {
            Value::Array(items) => {
                for item in items.iter().filter_map(scalar) {
                    query.append_pair(name, &item);
                }
            }
            v => {
                if let Some(s) = scalar(v) {
                    query.append_pair(name, &s);
                }
            }
        }
    }
    let query = query.finish();
    let authority = service.url.authority().ok_or("the service has no host")?;
    let scheme = service.url.scheme_str().unwrap_or("http");
    let pq = if query.is_empty() { path } else { format!("{path}?{query}") };
    let uri: Uri =
        format!("{scheme}://{authority}{pq}").parse().map_err(|_| format!("`{pq}` does not make a valid URL"))?;

    let mut headers = HeaderMap::new();
    for (name, value) in forwarded {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(t) = &service.headers {
        t.apply(&mut headers);
    }
    for (name, value) in group("header").into_iter().flatten() {
        if !op.params.contains_key(&(In::Header, name.clone())) {
            continue;
        }
        let (Ok(n), Some(v)) = (HeaderName::try_from(name.as_str()), scalar(value)) else { continue };
        let protected = [header::HOST, header::CONTENT_LENGTH, header::CONTENT_TYPE, header::TRANSFER_ENCODING]
            .contains(&n)
            || headers.contains_key(&n);
        if protected {
            continue;
        }
        let v = HeaderValue::from_str(&v).map_err(|_| format!("header parameter `{name}` is not a valid value"))?;
        headers.insert(n, v);
    }
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json, */*;q=0.5"));
    let body = match (op.body, args.get("body")) {
        (Some(BodyKind::Json), Some(b)) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(serde_json::to_vec(b).expect("JSON serialises"))
        }
        (Some(BodyKind::Binary), Some(b)) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            let text = b.as_str().ok_or("`body` must be a base64 string")?;
            Bytes::from(
                base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| "`body` is not valid base64")?,
            )
        }
        _ => Bytes::new(),
    };
    let mut req = Request::builder()
        .method(op.method.clone())
        .uri(uri)
        .body(if body.is_empty() { body::empty() } else { body::full(body) })
        .map_err(|e| e.to_string())?;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Calls `op` and returns the tool result.
pub async fn call(
    client: &HttpClient,
    service: &HttpTarget,
    base_path: &str,
    op: &Operation,
    args: &Value,
    forwarded: &HeaderMap,
    limits: &Limits,
) -> Value {
    let req = match request(service, base_path, op, args, forwarded) {
        Ok(r) => r,
        Err(e) => return text_result(format!("invalid arguments for `{}`: {e}", op.name), true),
    };
    let run = async {
        let resp = client.send(req).await.map_err(|e| format!("the service could not be reached: {e}"))?;
        let status = resp.status();
        let json_type =
            resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("json"));
        let bytes = read_limited(resp.into_body(), limits.max_response).await.map_err(|e| match e {
            body::ReadError::TooLarge { limit } => format!("the answer is over {limit} bytes"),
            body::ReadError::Io(e) => format!("the answer could not be read: {e}"),
        })?;
        Ok::<_, String>((status, json_type, bytes))
    };
    let (status, json_type, bytes) = match tokio::time::timeout(limits.timeout, run).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return text_result(e, true),
        Err(_) => return text_result(format!("no answer within {}s", limits.timeout.as_secs()), true),
    };
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        let excerpt: String = text.chars().take(EXCERPT).collect();
        let more = if text.chars().count() > EXCERPT { "…" } else { "" };
        return text_result(format!("HTTP {status}: {excerpt}{more}"), true);
    }
    if bytes.is_empty() {
        return text_result(format!("HTTP {status} (no content)"), false);
    }
    let parsed = if json_type || text.trim_start().starts_with(['{', '[']) {
        serde_json::from_slice::<Value>(&bytes).ok()
    } else {
        None
    };
    match parsed {
        Some(v) => {
            let structured = match v {
                Value::Object(_) => v,
                other => json!({"result": other}),
            };
            json!({"content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": false})
        }
        None => text_result(text.into_owned(), false),
    }
}
