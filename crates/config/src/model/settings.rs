//! `config:` — start-up settings.
//!
//! Every key of agentgateway's `config:` block (its `RawConfig`) is here: implemented, or
//! recognised and refused with "not supported yet" (never "unknown field").

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

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

    /// Listen and resolve on IPv6 as well as IPv4. This gateway listens on IPv4 only: `false`
    /// is accepted (and is what it does); `true` is not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
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
    /// and upstream connection pool: a number (1 to 1024), a share of the CPUs such as
    /// `"50%"` (rounded up), or `"auto"` (one per CPU, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<WorkerThreads>,
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
    /// Histograms in `/metrics`: `classic` (the default, and the only kind this gateway
    /// exports); `native` and `both` are not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<HistogramMode>,

    /// Model cost catalog (LLM). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_catalog: Option<Unsupported>,
    /// Database for local runtime features. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Unsupported>,
    /// Where UI-managed configuration is stored. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Unsupported>,
    /// Token for the certificate authority. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_auth_token: Option<Unsupported>,
    /// Token for the xDS control plane. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xds_auth_token: Option<Unsupported>,
    /// SPIFFE Workload API. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<Unsupported>,
    /// Kubernetes namespace (mesh identity, xDS). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Unsupported>,
    /// Gateway name (xDS). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Unsupported>,
    /// SPIFFE trust domain. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<Unsupported>,
    /// More SPIFFE trust domains accepted on HBONE. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_trust_domains: Option<Unsupported>,
    /// Skip SPIFFE trust-domain checks on HBONE. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_validate_trust_domain: Option<Unsupported>,
    /// Kubernetes service account (mesh identity). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<Unsupported>,
    /// Cluster id (mesh identity). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<Unsupported>,
    /// Network name (locality-aware routing). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Unsupported>,
    /// Request-log attributes for database features. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_attributes: Option<Unsupported>,
    /// HBONE tunnel settings. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hbone: Option<Unsupported>,
    /// Removed from agentgateway (renamed to the top-level `frontendPolicies`); an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub listener: Option<Unsupported>,
}

impl Settings {
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        super::common::present([
            ("dns", &self.dns),
            ("localXdsPath", &self.local_xds_path),
            ("xdsAddress", &self.xds_address),
            ("caAddress", &self.ca_address),
            ("connectionMinTerminationDeadline", &self.connection_min_termination_deadline),
            ("metrics", &self.metrics),
            ("backend", &self.backend),
            ("sensitiveHeaders", &self.sensitive_headers),
            ("customFunctions", &self.custom_functions),
            ("modelCatalog", &self.model_catalog),
            ("database", &self.database),
            ("storage", &self.storage),
            ("caAuthToken", &self.ca_auth_token),
            ("xdsAuthToken", &self.xds_auth_token),
            ("spiffe", &self.spiffe),
            ("namespace", &self.namespace),
            ("gateway", &self.gateway),
            ("trustDomain", &self.trust_domain),
            ("additionalTrustDomains", &self.additional_trust_domains),
            ("skipValidateTrustDomain", &self.skip_validate_trust_domain),
            ("serviceAccount", &self.service_account),
            ("clusterId", &self.cluster_id),
            ("network", &self.network),
            ("standardAttributes", &self.standard_attributes),
            ("hbone", &self.hbone),
        ])
    }

    /// How many threads serve traffic on this machine.
    pub fn worker_count(settings: Option<&Settings>) -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        settings.and_then(|s| s.worker_threads).unwrap_or(WorkerThreads::Auto).threads(cpus)
    }
}

/// Most worker threads.
pub const MAX_WORKER_THREADS: usize = 1024;

/// `workerThreads`: a count, a share of the CPUs, or one per CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WorkerThreads {
    /// A fixed number (`4`, or `"4"`).
    Count(u64),
    /// A percentage of the CPUs, more than 0 and at most 100 (`"50%"`).
    Percent(f64),
    /// One per CPU (`"auto"`).
    Auto,
}

impl WorkerThreads {
    /// The number of threads on a machine with `cpus` CPUs: a share is rounded up, and at
    /// least 1; `auto` and shares are capped at [`MAX_WORKER_THREADS`].
    pub fn threads(self, cpus: usize) -> usize {
        let n = match self {
            WorkerThreads::Count(n) => return usize::try_from(n).unwrap_or(usize::MAX),
            WorkerThreads::Auto => cpus,
            WorkerThreads::Percent(p) => (cpus as f64 * p / 100.0).ceil() as usize,
        };
        n.clamp(1, MAX_WORKER_THREADS)
    }

