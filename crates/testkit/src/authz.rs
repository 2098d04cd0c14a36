//! An external authorization service for `extAuthz` tests, speaking both of Envoy's
//! `ext_authz` protocols on one port: gRPC (`envoy.service.auth.v3.Authorization/Check`,
//! told apart by `content-type: application/grpc`) and plain HTTP. It records every check
//! and decides by a fixed policy:
//!
//! - `authorization: Bearer bad` → denied: 401, `www-authenticate: Bearer realm="authz"`,
//!   body `{"denied":"bad token"}`;
//! - an MCP call of the tool `printEnv` → denied: 403, body `tool refused`;
//! - anything else → allowed: the request to the backend gets `x-authz-user: alice`, and the
//!   metadata is `{user: alice, tier: gold}` for `Bearer gold`, else `tier: silver` (gRPC:
//!   `dynamic_metadata`; HTTP: the headers `x-user` and `x-tier`).

use std::collections::HashMap;

use std::sync::Mutex;

use agw_gateway::envoy::Struct;
use agw_gateway::envoy::auth::{
    CHECK, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderValueOption, HttpStatus, OkHttpResponse, RpcStatus,
};
use agw_gateway::grpc;
use agw_mcp::body::{self, Body};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use prost::Message;

use crate::serve;

/// What the service saw of one check.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub grpc: bool,
    pub method: String,
    pub path: String,
    /// Request headers as sent (gRPC: the `headers` map, pseudo-headers included).
    pub headers: HashMap<String, String>,
    /// gRPC `context_extensions`; HTTP: the `x-mcp-*` headers under the same names
    /// (`mcp.method`, `mcp.tool.name`, `mcp.target`, `mcp.tool.arguments`).
    pub context: HashMap<String, String>,
    pub body: String,
}

pub struct AuthzServer(serve::Recording<Seen>);

impl std::ops::Deref for AuthzServer {
    type Target = serve::Recording<Seen>;
    fn deref(&self) -> &serve::Recording<Seen> {
        &self.0
    }
}

impl AuthzServer {
    /// Stops it (a service that is down).
    pub async fn stop(self) {
        self.0.server.stop().await;
    }

    pub async fn start() -> std::io::Result<AuthzServer> {
        serve::Recording::start(|req, sink| async move { answer(req, &sink).await }).await.map(AuthzServer)
    }

    pub fn calls(&self) -> usize {
        self.seen().len()
    }
}

enum Verdict {
    Deny(StatusCode, Vec<(&'static str, &'static str)>, &'static str),
    Allow(&'static str),
}

fn decide(seen: &Seen) -> Verdict {
    let token = seen.headers.get("authorization").map(String::as_str).unwrap_or("");
    if token == "Bearer bad" {
        return Verdict::Deny(
            StatusCode::UNAUTHORIZED,
            vec![("www-authenticate", "Bearer realm=\"authz\""), ("content-type", "application/json")],
            "{\"denied\":\"bad token\"}",
        );
    }
    if seen.context.get("mcp.tool.name").map(String::as_str) == Some("printEnv") {
        return Verdict::Deny(StatusCode::FORBIDDEN, Vec::new(), "tool refused");
    }
    Verdict::Allow(if token == "Bearer gold" { "gold" } else { "silver" })
}

async fn answer(req: Request<Incoming>, sink: &Mutex<Vec<Seen>>) -> Response<Body> {
    let grpc = req.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc { grpc_check(req, sink).await } else { http_check(req, sink).await }
}

async fn grpc_check(req: Request<Incoming>, sink: &Mutex<Vec<Seen>>) -> Response<Body> {
    if req.uri().path() != CHECK {
        return grpc_status(12);
    }
    let Ok(body) = Limited::new(req.into_body(), grpc::MAX_MESSAGE + 5).collect().await else {
        return grpc_status(8);
    };
    let Ok(check) = grpc::unframe(body.to_bytes()).and_then(|m| CheckRequest::decode(m).map_err(|e| e.to_string()))
    else {
        return grpc_status(3);
    };
    let attributes = check.attributes.unwrap_or_default();
    let http = attributes.request.and_then(|r| r.http).unwrap_or_default();
    let seen = Seen {
        grpc: true,
        method: http.method,
        path: http.path,
        headers: http.headers,
        context: attributes.context_extensions,
        body: http.body,
    };
    let verdict = decide(&seen);
    sink.lock().expect("lock").push(seen);
    let response = match verdict {
        Verdict::Deny(status, headers, body) => CheckResponse {
            status: Some(RpcStatus { code: 7, message: String::new() }),
            denied_response: Some(DeniedHttpResponse {
                status: Some(HttpStatus { code: i32::from(status.as_u16()) }),
                headers: headers.iter().map(|(k, v)| HeaderValueOption::set(k, v)).collect(),
                body: body.into(),
            }),
            ok_response: None,
            dynamic_metadata: None,
        },
        Verdict::Allow(tier) => CheckResponse {
            status: Some(RpcStatus::default()),
            denied_response: None,
            ok_response: Some(OkHttpResponse {
                headers: vec![HeaderValueOption::set("x-authz-user", "alice")],
                headers_to_remove: Vec::new(),
                response_headers_to_add: vec![HeaderValueOption::set("x-authz", "grpc")],
            }),
            dynamic_metadata: Struct::from_json(&serde_json::json!({"user": "alice", "tier": tier})),
        },
    };
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> =
        vec![Ok(hyper::body::Frame::data(grpc::frame(&response))), Ok(hyper::body::Frame::trailers(trailers))];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let mut r = Response::new(body.map_err(|e| match e {}).boxed());
    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
    r
}

fn grpc_status(code: u32) -> Response<Body> {
    let mut r = Response::new(body::empty());
    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
    r.headers_mut().insert("grpc-status", http::HeaderValue::from(code));
    r
}

async fn http_check(req: Request<Incoming>, sink: &Mutex<Vec<Seen>>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut seen = Seen {
        grpc: false,
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
        ..Seen::default()
    };
    for (n, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        let key = match n.as_str() {
            "x-mcp-method" => Some("mcp.method"),
            "x-mcp-tool" => Some("mcp.tool.name"),
            "x-mcp-target" => Some("mcp.target"),
            "x-mcp-tool-arguments" => Some("mcp.tool.arguments"),
            _ => None,
        };
        if let Some(k) = key {
            seen.context.insert(k.into(), v.clone());
        }
        seen.headers.insert(n.as_str().into(), v);
    }
    let verdict = decide(&seen);
    sink.lock().expect("lock").push(seen);
    match verdict {
        Verdict::Deny(status, headers, text) => {
            let mut r = Response::new(body::full(text));
            *r.status_mut() = status;
            for (k, v) in headers {
                r.headers_mut().insert(k, http::HeaderValue::from_static(v));
            }
            r
        }
        Verdict::Allow(tier) => {
            let mut r = Response::new(body::full("{\"ok\":true}"));
            let h = r.headers_mut();
            h.insert("x-authz-user", http::HeaderValue::from_static("alice"));
            h.insert("x-user", http::HeaderValue::from_static("alice"));
            h.insert("x-tier", http::HeaderValue::from_static(tier));
            r
        }
    }
}
