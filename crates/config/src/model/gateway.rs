//! agentgateway's front-door shapes: `gateways`, `routes`, named `backends` and the `mcp:`
//! shorthand. Each is lowered into `binds` (see `crate::lower`), so the gateway runs one form.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backend::{FailureMode, McpBackend, McpTarget, PrefixMode, RouteBackend, StatefulMode};
use super::backend_policy::BackendPolicies;
use super::common::Unsupported;
use super::listener::{Route, RouteMatch};
use super::policy::{ApiKeyAuth, BasicAuth, Cors, GatewayPolicies, JwtAuth, RoutePolicies, RuleSet};
use super::tls::ListenerTls;

/// The port of a standalone `mcp:` block that sets none.
pub const DEFAULT_MCP_PORT: u16 = 3000;
/// The gateway that `routes` and `mcp` attach to when they name none.
pub const DEFAULT_GATEWAY: &str = "default";

/// `gateways:`, by name.
pub type Gateways = BTreeMap<String, Gateway>;

/// A gateway: a port and its listeners, which routes and `mcp` attach to by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gateway {
    /// TCP port, on all IPv4 interfaces. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `HTTP` (default). `HTTPS`, `TCP` and `TLS` are not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<GatewayProtocol>,
    /// Several listeners on this port, told apart by `hostname`, referenced as
    /// `<gateway>/<listener>`. With `listeners`, only `port` may be set on the gateway itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<GatewayListener>,
    /// Certificate and key (HTTPS). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Validate JWT bearer tokens on every request to this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_auth: Option<JwtAuth>,
    /// Require an API key on every request to this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// Require HTTP Basic credentials on every request to this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// HTTP-level CEL rules for every request to this gateway; a denied request gets 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RuleSet>,
    /// Cross-origin resource sharing for every request to this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Unsupported>,
    /// Ask an external authorization service for every request, before routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_authz: Option<super::external::ExtAuthz>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_proc: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformations: Option<Unsupported>,
}

/// One listener of a gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayListener {
    /// Name, for references (`<gateway>/<name>`). Default `listener<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host name (or `*.suffix` wildcard) this listener answers for. Empty: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `HTTP` (default). `HTTPS`, `TCP` and `TLS` are not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<GatewayProtocol>,
    /// Certificate and key (HTTPS). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Validate JWT bearer tokens on every request to this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_auth: Option<JwtAuth>,
    /// Require an API key on every request to this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// Require HTTP Basic credentials on every request to this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// HTTP-level CEL rules for every request to this listener; a denied request gets 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RuleSet>,
    /// Cross-origin resource sharing for every request to this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Unsupported>,
    /// Ask an external authorization service for every request, before routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_authz: Option<super::external::ExtAuthz>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_proc: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformations: Option<Unsupported>,
}

/// The policy fields a gateway or gateway listener carries directly, as one listener policy
/// block (`None` when none is set).
macro_rules! flattened_policies {
    ($ty:ty) => {
        impl $ty {
            pub fn policies(&self) -> Option<GatewayPolicies> {
                let p = GatewayPolicies {
                    jwt_auth: self.jwt_auth.clone(),
                    api_key: self.api_key.clone(),
                    basic_auth: self.basic_auth.clone(),
                    authorization: self.authorization.clone(),
                    cors: self.cors.clone(),
                    local_rate_limit: None,
                    oidc: self.oidc.clone(),
                    ext_authz: self.ext_authz.clone(),
                    ext_proc: self.ext_proc.clone(),
                    transformations: self.transformations.clone(),
                };
                (p != GatewayPolicies::default()).then_some(p)
            }
        }
    };
}
flattened_policies!(Gateway);
flattened_policies!(GatewayListener);

/// A gateway's or gateway listener's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GatewayProtocol {
    /// Plain HTTP/1.1 and HTTP/2 (h2c).
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP over TLS. Not supported yet.
    #[serde(rename = "HTTPS")]
    Https,
    /// Raw TCP (`tcpRoutes`). Not supported yet.
    #[serde(rename = "TCP")]
    Tcp,
    /// TLS passthrough or termination (`tcpRoutes`). Not supported yet.
    #[serde(rename = "TLS")]
    Tls,
}

impl GatewayProtocol {
    /// Whether HTTP routes (and `mcp`) can attach to it.
    pub fn serves_http(self) -> bool {
        matches!(self, GatewayProtocol::Http | GatewayProtocol::Https)
    }

    /// The protocol in effect: written, or HTTPS when `tls` is set, else HTTP.
    pub fn effective(written: Option<GatewayProtocol>, tls: bool) -> GatewayProtocol {
        written.unwrap_or(if tls { GatewayProtocol::Https } else { GatewayProtocol::Http })
    }
}

