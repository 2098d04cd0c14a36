//! HTTP plumbing that is not MCP-specific, shared by the MCP relay, the gateway's policies
//! (token exchange, OIDC, remote policy services, OpenAPI targets, A2A) and the test kit:
//! request and response bodies with their limits (`body`), the upstream client (`client`),
//! its TLS settings (`tls`: `backendTLS`, PEM files) and its TCP tuning (`quickack`).

pub mod body;
pub mod client;
pub mod quickack;
pub mod tls;

pub use client::{FetchError, Fetched, HttpClient, SendError};
