//! The JSON API behind the admin page: routes, live figures, and the policy playground (an MCP
//! client that talks to this gateway's own routes, and `policy explain`).
//!
//! The playground's MCP calls go out from the admin server to `127.0.0.1:<a port of this
//! gateway>`, never anywhere else, so the page works without CORS on the routes and cannot be
//! turned into a proxy to other hosts. Tokens pasted into the page are used for those calls
//! only: never stored, never logged.

use std::time::Duration;

use agw_http::body::{self, Body, read_limited};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::explain::{self, Case};
use crate::resolve::Backend;

/// Largest request body the API reads, and largest MCP answer it relays to the page.
const MAX_BODY: usize = 4 << 20;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/ui/api/routes") => json_response(StatusCode::OK, routes(shared)),
        (Method::GET, "/ui/api/stats") => json_response(StatusCode::OK, stats(shared)),
        (Method::POST, "/ui/api/mcp" | "/ui/api/explain") => {
            if !super::same_origin(&req) {
                return problem(StatusCode::FORBIDDEN, "cross-origin requests are refused");
            }
            let bytes = match read_limited(req.into_body(), MAX_BODY).await {
                Ok(b) => b,
                Err(_) => return problem(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            };
            if path == "/ui/api/mcp" { mcp(shared, &bytes).await } else { explain(shared, &bytes) }
        }
        _ => problem(StatusCode::NOT_FOUND, "no such API endpoint"),
    }
}