/// Which gateways something attaches to: `<gateway>` (all its listeners) or
/// `<gateway>/<listener>`, one or a list.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum GatewayRefs {
    /// One reference.
    One(String),
    /// Several references.
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for GatewayRefs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Refs;
        impl<'de> serde::de::Visitor<'de> for Refs {
            type Value = GatewayRefs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a gateway (`<gateway>` or `<gateway>/<listener>`) or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<GatewayRefs, E> {
                Ok(GatewayRefs::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<GatewayRefs, A::Error> {
                let mut refs = Vec::new();
                while let Some(r) = seq.next_element::<String>()? {
                    refs.push(r);
                }
                Ok(GatewayRefs::Many(refs))
            }
        }
        d.deserialize_any(Refs)
    }
}

impl GatewayRefs {
    pub fn as_slice(&self) -> &[String] {
        match self {
            GatewayRefs::One(r) => std::slice::from_ref(r),
            GatewayRefs::Many(rs) => rs,
        }
    }
}

/// An HTTP route attached to gateways (top-level `routes[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttachedRoute {
    /// The gateways (`<gateway>` or `<gateway>/<listener>`) this route is served on.
    /// Default: the `default` gateway, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<GatewayRefs>,
    /// Name, for logs and metrics. Default `route<index>` (its index on each listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace, for logs and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Rule name, for logs and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// Host names (or `*.suffix` wildcards) this route answers for. Empty: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Conditions; the route takes a request when any one of them matches.
    /// Default: every path (`pathPrefix: /`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
    /// Policies for requests on this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<RoutePolicies>,
    /// Where requests go. Exactly one backend is supported per route.
    #[serde(default)]
    pub backends: Vec<RouteBackend>,
}

impl AttachedRoute {
    /// The route as it sits on each listener it attaches to.
    pub fn route(&self) -> Route {
        Route {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            rule_name: self.rule_name.clone(),
            hostnames: self.hostnames.clone(),
            matches: self.matches.clone(),
            policies: self.policies.clone(),
            backends: self.backends.clone(),
        }
    }
}

/// A named backend (top-level `backends[]`), referenced as `backend: <name>` or
/// `backend: /<name>`. Exactly one of `host`, `mcp`, `ai`, `aws`, `internal` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedBackend {
    /// The name references use.
    pub name: String,
    /// Plain HTTP reverse proxy to `host:port`; also what an MCP target's
    /// `{backend, path}` connects to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// An MCP backend: one or more MCP servers behind one endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpBackend>,
    /// An LLM backend. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<Unsupported>,
    /// An AWS backend (Bedrock AgentCore). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Unsupported>,
    /// The in-process admin API. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<Unsupported>,
    /// Policies for this backend, wherever it is referenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<BackendPolicies>,
}

impl NamedBackend {
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        super::common::present([("ai", &self.ai), ("aws", &self.aws), ("internal", &self.internal)])
    }

    /// How many backend kinds are set (exactly one is valid).
    pub fn kinds(&self) -> usize {
        [self.host.is_some(), self.mcp.is_some(), self.ai.is_some(), self.aws.is_some(), self.internal.is_some()]
            .iter()
            .filter(|k| **k)
            .count()
    }
}

/// The name a `backend:` reference points at: `/name` and `name` are the same.
pub fn backend_ref_name(reference: &str) -> &str {
    reference.strip_prefix('/').unwrap_or(reference)
}

/// The `mcp:` shorthand: one MCP endpoint, served on its own port or on gateways.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SimpleMcp {
    /// The gateways (`<gateway>` or `<gateway>/<listener>`) to serve MCP on, at `/mcp`,
    /// `/sse` and `/.well-known/…`. Default: the `default` gateway when there is one and
    /// `port` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<GatewayRefs>,
    /// A port of its own (default 3000), where every path is the MCP endpoint. Cannot be
    /// combined with `gateways`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
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
    /// What happens when a target fails: `failClosed` (default) or `failOpen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureMode>,
    /// Refuse requests whose `Host` or `Origin` is not localhost (403). Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_rebinding_protection: Option<bool>,
    /// Policies for MCP requests: any route policy (`cors`, `jwtAuth`, `mcpAuthorization`,
    /// `backendAuth`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<RoutePolicies>,
    /// Tool-definition pinning (an extension), as on an MCP backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_pinning: Option<super::ToolPinning>,
}

impl SimpleMcp {
    /// The MCP backend it describes.
    pub fn backend(&self) -> McpBackend {
        McpBackend {
            targets: self.targets.clone(),
            stateful_mode: self.stateful_mode,
            prefix_mode: self.prefix_mode,
            failure_mode: self.failure_mode,
            dns_rebinding_protection: self.dns_rebinding_protection,
            sse_keep_alive: None,
            server: None,
            tool_pinning: self.tool_pinning.clone(),
        }
    }
}
