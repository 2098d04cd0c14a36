//! Answers of remote policy services (`remoteRateLimit`'s `RateLimitResponse`, `extAuthz`'s
//! `CheckResponse`, `mcpGuardrails`' `McpRequestResult` and `McpResponseResult`), as the gateway
//! reads them: the gRPC frame, the protobuf message, then
//! what is taken from it (headers, metadata as JSON). A service is trusted to decide, not to
//! be well-formed.

use agw_gateway::envoy::auth::CheckResponse;
use agw_gateway::envoy::ratelimit::RateLimitResponse;
use agw_gateway::ext_mcp::{Decision, MAX_REASON, McpRequestResult, McpResponseResult};
use agw_gateway::grpc;
use agw_mcp::guardrails::{HeaderEdits, valid_params, valid_result};
use prost::Message;

pub fn policy_answer(data: &[u8]) {
    let Ok(message) = grpc::unframe(bytes::Bytes::copy_from_slice(data)) else { return };
    assert!(message.len() <= grpc::MAX_MESSAGE);
    if let Ok(r) = RateLimitResponse::decode(message.clone()) {
        for h in r.response_headers_to_add.iter().chain(&r.request_headers_to_add) {
            let _ = h.to_http();
        }
    }
    if let Ok(r) = McpRequestResult::decode(message.clone()) {
        let mut edits = HeaderEdits::default();
        if let Some(m) = r.header_mutation {
            m.add_to(&mut edits);
        }
        let mut headers = http::HeaderMap::new();
        edits.apply(&mut headers);
        assert!(!headers.contains_key("mcp-session-id") && !headers.contains_key("host"));
        if let Some(m) = &r.metadata {
            assert!(m.to_json().is_object());
        }
        guardrail_decision(r.result, true);
    }
    if let Ok(r) = McpResponseResult::decode(message.clone()) {
        guardrail_decision(r.result, false);
    }
    if let Ok(c) = CheckResponse::decode(message) {
        if let Some(m) = &c.dynamic_metadata {
            let json = m.to_json();
            assert!(json.is_object());
            // What comes back as JSON goes back as a Struct.
            assert!(agw_gateway::envoy::Struct::from_json(&json).is_some());
        }
        let denied = c.denied_response.iter().flat_map(|d| &d.headers);
        let ok = c.ok_response.iter().flat_map(|o| o.headers.iter().chain(&o.response_headers_to_add));
        for h in denied.chain(ok) {
            let _ = h.header.as_ref().and_then(|h| h.to_http());
            let _ = h.appends();
        }
    }
}

/// A guardrail's decision as the gateway reads it: a rewrite parsed and checked for its shape, a
/// refusal made a JSON-RPC error.
fn guardrail_decision(d: Option<Decision>, request: bool) {
    match d {
        Some(Decision::Mutated(bytes)) => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return };
            for method in ["tools/call", "tools/list", "resources/read", "prompts/get", "ping"] {
                if request {
                    let original = serde_json::json!({"name": "echo", "uri": "file:///a"});
                    let _ = valid_params(method, Some(&original), &v);
                } else {
                    let _ = valid_result(method, &v);
                }
            }
        }
        Some(Decision::Error(e)) => {
            let e = e.to_error();
            assert!(e.message.chars().count() <= MAX_REASON);
        }
        Some(Decision::Pass(_)) | None => {}
    }
}
