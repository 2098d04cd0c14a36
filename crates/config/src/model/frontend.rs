//! `frontendPolicies:` — how client connections are accepted and served, for every bind.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Duration, Unsupported};
use super::telemetry::{AccessLog, FrontendTracing};
use super::tls::FrontendTls;

/// Connection-level settings for every bind and listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FrontendPolicies {
    /// HTTP settings for client connections: sizes, time-outs, HTTP/2 tuning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<FrontendHttp>,
    /// TCP settings for client connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<FrontendTcp>,

    /// TLS settings for every `HTTPS` listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<FrontendTls>,
    /// CEL rules over connections. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_authorization: Option<Unsupported>,
    /// External authorization once per connection. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ext_authz: Option<Unsupported>,
    /// PROXY protocol. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<Unsupported>,
    /// Alias of `proxyProtocol`. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Unsupported>,
    /// HTTP CONNECT handling. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Unsupported>,
    /// Access log: a CEL filter, CEL fields added, built-in fields removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
    /// Alias of `accessLog` (set one of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<AccessLog>,
    /// OTLP trace export for every request, with sampling and CEL span attributes (instead of
    /// `config.tracing`, not with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<FrontendTracing>,
}

impl FrontendPolicies {
    /// The agentgateway fields this gateway recognises but does not implement.
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        super::common::present([
            ("networkAuthorization", &self.network_authorization),
            ("networkExtAuthz", &self.network_ext_authz),
            ("proxyProtocol", &self.proxy_protocol),
            ("proxy", &self.proxy),
            ("connect", &self.connect),
        ])
    }
}

/// HTTP/1 header-name casing in responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HeaderCase {
    /// Lower-case header names (the default).
    #[default]
    Lowercase,
    /// Echo the client's casing. Not supported yet.
    Preserve,
}

/// HTTP settings for client connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FrontendHttp {
    /// Largest body the gateway buffers whole, in bytes: an MCP request body (larger: 413) and an
    /// upstream's JSON answer or single SSE event. Default 16 MiB for requests and 32 MiB for
    /// answers (agentgateway: 2 MiB for both). Read at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buffer_size: Option<usize>,
    /// Most header fields in an HTTP/1 request (more: 431). Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_headers: Option<usize>,
    /// How long a connection with no request in flight stays open (HTTP/1 keep-alive; HTTP/2
    /// gets a GOAWAY). Default `120s`: agents pause between calls, and a client that reconnects
    /// pays one TCP handshake, while idle connections hold a file descriptor each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_idle_timeout: Option<Duration>,
    /// HTTP/1 response header-name casing: `lowercase` (`preserve` is not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_header_case: Option<HeaderCase>,
    /// HTTP/2 per-stream flow-control window, in bytes. Default: hyper's (1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_window_size: Option<u32>,
    /// HTTP/2 connection flow-control window, in bytes. Default: hyper's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_connection_window_size: Option<u32>,
    /// Largest HTTP/2 frame the gateway accepts, in bytes (16384 to 16777215). Default 16384.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_frame_size: Option<u32>,
    /// Largest HTTP/2 header list, in bytes. Default: hyper's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_header_size: Option<u32>,
    /// Interval between HTTP/2 PING frames sent to check the client is there. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keepalive_interval: Option<Duration>,
    /// How long to wait for a PING answer before closing. Default `20s` (with an interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keepalive_timeout: Option<Duration>,
    /// Longest a connection may live; then it is closed gracefully once its requests finish
    /// (spreads clients over new instances after scaling). Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,

    /// Time allowed from accepting a connection to its first request head, and from the first
    /// byte of any request head to its end; then the connection is closed. Default `10s`: a
    /// real client sends its head at once, a slow-loris client holds a connection otherwise.
    /// (An extension: agentgateway has no such field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_timeout: Option<Duration>,
    /// Time allowed for a request body, from its start, on top of what `requestBodyMinRate`
    /// earns. Default `30s`. (An extension.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_timeout: Option<Duration>,
    /// Bytes per second a request body must keep up: each byte received extends the body's
    /// deadline by 1/rate seconds (like Apache's `mod_reqtimeout` `MinRate`). `0` turns the
    /// extension off. Default 1024: a stalled or trickling body is cut (408) while a large body
    /// sent at any real speed is not. (An extension.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_min_rate: Option<u64>,
    /// Most bytes of request bodies buffered at once by the whole gateway (MCP requests are read
    /// whole before they are relayed). Beyond it, requests get 503. Default 256 MiB: sixteen
    /// maximum-size MCP requests, far below a small machine's memory. Read at start-up.
    /// (An extension.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buffered_request_bytes: Option<usize>,
}

/// TCP settings for client connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FrontendTcp {
    /// TCP keep-alive probes on client connections (find peers that vanished without a FIN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalives: Option<Keepalives>,
    /// Most open client connections per worker thread; further connections are accepted and
    /// closed at once. Default: from the file-descriptor limit, (limit − 1024) / (2 × workers),
    /// between 256 and 50000, so admin and readiness always have descriptors left.
    /// (An extension: agentgateway has no such field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_worker: Option<usize>,
}

/// TCP keep-alive settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Keepalives {
    /// Send probes. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Idle time before the first probe. Default `180s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// Time between probes. Default `180s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped. Default 9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}
