//! `backends[]`: plain HTTP hosts and MCP backends with their targets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backend_policy::BackendPolicies;
use super::common::{Secret, Unsupported};

/// Where a route sends requests. Exactly one of `host`, `mcp` and `backend` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteBackend {
    /// Plain HTTP reverse proxy to `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// An MCP backend: one or more MCP servers behind one endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpBackend>,
    /// Share of the requests when a route has several `host:` backends (default 1; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Policies for this backend; they take precedence over the route's of the same kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<BackendPolicies>,

    /// A Kubernetes-style service. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Unsupported>,
    /// A named backend from the top-level `backends`: `<name>` or `/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// An LLM backend. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<Unsupported>,
    /// An AWS backend. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Unsupported>,
    /// A dynamic backend. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<Unsupported>,
    /// A route group. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_group: Option<Unsupported>,
    /// The in-process admin API. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<Unsupported>,
}

impl RouteBackend {
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        super::common::present([
            ("service", &self.service),
            ("ai", &self.ai),
            ("aws", &self.aws),
            ("dynamic", &self.dynamic),
            ("routeGroup", &self.route_group),
            ("internal", &self.internal),
        ])
    }
}

/// MCP servers behind one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpBackend {
    /// The upstream MCP servers.
    pub targets: Vec<McpTarget>,
    /// `stateful` (default): one upstream session per client session. `stateless`: a
    /// throwaway upstream session per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful_mode: Option<StatefulMode>,
    /// When tool and prompt names get a `<target>_` prefix: `conditional` (default: with two or
    /// more targets), `always`, `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_mode: Option<PrefixMode>,
    /// What happens when a target fails: `failClosed` (default: the request fails) or
    /// `failOpen` (skip the failed target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureMode>,
    /// Refuse requests whose `Host` or `Origin` is not localhost (403). Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_rebinding_protection: Option<bool>,
    /// Interval of SSE keep-alive comments. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_keep_alive: Option<Unsupported>,
    /// Server identity when multiplexing. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Unsupported>,
    /// Tool-definition pinning (an extension): a tool whose name, title, description, schemas
    /// or annotations differ from the approved ones is hidden from `tools/list` and its calls
    /// are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_pinning: Option<ToolPinning>,
}

/// Where the approved tool definitions come from: a pin file, trust on first use, or both
/// (the pin file wins for the tools it names). At least one is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolPinning {
    /// A pin file, as `agentgateway pin` writes it (JSON): the digest of each approved tool, by
    /// target name. Tools it does not name are hidden unless `trustOnFirstUse` is set. Read
    /// again when it changes, like every file the config names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Trust on first use: the first definition any gateway sharing `stateFile` sees of a tool
    /// is the approved one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_on_first_use: Option<TrustOnFirstUse>,
}

/// Trust-on-first-use settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustOnFirstUse {
    /// The file where first-seen digests are recorded (the pin file format), created if
    /// missing; its directory must exist and be writable. Replicas that share it (a shared
    /// volume) agree on every tool: entries are added under a lock and never changed.
    pub state_file: String,
}

/// Which tools of a target are exposed, whoever calls (an extension; unlike
/// `mcpAuthorization`, it does not depend on the caller). `*` matches any run of characters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolFilter {
    /// Tool names (or patterns) exposed; empty or absent: every tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Tool names (or patterns) never exposed; they win over `allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Session handling towards upstreams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StatefulMode {
    /// One upstream session per client session.
    #[default]
    Stateful,
    /// A new upstream session for every request.
    Stateless,
}

/// Name prefixing with several targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PrefixMode {
    /// Prefix only when there are two or more targets.
    #[default]
    Conditional,
    /// Always prefix.
    Always,
    /// Never prefix; names must be unique across targets.
    Never,
}

/// Behaviour when a target fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// Fail the request.
    #[default]
    FailClosed,
    /// Skip the failed target (an error only if every target fails).
    FailOpen,
}

/// One upstream MCP server. Exactly one of `mcp`, `sse`, `stdio` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpTarget {
    /// Target name: lower-case letters, digits, `-` and `.`; no `_` or `+` (they separate
    /// the target from tool names and resource URIs).
    pub name: String,
    /// A Streamable HTTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpHost>,
    /// A legacy HTTP+SSE server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<McpHost>,
    /// A local process speaking MCP on stdin/stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<StdioTarget>,
    /// An HTTP service described by an OpenAPI spec: each operation is a tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<OpenApiTarget>,
    /// Policies for this target (`requestHeaderModifier`, `backendTLS`, `backendAuth`); they
    /// take precedence over the backend's and the route's of the same kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<BackendPolicies>,
    /// Per-request target selection. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Unsupported>,
    /// Which of this target's tools are exposed (an extension): hidden from lists and refused
    /// as unknown when called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolFilter>,
}

/// Where an HTTP MCP server is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpHost {
    /// Full URL (`http://localhost:3001/mcp`), or a host name when `port` and `path` are set.
    /// Leave it out with `backend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port, with `host` and `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Path, with `host` and `port`, or with `backend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A named `host` backend from the top-level `backends` (`<name>` or `/<name>`), reached
    /// at `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// An OpenAPI service exposed as MCP tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenApiTarget {
    /// The service: `host:port` (plain HTTP; TLS with `policies.backendTLS`), or
    /// `http://host:port` / `https://host[:port]`. The spec's first `servers` URL gives the
    /// base path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A named backend. Not supported yet: use `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Unsupported>,
    /// The spec (OpenAPI 3.0 or 3.1, JSON or YAML): `{file: <path>}`, inline text, or
    /// `{url: <URL>}` (fetched when first needed).
    pub schema: super::common::FileInlineOrRemote,
}

/// A local MCP server process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StdioTarget {
    /// Program to run (looked up on `PATH`).
    pub cmd: String,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables. Values are treated as secrets (redacted in dumps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, Secret>,
    /// Start from an empty environment instead of the gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "clear_env")]
    pub clear_env: Option<bool>,
}
