//! The messages of agentgateway's `ExtMcp` protocol (`agentgateway.dev.ext_mcp`, the
//! `mcpGuardrails` processors), written by hand from its `.proto` field numbers. Public for
//! the test kit's server.

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

/// `AuthorizationError.Code`.
pub mod code {
    pub const UNKNOWN: i32 = 0;
    pub const PERMISSION_DENIED: i32 = 1;
    pub const RESOURCE_EXHAUSTED: i32 = 2;
    pub const INVALID: i32 = 3;
}
