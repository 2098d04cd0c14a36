//! Prometheus metrics of one running gateway (served on `statsAddr` at `/metrics`).
//!
//! Every gateway instance has its own registry, so two gateways in one process (tests) do
//! not count each other's traffic. Names and labels are listed in `docs/operations.md`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// What the relay learned about one client request (the first JSON-RPC request of its body),
/// for the access log and traces. The relay puts it in the response's extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpCall {
    pub method: String,
    /// The target it went to; `None` when fanned out to every target.
    pub target: Option<String>,
    /// The tool of a `tools/call`, as the client named it.
    pub tool: Option<String>,
    /// JSON-RPC requests in the body (more than one in a batch).
    pub requests: usize,
}

/// HTTP requests, by where they arrived and how they ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub bind: u16,
    pub listener: String,
    pub route: String,
    /// A standard HTTP method, or `other`.
    pub method: &'static str,
    pub status: u16,
}

/// Request duration, by route.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub bind: u16,
    pub listener: String,
    pub route: String,
}

/// One JSON-RPC request from a client.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpLabels {
    /// A known MCP method, or `other`.
    pub method: &'static str,
    /// The target the request went to (empty when it was fanned out or refused).
    pub target: String,
    /// The tool of a `tools/call` as the client named it (empty for other methods).
    pub tool: String,
}

/// An authorization decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `http` (the `authorization` policy) or `mcp` (`mcpAuthorization`).
    pub kind: &'static str,
    /// `allow` or `deny`.
    pub result: &'static str,
}

/// An authentication failure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthnLabels {
    /// `jwtAuth`, `apiKey` or `basicAuth`.
    pub policy: &'static str,
    /// A short, fixed reason: `missing`, `invalid`, `expired`, …
    pub reason: &'static str,
}

/// One upstream call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
}

/// A config reload.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// A refused session request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `owner` (the id belongs to another caller), `rate` (new sessions per second), `live`
    /// (live sessions per caller), `capacity` (the gateway's `maxSessions`).
    pub reason: &'static str,
}

/// Why the gateway closed a client connection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// `header_timeout`, `idle`, `body_timeout` or `max_duration`.
    pub reason: &'static str,
}

/// A tool definition that tool-definition pinning refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PinLabels {
    pub target: String,
    /// The tool, as the upstream names it (bounded like [`McpLabels::tool`]).
    pub tool: String,
    /// `changed` (the digest differs from the pinned one) or `unpinned` (no pin for it).
    pub reason: &'static str,
}

/// An A2A call on an `a2a` route.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aLabels {
    pub route: String,
    /// The A2A method (v0.3 and v1.0 names), or `other`.
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Most distinct tool names that get a series of their own; later ones count as `other`.
/// Tool names come from clients, so without a bound a client could grow the registry (and
/// every scrape) without limit.
pub const MAX_TOOL_SERIES: usize = 1000;
/// Longest label value or logged name taken from a request; longer ones are cut.
pub const MAX_NAME: usize = 128;

/// MCP methods known to the protocol; anything else is counted as `other`.
const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];

/// A request's method as a label: a known MCP method, or `other`.
pub fn method_label(method: &str) -> &'static str {
    MCP_METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

/// An HTTP method as a label: a standard one, or `other`.
pub fn http_method_label(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::DELETE => "DELETE",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => "other",
    }
}

