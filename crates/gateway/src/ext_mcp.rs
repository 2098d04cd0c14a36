//! The messages of agentgateway's `ExtMcp` protocol (`agentgateway.dev.ext_mcp`, the
//! `mcpGuardrails` processors), written by hand from its `.proto` field numbers. Public for
//! the test kit's server.

use agw_mcp::guardrails::HeaderEdits;
use agw_mcp::jsonrpc::{ErrorObject, code as rpc};
use serde_json::Value;

use crate::envoy::Struct;

/// `CheckRequest`: the request phase.
pub const CHECK_REQUEST: &str = "/agentgateway.dev.ext_mcp.ExtMcp/CheckRequest";
/// `CheckResponse`: the response phase.
pub const CHECK_RESPONSE: &str = "/agentgateway.dev.ext_mcp.ExtMcp/CheckResponse";

/// `McpRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct McpRequest {
    /// The targets the call goes to (their own names, not prefixed).
    #[prost(string, repeated, tag = "1")]
    pub service_names: Vec<String>,
    #[prost(string, tag = "2")]
    pub method: String,
    /// The processor's `metadata`, evaluated.
    #[prost(message, optional, tag = "3")]
    pub metadata_context: Option<Struct>,
    /// The JSON-RPC `params` as JSON; absent for a call checked once for all its targets.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub mcp_request: Option<Vec<u8>>,
    /// The client's request headers, filtered; one entry per value.
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<McpHeader>,
}

/// `McpResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct McpResponse {
    #[prost(string, repeated, tag = "1")]
    pub service_names: Vec<String>,
    #[prost(string, tag = "2")]
    pub method: String,
    #[prost(message, optional, tag = "3")]
    pub metadata_context: Option<Struct>,
    /// The JSON-RPC `result` as JSON.
    #[prost(bytes = "vec", tag = "4")]
    pub mcp_response: Vec<u8>,
}

/// `McpRequestResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct McpRequestResult {
    #[prost(oneof = "Decision", tags = "1, 2, 3")]
    pub result: Option<Decision>,
    #[prost(message, optional, tag = "4")]
    pub header_mutation: Option<HeaderMutation>,
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<Struct>,
}

/// `McpResponseResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct McpResponseResult {
    #[prost(oneof = "Decision", tags = "1, 2, 3")]
    pub result: Option<Decision>,
}

/// The `result` oneof of both answers.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Decision {
    #[prost(message, tag = "1")]
    Pass(Pass),
    /// The new `params` (request) or `result` (response), as JSON.
    #[prost(bytes = "vec", tag = "2")]
    Mutated(Vec<u8>),
    #[prost(message, tag = "3")]
    Error(AuthorizationError),
}

/// `Pass`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Pass {}

/// `HeaderMutation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderMutation {
    #[prost(message, repeated, tag = "1")]
    pub set: Vec<McpHeader>,
    #[prost(string, repeated, tag = "2")]
    pub remove: Vec<String>,
}

/// `McpHeader`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct McpHeader {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `AuthorizationError`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthorizationError {
    /// `UNKNOWN` 0, `PERMISSION_DENIED` 1, `RESOURCE_EXHAUSTED` 2, `INVALID` 3.
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub reason: String,
    /// A JSON-RPC error (or its `data`), as JSON.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub mcp_error: Option<Vec<u8>>,
}

/// Longest `reason` passed to the client.
pub const MAX_REASON: usize = 1024;

/// JSON-RPC codes of refusals (agentgateway's): permission denied, resource exhausted.
pub const PERMISSION_DENIED: i64 = -32001;
pub const RESOURCE_EXHAUSTED: i64 = -32003;

