//! TLS settings: HTTPS listeners (`tls`), `frontendPolicies.tls`, and TLS to upstreams
//! (`backendTLS`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Duration, Unsupported};

/// Server certificate and TLS settings for an `HTTPS` listener. The files are PEM, relative to
/// the working directory, and watched: a rotated certificate is served to new connections
/// without a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerTls {
    /// PEM certificate chain file (leaf first), relative to the working directory. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// PEM private key file (PKCS#8, PKCS#1 or SEC1), relative to the working directory.
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
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

/// TLS settings for client connections on every `HTTPS` listener. A listener's own
/// `tls.minTLSVersion`, `maxTLSVersion` and `cipherSuites` take precedence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FrontendTls {
    /// Time allowed for a client to complete the TLS handshake; then the connection is closed.
    /// Default `15s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<Duration>,
    /// Oldest TLS version accepted: `TLS_V1_2` (default) or `TLS_V1_3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    /// Newest TLS version accepted: `TLS_V1_3` (default) or `TLS_V1_2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<TlsVersion>,
    /// Cipher suites allowed (see a listener's `tls.cipherSuites`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suites: Option<Vec<CipherSuite>>,
    /// ALPN protocols offered. Not supported yet (always `h2`, `http/1.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Unsupported>,
    /// Key exchange groups. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_exchange_groups: Option<Unsupported>,
}

/// TLS to an upstream (`backendTLS`): on a route (every backend and MCP target of it), a
/// backend's or named backend's `policies`, or an MCP target's `policies`. With it the
/// connection always uses TLS (a `host:` backend or an `http://` target too). Files are PEM,
/// relative to the working directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendTls {
    /// CA certificates that the upstream's certificate must chain to. Default: the system's
    /// root certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Client certificate chain to present to the upstream (with `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Private key of `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Server name sent as SNI and verified in the upstream's certificate. Default: the
    /// target's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Names (DNS names or IP addresses) accepted in the upstream's certificate instead of the
    /// server name; the chain is still verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<Vec<String>>,
    /// Do not verify the upstream's certificate at all (anyone in the path can read and change
    /// the traffic). A warning is logged at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Verify the upstream's certificate chain but not its name. A warning is logged at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_host: Option<bool>,
    /// ALPN protocols offered. Default `[http/1.1]` (the upstream client speaks HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
    /// Key exchange groups. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_exchange_groups: Option<Unsupported>,
    /// SPIFFE workload identity. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<Unsupported>,
}
