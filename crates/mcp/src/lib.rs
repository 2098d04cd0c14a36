//! The MCP side of the gateway: reading JSON-RPC and SSE, mapping sessions, and relaying
//! Streamable HTTP between a client and its upstream MCP servers.

mod apps;
pub mod authz;
pub use agw_http::body;
pub mod caller;
pub mod error;
mod grow;
pub mod guard;
pub mod guardrails;
pub mod jsonrpc;
pub mod local;
pub mod metrics;
pub mod mux;
pub mod otlp;
pub mod quota;
pub mod relay;
pub mod session;
pub mod sse;
pub mod trace;
pub mod upstream;

pub use caller::Caller;
pub use error::{FailureKind, RelayError, UpstreamFailure};
pub use relay::{Backend, CallOptions, FailureMode, Limits, McpOptions, Relay, Target};
pub use upstream::{HttpClient, HttpTarget, Upstream};
