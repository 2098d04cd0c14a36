//! `binds[]` → `listeners[]` → `routes[]`: where requests come in and how they are matched.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backend::RouteBackend;
use super::common::Unsupported;
use super::policy::{GatewayPolicies, RoutePolicies};
use super::tls::ListenerTls;

/// A port to listen on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bind {
    /// TCP port, on all IPv4 interfaces (`0.0.0.0`). `0` picks a free port.
    pub port: u16,
    /// Listeners sharing this port, told apart by `hostname`.
    pub listeners: Vec<Listener>,
    /// Not supported yet (the protocol follows the listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_protocol: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Unsupported>,
}

/// A listener: a protocol, an optional hostname and its routes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Listener {
    /// Name, for logs and metrics. Default `listener<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace, for logs and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Host name (or `*.suffix` wildcard) this listener answers for. Empty: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `HTTP` (default) or `HTTPS` (needs `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ListenerProtocol>,
    /// Certificate, key and TLS settings for `HTTPS` (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// HTTP routes, tried from the most to the least specific match.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Policies applied to every request on this listener, before routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<GatewayPolicies>,
    /// TCP routes. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_routes: Option<Unsupported>,
}

/// Listener protocol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum ListenerProtocol {
    /// Plain HTTP/1.1 and HTTP/2 (h2c).
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP over TLS.
    #[serde(rename = "HTTPS")]
    Https,
    /// TLS passthrough. Not supported yet.
    #[serde(rename = "TLS")]
    Tls,
    /// Raw TCP. Not supported yet.
    #[serde(rename = "TCP")]
    Tcp,
    /// Istio HBONE. Not supported yet.
    #[serde(rename = "HBONE")]
    Hbone,
}

/// An HTTP route: which requests it takes, what policies apply, where they go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Route {
    /// Name, for logs and metrics. Default `route<index>`.
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

/// All conditions in one match must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteMatch {
    /// Path condition. Default `pathPrefix: /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// HTTP method, e.g. `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<ValueMatch>,
}

/// How a path matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum PathMatch {
    /// The path equals this string.
    Exact(String),
    /// The path starts with this prefix, at a `/` boundary (`/mcp` matches `/mcp` and
    /// `/mcp/x`, not `/mcpx`).
    PathPrefix(String),
    /// The whole path matches this regular expression.
    Regex(String),
}

/// A named header or query parameter condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValueMatch {
    /// Header or parameter name (headers are case-insensitive).
    pub name: String,
    /// The value condition.
    pub value: StringMatch,
}

/// How a value matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum StringMatch {
    /// The value equals this string.
    Exact(String),
    /// The whole value matches this regular expression.
    Regex(String),
}

/// Header name → value.
pub type HeaderMap = BTreeMap<String, String>;
