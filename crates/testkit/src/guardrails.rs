//! A guardrail service for `mcpGuardrails` tests, speaking agentgateway's `ExtMcp` protocol
//! (gRPC `agentgateway.dev.ext_mcp.ExtMcp/CheckRequest` and `/CheckResponse`). It records
//! every check and decides by a fixed policy:
//!
//! - request phase, a `tools/call` whose arguments hold `FORBIDDEN` → refused
//!   (`PERMISSION_DENIED`, reason `forbidden marker in arguments`); whose `message` is
//!   `please rewrite` → rewritten to `rewritten by the guardrail`; whose `message` is
//!   `garbage` → answered with a rewrite that is not JSON (a protocol violation);
//! - response phase, a `tools/call` result: every `SECRET` in its text becomes `[redacted]`;
//!   a `tools/list` result: tools whose name ends in `printEnv` are removed;
//! - anything else passes;
//! - a `tools/call` let through is tagged: its upstream request gets `x-guardrail: checked`
//!   and loses `user-agent` (`header_mutation`).

use std::sync::Mutex;

use agw_gateway::ext_mcp::{
    AuthorizationError, CHECK_REQUEST, CHECK_RESPONSE, Decision, HeaderMutation, McpHeader, McpRequest,
    McpRequestResult, McpResponse, McpResponseResult, Pass, code,
};
use agw_gateway::grpc;
use agw_mcp::body::{self, Body};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use prost::Message;
use serde_json::{Value, json};

use crate::serve;

/// One check as the service saw it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// `request` or `response`.
    pub phase: &'static str,
    pub method: String,
    pub service_names: Vec<String>,
    /// The params (request) or result (response); `None` when not sent.
    pub payload: Option<Value>,
    /// Headers (request phase), one entry per value.
    pub headers: Vec<(String, String)>,
    /// `metadata_context` as JSON (`null` when not sent).
    pub metadata: Value,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

pub struct GuardrailServer(serve::Recording<Seen>);

impl std::ops::Deref for GuardrailServer {
    type Target = serve::Recording<Seen>;
    fn deref(&self) -> &serve::Recording<Seen> {
        &self.0
    }
}

impl GuardrailServer {
    /// Stops it (a service that is down).
    pub async fn stop(self) {
        self.0.server.stop().await;
    }

    pub async fn start() -> std::io::Result<GuardrailServer> {
        serve::Recording::start(|req, sink| async move { answer(req, &sink).await }).await.map(GuardrailServer)
    }

    /// The checks of one phase and method, in order.
    pub fn checks(&self, phase: &str, method: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.phase == phase && s.method == method).collect()
    }
}

async fn answer(req: Request<Incoming>, sink: &Mutex<Vec<Seen>>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path != CHECK_REQUEST && path != CHECK_RESPONSE {
        return grpc_status(12);
    }
    let Ok(body) = Limited::new(req.into_body(), grpc::MAX_MESSAGE + 5).collect().await else {
        return grpc_status(8);
    };
    let Ok(message) = grpc::unframe(body.to_bytes()) else { return grpc_status(3) };
    if path == CHECK_REQUEST {
        let Ok(r) = McpRequest::decode(message) else { return grpc_status(3) };
        let params = r.mcp_request.as_deref().and_then(|b| serde_json::from_slice::<Value>(b).ok());
        let seen = Seen {
            phase: "request",
            method: r.method.clone(),
            service_names: r.service_names.clone(),
            payload: params.clone(),
            headers: r
                .headers
                .iter()
                .map(|h| (h.key.clone(), String::from_utf8_lossy(&h.value).into_owned()))
                .collect(),
            metadata: r.metadata_context.as_ref().map_or(Value::Null, |m| m.to_json()),
        };
        sink.lock().expect("lock").push(seen);
        let result = decide_request(&r.method, params.as_ref());
        // Every call let through is tagged for the upstream.
        let header_mutation = (r.method == "tools/call").then(|| HeaderMutation {
            set: vec![McpHeader { key: "x-guardrail".into(), value: b"checked".to_vec() }],
            remove: vec!["user-agent".into()],
        });
        grpc_ok(&McpRequestResult { result: Some(result), header_mutation, metadata: None })
    } else {
        let Ok(r) = McpResponse::decode(message) else { return grpc_status(3) };
        let result = serde_json::from_slice::<Value>(&r.mcp_response).ok();
        let seen = Seen {
            phase: "response",
            method: r.method.clone(),
            service_names: r.service_names.clone(),
            payload: result.clone(),
            headers: Vec::new(),
            metadata: r.metadata_context.as_ref().map_or(Value::Null, |m| m.to_json()),
        };
        sink.lock().expect("lock").push(seen);
        grpc_ok(&McpResponseResult { result: Some(decide_response(&r.method, result)) })
    }
}

fn decide_request(method: &str, params: Option<&Value>) -> Decision {
    let Some(params) = params.filter(|_| method == "tools/call") else { return Decision::Pass(Pass {}) };
    let arguments = params.get("arguments").cloned().unwrap_or(Value::Null);
    if arguments.to_string().contains("FORBIDDEN") {
        return Decision::Error(AuthorizationError {
            code: code::PERMISSION_DENIED,
            reason: "forbidden marker in arguments".into(),
            mcp_error: None,
        });
    }
    match arguments.get("message").and_then(Value::as_str) {
        Some("please rewrite") => {
            let mut p = params.clone();
            p["arguments"]["message"] = json!("rewritten by the guardrail");
            Decision::Mutated(serde_json::to_vec(&p).expect("JSON"))
        }
        Some("garbage") => Decision::Mutated(b"{not json".to_vec()),
        _ => Decision::Pass(Pass {}),
    }
}

fn decide_response(method: &str, result: Option<Value>) -> Decision {
    let Some(mut result) = result else { return Decision::Pass(Pass {}) };
    match method {
        "tools/call" => {
            let text = result.to_string();
            if !text.contains("SECRET") {
                return Decision::Pass(Pass {});
            }
            for item in result["content"].as_array_mut().into_iter().flatten() {
                if let Some(t) = item["text"].as_str() {
                    item["text"] = json!(t.replace("SECRET", "[redacted]"));
                }
            }
            Decision::Mutated(serde_json::to_vec(&result).expect("JSON"))
        }
        "tools/list" => {
            if let Some(tools) = result["tools"].as_array_mut() {
                tools.retain(|t| !t["name"].as_str().is_some_and(|n| n.ends_with("printEnv")));
            }
            Decision::Mutated(serde_json::to_vec(&result).expect("JSON"))
        }
        _ => Decision::Pass(Pass {}),
    }
}

fn grpc_ok<M: Message>(m: &M) -> Response<Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames: Vec<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>> =
        vec![Ok(hyper::body::Frame::data(grpc::frame(m))), Ok(hyper::body::Frame::trailers(trailers))];
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
