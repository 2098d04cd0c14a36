//! `binds[]` → `listeners[]` → `routes[]`: where requests come in and how they are matched.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backend::RouteBackend;
use super::common::Unsupported;
use super::policy::{GatewayPolicies, RoutePolicies};

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

/// Server certificate and TLS settings for an `HTTPS` listener. The files are PEM, relative to
/// the working directory, and watched: a rotated certificate is served to new connections
/// without a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerTls {
    /// PEM certificate chain file (leaf first), relative to the working directory.
    pub cert: String,
    /// PEM private key file (PKCS#8, PKCS#1 or SEC1), relative to the working directory.
    pub key: String,
    /// PEM file of CA certificates that client certificates must chain to (mutual TLS): a client
    /// without a certificate signed by one of them is refused during the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Cipher suites allowed, e.g. `[TLS_AES_256_GCM_SHA384,
    /// TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]`. Default: rustls' safe defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suites: Option<Vec<CipherSuite>>,
    /// Oldest TLS version accepted: `TLS_V1_2` (default) or `TLS_V1_3`.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "minTlsVersion")]
    #[serde(rename = "minTLSVersion")]
    pub min_tls_version: Option<TlsVersion>,
    /// Newest TLS version accepted: `TLS_V1_3` (default) or `TLS_V1_2`.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "maxTlsVersion")]
    #[serde(rename = "maxTLSVersion")]
    pub max_tls_version: Option<TlsVersion>,
    /// Key exchange groups. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_exchange_groups: Option<Unsupported>,
    /// Certificate source (`static`, `dynamicCa`). Not supported yet (certificates are static).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Unsupported>,
    /// SPIFFE workload identity. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<Unsupported>,
}

/// A TLS protocol version, named as agentgateway names it. Only 1.2 and 1.3 can be used
/// (older versions are insecure and not implemented by rustls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[allow(non_camel_case_types)]
pub enum TlsVersion {
    /// TLS 1.0: refused.
    TLS_V1_0,
    /// TLS 1.1: refused.
    TLS_V1_1,
    /// TLS 1.2.
    TLS_V1_2,
    /// TLS 1.3.
    TLS_V1_3,
}

/// A TLS cipher suite by its IANA name (OpenSSL and `TLS13_` names are accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(non_camel_case_types)]
pub enum CipherSuite {
    /// TLS 1.3.
    #[serde(alias = "TLS13_AES_256_GCM_SHA384")]
    TLS_AES_256_GCM_SHA384,
    /// TLS 1.3.
    #[serde(alias = "TLS13_AES_128_GCM_SHA256")]
    TLS_AES_128_GCM_SHA256,
    /// TLS 1.3.
    #[serde(alias = "TLS13_CHACHA20_POLY1305_SHA256")]
    TLS_CHACHA20_POLY1305_SHA256,
    /// TLS 1.2, ECDSA certificates.
    #[serde(alias = "ECDHE-ECDSA-AES256-GCM-SHA384")]
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    /// TLS 1.2, ECDSA certificates.
    #[serde(alias = "ECDHE-ECDSA-AES128-GCM-SHA256")]
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    /// TLS 1.2, ECDSA certificates.
    #[serde(alias = "ECDHE-ECDSA-CHACHA20-POLY1305")]
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    /// TLS 1.2, RSA certificates.
    #[serde(alias = "ECDHE-RSA-AES256-GCM-SHA384")]
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    /// TLS 1.2, RSA certificates.
    #[serde(alias = "ECDHE-RSA-AES128-GCM-SHA256")]
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    /// TLS 1.2, RSA certificates.
    #[serde(alias = "ECDHE-RSA-CHACHA20-POLY1305")]
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
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
