//! `agentgateway pin`: the current tool definitions of live MCP targets, as a pin file.
//!
//! Each target is asked through the gateway's own relay, in process, as a one-target backend:
//! every transport (Streamable HTTP, legacy SSE, stdio) and every target policy the config
//! gives it (`backendTLS`, `backendAuth`, header modifiers) apply as they do when serving.
//! The backend's own tool policy does not: a pin file pins what the upstream lists.

use std::sync::Arc;

pub use agw_mcp::Target;
use agw_mcp::guard::pins::{PinFile, VERSION};
use agw_mcp::upstream::MCP_SESSION_ID;
use agw_mcp::{Backend as McpBackend, CallOptions, HttpTarget, Relay, Upstream};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::resolve::{Backend, Runtime};

/// Pages of `tools/list` read from one target at most.
const MAX_PAGES: usize = 100;
/// Largest answer read from the relay.
const MAX_ANSWER: usize = 32 << 20;

/// Every MCP target of a config (from every route), by name; a name that two backends use is
/// taken once (the first).
pub fn config_targets(runtime: &Runtime) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let routes = runtime.binds.iter().flat_map(|b| &b.listeners).flat_map(|l| l.routes());
    for route in routes {
        let Backend::Mcp(backend) = &route.backend else { continue };
        for t in &backend.targets {
            if !out.iter().any(|o| o.name == t.name) {
                out.push(t.clone());
            }
        }
    }
    out
}

/// A Streamable HTTP target at `url`.
pub fn url_target(name: &str, url: &str) -> Result<Target, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(format!("`{url}` is not an absolute http(s) URL"));
    }
    Ok(Target { name: name.to_string(), upstream: Upstream::Http(HttpTarget::new(uri)) })
}

/// Lists every target's tools (all pages) and pins them.
pub async fn pin(targets: &[Target]) -> Result<PinFile, String> {
    let relay = Relay::default();
    let mut file = PinFile { version: VERSION, ..Default::default() };
    for target in targets {
        let tools = list_tools(&relay, target).await.map_err(|e| format!("target `{}`: {e}", target.name))?;
        file.add_tools(&target.name, &tools);
    }
    Ok(file)
}

async fn list_tools(relay: &Relay, target: &Target) -> Result<Vec<Value>, String> {
    let backend = Arc::new(McpBackend {
        key: format!("pin/{}", target.name),
        targets: vec![target.clone()],
        prefix_mode: agw_mcp::mux::naming::PrefixMode::Never,
        ..Default::default()
    });
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "agentgateway-pin", "version": env!("CARGO_PKG_VERSION")}
    }});
    let (answer, session) = call(relay, &backend, None, &init).await?;
    if answer.get("result").is_none() {
        return Err(format!("initialize failed: {}", answer.get("error").unwrap_or(&answer)));
    }
    let session = session.ok_or("the gateway gave no session id")?;
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    send(relay, &backend, Some(&session), Method::POST, Some(&done)).await?;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 1..=MAX_PAGES {
        let mut req = json!({"jsonrpc": "2.0", "id": page, "method": "tools/list", "params": {}});
        if let Some(c) = &cursor {
            req["params"]["cursor"] = Value::String(c.clone());
        }
        let (answer, _) = call(relay, &backend, Some(&session), &req).await?;
        let Some(result) = answer.get("result") else {
            return Err(format!("tools/list failed: {}", answer.get("error").unwrap_or(&answer)));
        };
        tools.extend(result.get("tools").and_then(Value::as_array).cloned().unwrap_or_default());
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
            _ => break,
        }
    }
    // Ends the upstream session (and a stdio child); a failure here changes nothing pinned.
    let _ = send(relay, &backend, Some(&session), Method::DELETE, None).await;
    Ok(tools)
}

/// Sends one request and returns its answer (from JSON or from an SSE stream).
async fn call(
    relay: &Relay,
    backend: &Arc<McpBackend>,
    session: Option<&str>,
    msg: &Value,
) -> Result<(Value, Option<String>), String> {
    let (body, session) = send(relay, backend, session, Method::POST, Some(msg)).await?;
    let id = &msg["id"];
    let answer = messages(&body)?
        .into_iter()
        .find(|m| m.get("id") == Some(id) && m.get("method").is_none())
        .ok_or_else(|| format!("no answer to {}", msg["method"]))?;
    Ok((answer, session))
}

async fn send(
    relay: &Relay,
    backend: &Arc<McpBackend>,
    session: Option<&str>,
    method: Method,
    msg: Option<&Value>,
) -> Result<(Bytes, Option<String>), String> {
    let body = msg.map(|m| Bytes::from(m.to_string())).unwrap_or_default();
    let mut req = Request::builder()
        .method(method)
        .uri("/mcp")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream");
    if let Some(s) = session {
        req = req.header(MCP_SESSION_ID, s);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = relay.serve(backend.clone(), req, CallOptions::default()).await;
    let status = resp.status();
    let session = resp.headers().get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
    let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
    let bytes = limited.collect().await.map_err(|e| format!("reading the answer: {e}"))?.to_bytes();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(512)])));
    }
    Ok((bytes, session))
}

/// The JSON-RPC messages of an answer: a JSON body (one message or a batch) or SSE events.
fn messages(body: &[u8]) -> Result<Vec<Value>, String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(match v {
            Value::Array(items) => items,
            one => vec![one],
        });
    }
    let mut decoder = agw_mcp::sse::Decoder::new(MAX_ANSWER);
    decoder.feed(body);
    decoder.feed(b"\n\n");
    let mut out = Vec::new();
    while let Some(event) = decoder.next_event().map_err(|e| format!("answer too large: {e:?}"))? {
        if event.is_message() {
            out.push(serde_json::from_str(event.data()).map_err(|e| format!("answer is not JSON: {e}"))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_from_json_and_from_sse() {
        let one = messages(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap();
        assert_eq!(one.len(), 1);
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n\nid: 3\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";
        let all = messages(sse).unwrap();
        assert_eq!(all.len(), 2, "the last event needs no blank line");
        assert!(messages(b"data: {\n\n").is_err());
        assert!(url_target("t", "localhost:3000").is_err());
        assert!(url_target("t", "http://localhost:3000/mcp").is_ok());
    }
}
