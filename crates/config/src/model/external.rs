//! Policies that ask another service: `remoteRateLimit` (Envoy's rate-limit service).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Secret, Unsupported};
use super::policy::RateLimitKind;

/// `remoteRateLimit`: asks an Envoy rate-limit service (gRPC
/// `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) before the request goes on.
/// Either one check (`host`, `domain`, `descriptors`, `failureMode`) or
/// `{conditional: [{condition, host, domain, descriptors, …}, …]}`: the first entry whose
/// `condition` holds applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoteRateLimit {
    /// The conditional form: at most 64 entries; an entry without `condition` is the fallback
    /// and must come last. Not together with the fields of the single form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional: Option<Vec<RemoteRateLimit>>,
    /// In a `conditional` entry: CEL over `request`, `source`, `jwt`, `apiKey`, `basicAuth`;
    /// the entry applies when it is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The rate-limit service, `host:port` (gRPC over HTTP/2 cleartext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A named backend (`backends[]` with a `host`) that is the rate-limit service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// A service reference. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Unsupported>,
    /// Policies for the connection to the service. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Unsupported>,
    /// The rate-limit domain sent with every check.
    #[serde(default)]
    pub domain: String,
    /// The descriptors sent with every check; a descriptor whose values cannot be evaluated is
    /// left out, and with none left the service is not asked.
    #[serde(default)]
    pub descriptors: Vec<RemoteRateLimitDescriptor>,
    /// What happens when the service cannot be asked or fails: `failClosed` (default: the
    /// request gets 500) or `failOpen` (the request goes on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<RemoteFailureMode>,
}

impl RemoteRateLimit {
    /// Each check with its condition: the one of the single form, or the conditional entries.
    pub fn entries(&self) -> Vec<(Option<&str>, &RemoteRateLimit)> {
        match &self.conditional {
            Some(list) => list.iter().map(|e| (e.condition.as_deref(), e)).collect(),
            None => vec![(None, self)],
        }
    }

    /// Whether any field of the single form is set (they must not be, beside `conditional`).
    pub fn has_single_fields(&self) -> bool {
        self.host.is_some()
            || self.backend.is_some()
            || self.service.is_some()
            || self.policies.is_some()
            || !self.domain.is_empty()
            || !self.descriptors.is_empty()
            || self.failure_mode.is_some()
    }
}

/// One descriptor: its entries, and how much a request costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoteRateLimitDescriptor {
    /// The descriptor's `key: value` entries, in order; each `value` is a CEL expression
    /// (a string, number or boolean result is sent as text).
    pub entries: Vec<DescriptorEntry>,
    /// `requests` (default); `tokens` (LLM tokens) is not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind: Option<RateLimitKind>,
    /// CEL: how many hits a request counts (an unsigned integer; default 1). When it cannot be
    /// evaluated the descriptor is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
    /// CEL giving the limit the service should apply: `{"unit": "minute", "requestsPerUnit": 100}`
    /// (units `second`, `minute`, `hour`, `day`, `month`, `year`). When it cannot be evaluated
    /// the descriptor is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_override: Option<String>,
}

/// One entry of a descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DescriptorEntry {
    /// The entry's key, sent as is.
    pub key: String,
    /// CEL over `request`, `source`, `jwt`, `apiKey`, `basicAuth` and, on MCP routes, `mcp`
    /// (then each JSON-RPC request of the body is counted with its own `mcp`).
    pub value: String,
}

/// What a remote policy does when its service cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RemoteFailureMode {
    /// Refuse the request (500).
    #[serde(rename = "failClosed", alias = "FailClosed")]
    FailClosed,
    /// Let the request through.
    #[serde(rename = "failOpen", alias = "FailOpen")]
    FailOpen,
}