    fn parse(text: &str) -> Result<WorkerThreads, String> {
        let text = text.trim();
        if text == "auto" {
            return Ok(WorkerThreads::Auto);
        }
        if let Some(p) = text.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(WorkerThreads::Percent(p)),
                _ => Err(format!("`{text}`: a percentage of the CPUs is more than 0% and at most 100%")),
            };
        }
        text.parse::<u64>()
            .map(WorkerThreads::Count)
            .map_err(|_| format!("`{text}` is not a number of threads (expected e.g. 4, \"50%\" or \"auto\")"))
    }
}

impl fmt::Display for WorkerThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerThreads::Count(n) => write!(f, "{n}"),
            WorkerThreads::Percent(p) => write!(f, "{p}%"),
            WorkerThreads::Auto => f.write_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for WorkerThreads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WorkerThreads;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of threads, a percentage of the CPUs such as \"50%\", or \"auto\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WorkerThreads, E> {
                Ok(WorkerThreads::Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WorkerThreads, E> {
                u64::try_from(v).map(WorkerThreads::Count).map_err(|_| E::custom("a number of threads is at least 1"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WorkerThreads, E> {
                WorkerThreads::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for WorkerThreads {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WorkerThreads::Count(n) => s.serialize_u64(*n),
            other => s.collect_str(other),
        }
    }
}

impl JsonSchema for WorkerThreads {
    fn schema_name() -> Cow<'static, str> {
        "WorkerThreads".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number of threads (1 to 1024), a percentage of the CPUs such as \"50%\", or \"auto\".",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 1024},
                {"type": "string", "pattern": "^(auto|[0-9]+|[0-9]+(\\.[0-9]+)?%)$"}
            ]
        })
    }
}

/// Which histograms `/metrics` exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HistogramMode {
    /// Classic buckets (what this gateway exports).
    #[default]
    Classic,
    /// Native histograms only. Not supported yet.
    Native,
    /// Classic and native. Not supported yet.
    Both,
}

/// `logging.level`: one filter (`info`, `info,agw_mcp=debug`) or a list of directives joined
/// with commas (`[info, "agw_mcp=debug"]`), as in agentgateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLevel {
    One(String),
    List(Vec<String>),
}

impl LogLevel {
    /// The filter to apply; empty means `info`.
    pub fn filter(&self) -> String {
        let joined = match self {
            LogLevel::One(s) => s.clone(),
            LogLevel::List(items) => items.join(","),
        };
        if joined.trim().is_empty() { "info".into() } else { joined }
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LogLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a log filter such as \"info\" or \"info,agw_mcp=debug\", or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LogLevel, E> {
                Ok(LogLevel::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LogLevel, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(LogLevel::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LogLevel::One(v) => s.serialize_str(v),
            LogLevel::List(items) => items.serialize(s),
        }
    }
}

impl JsonSchema for LogLevel {
    fn schema_name() -> Cow<'static, str> {
        "LogLevel".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A log filter (`info`, `info,agw_mcp=debug`), or a list of directives joined with commas (`[info, \"agw_mcp=debug\"]`).",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}}
            ]
        })
    }
}

/// Logging settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Logging {
    /// Level filter, e.g. `info` or `info,agw_mcp=debug`, or a list of directives such as
    /// `[info, "agw_mcp=debug"]` (joined with commas). Default (and when empty) `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    /// `text` (default) or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    /// Which authorization decisions are logged as audit events (target `audit`):
    /// `denied` (default), `all`, or `off`. (An extension: agentgateway has no such field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditMode>,
    /// Deprecated: `frontendPolicies.accessLog.filter` (set one of the two forms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Deprecated: `frontendPolicies.accessLog.add` and `remove` (set one of the two forms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<super::telemetry::LogFields>,
    /// Request log to a database. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Unsupported>,
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
    /// Headers sent with every export (e.g. an API key for a hosted collector). Values are
    /// secrets: redacted in dumps.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, super::common::Secret>,
    /// Span attributes: `add` (name → CEL) and `remove` (built-in names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<super::telemetry::LogFields>,
    /// Share of requests without a client trace that start one: `true`, `false`, a ratio from
    /// 0 to 1, or CEL giving one. Default `false` (as agentgateway: set it to trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_sampling: Option<super::telemetry::Sampling>,
    /// For requests with a `traceparent`: whether to trace them; the client's sampled flag
    /// still decides export. Same forms; default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_sampling: Option<super::telemetry::Sampling>,
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