impl AuthorizationError {
    /// The JSON-RPC error for the client: `mcp_error` when that is a JSON-RPC error object
    /// (`code`, `message`), else from the code and reason, with `mcp_error` (any other JSON)
    /// as `data`.
    pub fn to_error(self) -> ErrorObject {
        let mcp_error: Option<Value> = self.mcp_error.as_deref().and_then(|b| serde_json::from_slice(b).ok());
        if let Some(explicit) = mcp_error.as_ref().and_then(explicit_error) {
            return explicit;
        }
        let code = match self.code {
            code::PERMISSION_DENIED => PERMISSION_DENIED,
            code::RESOURCE_EXHAUSTED => RESOURCE_EXHAUSTED,
            code::INVALID => rpc::INVALID_REQUEST,
            _ => rpc::INTERNAL_ERROR,
        };
        let message = if self.reason.is_empty() { "refused by a guardrail".to_string() } else { cut(&self.reason) };
        ErrorObject { code, message, data: mcp_error }
    }
}

/// A JSON-RPC error object given whole.
fn explicit_error(v: &Value) -> Option<ErrorObject> {
    let code = v.get("code")?.as_i64()?;
    let message = cut(v.get("message")?.as_str()?);
    Some(ErrorObject { code, message, data: v.get("data").cloned() })
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_REASON).collect()
}

impl HeaderMutation {
    /// Adds these changes to `into`; entries that are not valid HTTP are left out.
    pub fn add_to(self, into: &mut HeaderEdits) {
        let set = self.set.into_iter().filter_map(|h| {
            let name = http::HeaderName::from_bytes(h.key.as_bytes()).ok()?;
            let value = http::HeaderValue::from_bytes(&h.value).ok()?;
            Some((name, value))
        });
        let remove = self.remove.iter().filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok()).collect();
        into.extend(set, remove);
    }
}

/// `AuthorizationError.Code`.
pub mod code {
    pub const UNKNOWN: i32 = 0;
    pub const PERMISSION_DENIED: i32 = 1;
    pub const RESOURCE_EXHAUSTED: i32 = 2;
    pub const INVALID: i32 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(code: i32, reason: &str, mcp_error: Option<&str>) -> AuthorizationError {
        AuthorizationError { code, reason: reason.into(), mcp_error: mcp_error.map(|s| s.as_bytes().to_vec()) }
    }

    #[test]
    fn refusals_become_json_rpc_errors() {
        let e = err(1, "no secrets", None).to_error();
        assert_eq!((e.code, e.message.as_str(), e.data), (-32001, "no secrets", None));
        assert_eq!(err(2, "slow down", None).to_error().code, -32003);
        assert_eq!(err(3, "bad", None).to_error().code, -32600);
        assert_eq!(err(0, "", None).to_error().code, -32603);
        assert_eq!(err(42, "", None).to_error().message, "refused by a guardrail", "unknown code, no reason");
        let whole = err(1, "x", Some(r#"{"code": -32099, "message": "custom", "data": {"k": 1}}"#)).to_error();
        assert_eq!((whole.code, whole.message.as_str(), whole.data), (-32099, "custom", Some(json!({"k": 1}))));
        let data = err(1, "x", Some(r#"{"why": "pii"}"#)).to_error();
        assert_eq!((data.code, data.data), (-32001, Some(json!({"why": "pii"}))));
        assert_eq!(err(1, "x", Some("not json")).to_error().data, None);
        assert_eq!(err(1, &"a".repeat(5000), None).to_error().message.len(), MAX_REASON);
    }

    #[test]
    fn header_mutations_keep_what_is_valid_http() {
        let h = |k: &str, v: &[u8]| McpHeader { key: k.into(), value: v.to_vec() };
        let m = HeaderMutation {
            set: vec![h("bad name", b"v"), h("x-ok", b"v\nbad"), h("x-fine", b"yes")],
            remove: vec!["bad name".into(), "x-gone".into()],
        };
        let mut edits = HeaderEdits::default();
        m.add_to(&mut edits);
        assert_eq!(edits.set.len(), 1);
        assert_eq!(edits.set[0].0, "x-fine");
        assert_eq!(edits.remove, ["x-gone"]);
    }
}