fn json_response(status: StatusCode, v: Value) -> Response<Body> {
    let mut r = Response::new(body::full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn problem(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, json!({ "error": message }))
}

/// Every route, with what the playground needs to reach MCP ones.
fn routes(shared: &Shared) -> Value {
    let runtime = shared.runtime.load();
    let ports = shared.ports.lock().map(|p| p.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for bind in &runtime.binds {
        for listener in &bind.listeners {
            for route in listener.routes() {
                let (kind, targets) = match &route.backend {
                    Backend::Mcp(m) => ("mcp", m.targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>()),
                    Backend::Host { authority, .. } => ("host", vec![authority.to_string()]),
                    Backend::Split(split) => (
                        "host",
                        split
                            .backends()
                            .map(|(w, b)| match b {
                                Backend::Host { authority, .. } => format!("{authority} (weight {w})"),
                                _ => String::new(),
                            })
                            .collect(),
                    ),
                    Backend::None => ("none", Vec::new()),
                };
                out.push(json!({
                    "port": bind.port,
                    "listenPort": ports.get(&bind.port).copied().unwrap_or(bind.port),
                    "listener": listener.name,
                    "route": route.name,
                    "path": route.matches.first().map_or_else(|| "/mcp".to_string(), |m| m.example_path()),
                    "backend": kind,
                    "targets": targets,
                    "jwtAuth": route.policies.authn.iter().any(|a| matches!(a.kind, crate::auth::AuthnKind::Jwt { .. })),
                    "rules": route.policies.mcp_authorization.as_ref().map(|r| r.iter().map(|r| r.source.clone()).collect::<Vec<_>>()),
                }));
            }
        }
    }
    Value::Array(out)
}

/// Totals from the metrics, for the live figures.
fn stats(shared: &Shared) -> Value {
    let metrics = shared.relay.metrics();
    metrics.local_sessions.set(i64::try_from(shared.relay.locals().len()).unwrap_or(i64::MAX));
    let text = metrics.encode();
    let sum = |name: &str, filter: &str| -> f64 {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    json!({
        "requests": sum("agentgateway_requests_total", ""),
        "mcpRequests": sum("agentgateway_mcp_requests_total", ""),
        "toolCalls": sum("agentgateway_mcp_requests_total", "method=\"tools/call\""),
        "allowed": sum("agentgateway_authorization_decisions_total", "result=\"allow\""),
        "denied": sum("agentgateway_authorization_decisions_total", "result=\"deny\""),
        "authFailures": sum("agentgateway_authentication_failures_total", ""),
        "sessionsStarted": sum("agentgateway_mcp_sessions_started_total", ""),
        "localSessions": sum("agentgateway_mcp_local_sessions", ""),
        "stdioChildren": sum("agentgateway_stdio_children", ""),
        "reloads": sum("agentgateway_config_reloads_total", "result=\"success\""),
        "failedReloads": sum("agentgateway_config_reloads_total", "result=\"failure\""),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct McpCall {
    /// The configured port of the route's bind.
    port: u16,
    path: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    session: Option<String>,
    message: Value,
}

/// One MCP message to a route of this gateway; the answer's messages (JSON or SSE) come back.
async fn mcp(shared: &Shared, bytes: &Bytes) -> Response<Body> {
    let call: McpCall = match serde_json::from_slice(bytes) {
        Ok(c) => c,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &format!("bad request: {e}")),
    };
    let Some(port) = shared.ports.lock().ok().and_then(|p| p.get(&call.port).copied()) else {
        return problem(StatusCode::BAD_REQUEST, "not a port of this gateway");
    };
    if !call.path.starts_with('/') {
        return problem(StatusCode::BAD_REQUEST, "the path must start with /");
    }
    let Ok(uri) = format!("http://127.0.0.1:{port}{}", call.path).parse::<Uri>() else {
        return problem(StatusCode::BAD_REQUEST, "not a valid path");
    };
    let mut req = Request::new(body::full(call.message.to_string()));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
    if let Some(t) = call.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        match HeaderValue::from_str(&format!("Bearer {t}")) {
            Ok(v) => {
                headers.insert(AUTHORIZATION, v);
            }
            Err(_) => return problem(StatusCode::BAD_REQUEST, "the token has characters a header cannot hold"),
        }
    }
    if let Some(s) = &call.session {
        match HeaderValue::from_str(s) {
            Ok(v) => {
                headers.insert("mcp-session-id", v);
                headers.insert("mcp-protocol-version", HeaderValue::from_static("2025-06-18"));
            }
            Err(_) => return problem(StatusCode::BAD_REQUEST, "bad session id"),
        }
    }
    let sent = tokio::time::timeout(CALL_TIMEOUT, async {
        let resp = shared.client.send(req).await.map_err(|e| format!("the route did not answer: {e}"))?;
        let status = resp.status();
        let session = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let www = resp.headers().get(http::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = read_limited(resp.into_body(), MAX_BODY)
            .await
            .map_err(|_| "the answer is too large or broke off".to_string())?;
        Ok::<_, String>((status, session, sse, www, bytes))
    })
    .await;
    let (status, session, sse, www, bytes) = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return problem(StatusCode::BAD_GATEWAY, &e),
        Err(_) => return problem(StatusCode::GATEWAY_TIMEOUT, "no answer within 30 s"),
    };
    let text = String::from_utf8_lossy(&bytes);
    let messages: Vec<Value> = if sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    } else {
        serde_json::from_str::<Value>(&text).map(|v| vec![v]).unwrap_or_default()
    };
    json_response(
        StatusCode::OK,
        json!({
            "status": status.as_u16(),
            "session": session,
            "messages": messages,
            "wwwAuthenticate": www,
            "body": if messages.is_empty() { Value::String(text.chars().take(2000).collect()) } else { Value::Null },
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExplainRequest {
    route: String,
    #[serde(default)]
    token: Option<String>,
    tool: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// `policy explain` for one tool, with the pasted token.
fn explain(shared: &Shared, bytes: &Bytes) -> Response<Body> {
    let req: ExplainRequest = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &format!("bad request: {e}")),
    };
    let case = Case {
        route: Some(req.route),
        token_text: req.token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
        tool: Some(req.tool),
        arguments: req.arguments,
        ..Case::default()
    };
    let runtime = shared.runtime.load();
    match explain::explain(&runtime, &case, std::path::Path::new(".")) {
        Ok(x) => json_response(StatusCode::OK, json!({ "allowed": x.allowed, "text": x.render() })),
        Err(e) => problem(StatusCode::BAD_REQUEST, &e),
    }
}
