//! `config:` — start-up settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Duration, Secret, Unsupported};

pub const DEFAULT_ADMIN_ADDR: &str = "localhost:15000";
pub const DEFAULT_STATS_ADDR: &str = "0.0.0.0:15020";
pub const DEFAULT_READINESS_ADDR: &str = "0.0.0.0:15021";

/// Start-up settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Settings {
    /// Address of the admin server (`/ui/`, `/config_dump`, `/logging`): `host:port`, or `off`.
    /// Default `localhost:15000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<String>,
    /// Address of the Prometheus metrics server (`/metrics`): `host:port`, or `off`.
    /// Default `0.0.0.0:15020`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_addr: Option<String>,
    /// Address of the readiness server (`/healthz/ready`): `host:port`, or `off`.
    /// Default `0.0.0.0:15021`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_addr: Option<String>,
    /// Log level and format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// OpenTelemetry trace export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// Session-id encryption. Without it, session ids are base64url and not encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// Believe `X-Forwarded-Proto` and `X-Forwarded-Host` when building absolute URLs (OAuth
    /// protected-resource metadata). Only set this behind a proxy that sets them. Default
    /// `false`. (An extension: agentgateway has no such field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_forwarded_headers: Option<bool>,
    /// How long in-flight requests may take to finish on shutdown. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_termination_deadline: Option<Duration>,

    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_xds_path: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xds_address: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_address: Option<Unsupported>,
    /// Threads serving traffic, each with its own event loop, accept queue (`SO_REUSEPORT`)
    /// and upstream connection pool. Default: one per CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_min_termination_deadline: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Unsupported>,
    /// MCP session settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpSettings>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_headers: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_functions: Option<Unsupported>,
}

impl Settings {
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        super::common::present([
            ("enableIpv6", &self.enable_ipv6),
            ("dns", &self.dns),
            ("localXdsPath", &self.local_xds_path),
            ("xdsAddress", &self.xds_address),
            ("caAddress", &self.ca_address),
            ("connectionMinTerminationDeadline", &self.connection_min_termination_deadline),
            ("metrics", &self.metrics),
            ("backend", &self.backend),
            ("sensitiveHeaders", &self.sensitive_headers),
            ("customFunctions", &self.custom_functions),
        ])
    }
}

/// Logging settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Logging {
    /// Level filter, e.g. `info` or `info,agw_mcp=debug`. Default `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// `text` (default) or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    /// Which authorization decisions are logged as audit events (target `audit`):
    /// `denied` (default), `all`, or `off`. (An extension: agentgateway has no such field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditMode>,
    /// Deprecated in agentgateway (use `frontendPolicies.accessLog`). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Unsupported>,
    /// Deprecated in agentgateway (use `frontendPolicies.accessLog`). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Unsupported>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which authorization decisions become audit events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuditMode {
    /// Only refusals (and listings that hid something).
    #[default]
    Denied,
    /// Every decision.
    All,
    /// None.
    Off,
}

/// OpenTelemetry tracing settings: a span per request and per upstream call, exported over
/// OTLP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tracing {
    /// OTLP collector endpoint, e.g. `http://localhost:4317` (gRPC) or `http://localhost:4318`
    /// (HTTP). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// `grpc` (default) or `http` (protobuf over HTTP, `POST <endpoint><path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// With `otlpProtocol: http`: the path to post to. Default `/v1/traces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_sampling: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_sampling: Option<Unsupported>,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`TraceService/Export` over HTTP/2 without TLS).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// MCP session settings (for sessions whose state a gateway holds: stdio and legacy SSE
/// upstreams, legacy SSE clients).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpSettings {
    /// How long an idle session is kept (its stdio children killed after). Default `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_ttl: Option<Duration>,
    /// Most live sessions of that kind; more are refused (503) until some end. Default
    /// 10000. (An extension: agentgateway has no such field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<usize>,
    /// Most messages in one JSON-RPC batch from a client (protocol versions before
    /// 2025-06-18; later versions have no batches and every batch is refused). Default 16.
    /// (An extension.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<usize>,
    /// Time allowed for an MCP upstream's whole answer to a request, and for a `host:`
    /// backend's response headers, when the route sets no `timeout.requestTimeout`. Default
    /// `5m`. (An extension: agentgateway waits for ever.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Duration>,
    /// Per-caller session quotas. (An extension.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
}

/// Session quotas per caller. A caller is the identity its credentials establish (JWT issuer
/// and subject, API key, Basic user); every caller without credentials together is the
/// anonymous identity. Live sessions are those whose state the gateway holds (stdio and
/// legacy SSE targets, legacy SSE clients): Streamable HTTP sessions live in their id and cost
/// the gateway nothing until used. Over a quota: HTTP 429 with `Retry-After`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Quotas {
    /// Live sessions per authenticated caller. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    /// Live sessions with stdio children (one process each) per authenticated caller.
    /// Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_sessions: Option<usize>,
    /// New sessions per second per authenticated caller (on average). Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sessions_per_second: Option<f64>,
    /// New sessions an authenticated caller may start at once above that rate. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sessions_burst: Option<f64>,
    /// The anonymous identity's quotas (every caller without credentials together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<AnonymousQuotas>,
}

/// Quotas of the anonymous identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnonymousQuotas {
    /// Live sessions of all anonymous callers together. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    /// Live sessions with stdio children of all anonymous callers together. Default 4: each
    /// is a process anyone can start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_sessions: Option<usize>,
    /// New anonymous sessions per second, all addresses together. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sessions_per_second: Option<f64>,
    /// Burst above that rate. Default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sessions_burst: Option<f64>,
    /// New anonymous sessions per second from one client address (checked first, so one
    /// address cannot use up everyone's allowance). Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sessions_per_second_per_address: Option<f64>,
    /// Burst per address. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sessions_burst_per_address: Option<f64>,
}

/// Session settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Session {
    /// AES-256-GCM key sealing session ids: 64 hex characters (`openssl rand -hex 32`).
    /// Every replica that should resume a session needs the same key.
    pub key: Secret,
}