/// `s` cut to at most [`MAX_NAME`] bytes (on a character boundary).
pub fn cut(s: &str) -> &str {
    if s.len() <= MAX_NAME {
        return s;
    }
    let mut end = MAX_NAME;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~52 s, doubling.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// The metrics of one gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<HttpLabels, Counter>,
    pub request_duration: HistogramFamily<RouteLabels>,
    pub mcp_requests: Family<McpLabels, Counter>,
    pub authorization: Family<DecisionLabels, Counter>,
    pub authentication_failures: Family<AuthnLabels, Counter>,
    pub upstream_duration: HistogramFamily<TargetLabels>,
    pub sessions_started: Counter,
    pub local_sessions: Gauge,
    pub stdio_children: Gauge,
    pub reloads: Family<ReloadLabels, Counter>,
    pub sessions_refused: Family<RefusedLabels, Counter>,
    /// Tool names that have a series of their own (at most [`MAX_TOOL_SERIES`]).
    tools: std::sync::RwLock<std::collections::HashSet<String>>,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    pub connections_closed: Family<CloseLabels, Counter>,
    pub request_body_buffered_bytes: Gauge,
    pub requests_over_budget: Counter,
    pub tool_pin_rejections: Family<PinLabels, Counter>,
    pub a2a_calls: Family<A2aLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("agentgateway");
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests, by bind port, listener, route, method and status",
            requests.clone(),
        );
        let request_duration = HistogramFamily::<RouteLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response headers",
            request_duration.clone(),
        );
        let mcp_requests = Family::<McpLabels, Counter>::default();
        registry.register(
            "mcp_requests",
            "JSON-RPC requests from MCP clients, by method, target and tool",
            mcp_requests.clone(),
        );
        let authorization = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "authorization_decisions",
            "Authorization decisions on calls and reads (listings are not counted), by kind and result",
            authorization.clone(),
        );
        let authentication_failures = Family::<AuthnLabels, Counter>::default();
        registry.register(
            "authentication_failures",
            "Requests refused by authentication, by policy and reason",
            authentication_failures.clone(),
        );
        let upstream_duration = HistogramFamily::<TargetLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_request_duration_seconds",
            "Time from sending a request to an MCP target to its response headers (HTTP) or answer (stdio)",
            upstream_duration.clone(),
        );
        let sessions_started = Counter::default();
        registry.register(
            "mcp_sessions_started",
            "MCP sessions initialized through the gateway",
            sessions_started.clone(),
        );
        let local_sessions = Gauge::default();
        registry.register(
            "mcp_local_sessions",
            "Live sessions whose state this gateway holds (stdio targets, legacy SSE clients)",
            local_sessions.clone(),
        );
        let stdio_children = Gauge::default();
        registry.register("stdio_children", "Running stdio target processes", stdio_children.clone());
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register("config_reloads", "Config file reloads, by result", reloads.clone());
        let sessions_refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "mcp_sessions_refused",
            "Session requests refused: another caller's id, or a quota, by reason",
            sessions_refused.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "The gateway's version", build);
        let connections_open = Gauge::default();
        registry.register("connections_open", "Open client connections on traffic ports", connections_open.clone());
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Client connections closed on accept: the per-worker connection limit was reached",
            connections_refused.clone(),
        );
        let connections_closed = Family::<CloseLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Client connections closed by the gateway, by reason (header_timeout, idle, body_timeout, max_duration)",
            connections_closed.clone(),
        );
        let request_body_buffered_bytes = Gauge::default();
        registry.register(
            "request_body_buffered_bytes",
            "Bytes of request bodies being buffered now (MCP requests are read whole)",
            request_body_buffered_bytes.clone(),
        );
        let requests_over_budget = Counter::default();
        registry.register(
            "requests_over_budget",
            "Requests refused (503) because the request-body buffer budget was used up",
            requests_over_budget.clone(),
        );
        let tool_pin_rejections = Family::<PinLabels, Counter>::default();
        registry.register(
            "mcp_tool_pin_rejections",
            "Tool definitions hidden by tool-definition pinning, counted once per definition seen, by target, tool and reason (changed, unpinned)",
            tool_pin_rejections.clone(),
        );
        let a2a_calls = Family::<A2aLabels, Counter>::default();
        registry.register(
            "a2a_calls",
            "A2A calls on `a2a` routes, by route, A2A method (v0.3 and v1.0 names; others as `other`) and HTTP status",
            a2a_calls.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            mcp_requests,
            authorization,
            authentication_failures,
            upstream_duration,
            sessions_started,
            local_sessions,
            stdio_children,
            reloads,
            sessions_refused,
            tools: Default::default(),
            connections_open,
            connections_refused,
            connections_closed,
            request_body_buffered_bytes,
            requests_over_budget,
            tool_pin_rejections,
            a2a_calls,
        }
    }

    /// The label for a tool name: itself while fewer than [`MAX_TOOL_SERIES`] names have been
    /// seen, `other` for new names after that.
    pub fn tool_label(&self, name: &str) -> String {
        let name = cut(name);
        // Read-locked on the common path (a name seen before); written once per new name.
        if self.tools.read().is_ok_and(|seen| seen.contains(name)) {
            return name.to_string();
        }
        let Ok(mut seen) = self.tools.write() else { return "other".into() };
        if seen.contains(name) || seen.len() < MAX_TOOL_SERIES {
            seen.insert(name.to_string());
            return name.to_string();
        }
        "other".into()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn upstream_call(&self, target: &str, took: Duration) {
        self.upstream_duration.get_or_create(&TargetLabels { target: target.to_string() }).observe(took.as_secs_f64());
    }

    pub fn decision(&self, kind: &'static str, allowed: bool) {
        let result = if allowed { "allow" } else { "deny" };
        self.authorization.get_or_create(&DecisionLabels { kind, result }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_clients_cannot_grow_the_registry_without_bound() {
        let m = Metrics::new();
        for i in 0..MAX_TOOL_SERIES {
            assert_eq!(m.tool_label(&format!("tool-{i}")), format!("tool-{i}"));
        }
        assert_eq!(m.tool_label("one-too-many"), "other");
        assert_eq!(m.tool_label("tool-7"), "tool-7", "names already seen keep their series");
        let long = "é".repeat(200);
        assert!(cut(&long).len() <= MAX_NAME && long.starts_with(cut(&long)));
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("x/made-up"), "other");
        assert_eq!(http_method_label(&http::Method::GET), "GET");
        assert_eq!(http_method_label(&http::Method::from_bytes(b"RND123").unwrap()), "other");
    }
}
