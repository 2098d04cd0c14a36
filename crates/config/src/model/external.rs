//! Policies that ask another service: `remoteRateLimit` (Envoy's rate-limit service).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Unsupported;
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