/// `extAuthz`: asks an external authorization service (Envoy's `ext_authz`: gRPC
/// `envoy.service.auth.v3.Authorization/Check`, or plain HTTP) whether a request may pass.
/// Either one check or `{conditional: [{condition, …}, …]}` (the first entry whose `condition`
/// holds applies).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtAuthz {
    /// The conditional form: at most 64 entries; an entry without `condition` is the fallback
    /// and must come last. Not together with the fields of the single form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional: Option<Vec<ExtAuthz>>,
    /// In a `conditional` entry: CEL over `request`, `source`, `jwt`, `apiKey`, `basicAuth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The authorization service, `host:port` (gRPC over HTTP/2 cleartext, or HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A named backend (`backends[]` with a `host`) that is the authorization service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// A service reference. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Unsupported>,
    /// Policies for the connection to the service. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Unsupported>,
    /// `grpc: {context, metadata}` (the default) or `http: {path, redirect, body,
    /// includeResponseHeaders, addRequestHeaders, metadata}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ExtAuthzProtocol>,
    /// When the service cannot answer: `deny` (default, 403), `allow`, or
    /// `{denyWithStatus: <code>}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<ExtAuthzFailureMode>,
    /// Request headers sent to the service (`:method`, `:path`, `:authority`, `:scheme` for
    /// the pseudo-headers). Default: every header with gRPC, only `authorization` with HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_request_headers: Option<Vec<String>>,
    /// Send the request body too (buffered, at most `maxRequestBytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_request_body: Option<ExtAuthzBody>,
    /// Reuse decisions: the same `key` values within `ttl` give the same answer without asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ExtAuthzCache>,
    /// Also send a `tools/call`'s arguments (JSON) with the MCP method, tool and target that
    /// every check of an MCP request carries (an extension). Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_mcp_arguments: Option<bool>,
}

impl ExtAuthz {
    /// Each check with its condition: the one of the single form, or the conditional entries.
    pub fn entries(&self) -> Vec<(Option<&str>, &ExtAuthz)> {
        match &self.conditional {
            Some(list) => list.iter().map(|e| (e.condition.as_deref(), e)).collect(),
            None => vec![(None, self)],
        }
    }

    /// Whether any field of the single form is set.
    pub fn has_single_fields(&self) -> bool {
        let ExtAuthz { conditional: _, condition: _, host, backend, service, policies, protocol, failure_mode, .. } =
            self;
        host.is_some()
            || backend.is_some()
            || service.is_some()
            || policies.is_some()
            || protocol.is_some()
            || failure_mode.is_some()
            || self.include_request_headers.is_some()
            || self.include_request_body.is_some()
            || self.cache.is_some()
            || self.include_mcp_arguments.is_some()
    }
}

/// How the service is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum ExtAuthzProtocol {
    /// Envoy's `ext_authz` gRPC protocol (`envoy.service.auth.v3.Authorization/Check`).
    Grpc(ExtAuthzGrpc),
    /// Plain HTTP: the request (method, path, chosen headers, body) is sent to the service; a
    /// 2xx answer allows, anything else is passed to the client.
    Http(ExtAuthzHttp),
}

/// `protocol.grpc`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtAuthzGrpc {
    /// Static values sent as the check's `context_extensions` (redacted in `/config_dump`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<std::collections::BTreeMap<String, Secret>>,
    /// Values sent as the check's `metadata_context.filter_metadata`: a CEL expression per
    /// namespace, whose result must be a map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// `protocol.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtAuthzHttp {
    /// CEL: the path (and query) of the check request. Default: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// CEL: when the service answers 401 or 403, redirect the client (302) to this URL instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
    /// CEL: the body of the check request (a string is sent as is, anything else as JSON);
    /// replaces `includeRequestBody`. Redacted in `/config_dump` (it may hold credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Secret>,
    /// Headers of an allowing answer copied onto the request to the backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_response_headers: Vec<String>,
    /// Headers set on the check request, each a CEL expression (`:method` sets the method,
    /// `:path` the path, `:authority` the `Host`). Redacted in `/config_dump`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub add_request_headers: std::collections::BTreeMap<String, Secret>,
    /// Values for `extauthz.<name>` after an allowing answer: CEL over `request` and the
    /// service's `response` (`code`, `headers`, `body`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// What happens when the authorization service cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExtAuthzFailureMode {
    /// Let the request through.
    Allow,
    /// Refuse it with 403.
    Deny,
    /// Refuse it with this status.
    DenyWithStatus(u16),
}

/// `includeRequestBody`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtAuthzBody {
    /// Most bytes sent. Default 8192; at most 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u32>,
    /// Send the first `maxRequestBytes` of a larger body (else such a request gets 413).
    #[serde(default)]
    pub allow_partial_message: bool,
    /// gRPC: send the body as `raw_body` bytes instead of text.
    #[serde(default)]
    pub pack_as_bytes: bool,
}

/// `cache`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtAuthzCache {
    /// CEL expressions whose values together are the cache key (e.g.
    /// `request.headers["authorization"]`). A request whose key cannot be evaluated is not cached.
    pub key: Vec<String>,
    /// How long a decision is reused: a duration (`30s`) or CEL giving seconds, a duration or
    /// a Unix time (it may read `extauthz`).
    pub ttl: String,
    /// Most decisions kept. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<usize>,
}
