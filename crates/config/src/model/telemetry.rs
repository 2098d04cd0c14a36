//! Telemetry settings as the user writes them: `frontendPolicies.accessLog`,
//! `frontendPolicies.tracing`, and the deprecated `config.logging.{filter, fields}` and
//! `config.tracing.{fields, randomSampling, clientSampling}` that mean the same.
//! The CEL in them is compiled by the gateway's resolve step.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::common::Unsupported;
use super::settings::OtlpProtocol;

/// `frontendPolicies.accessLog` (alias `logging`): which requests the access log records, and
/// which fields it adds or drops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessLog {
    /// CEL expression; only requests for which it is `true` are logged (an error or a
    /// non-boolean result: not logged). Default: every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Fields to add to each access-log line: name → CEL expression over `request`,
    /// `response`, `jwt`, `mcp`, `source`, `apiKey`, `basicAuth`. A field whose expression fails
    /// is left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Names of the built-in access-log fields to leave out (e.g. `peer`, `jwt.sub`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Export of access-log records over OTLP, besides the log on standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpLogs>,
    /// Request log to a database. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Unsupported>,
}

/// `accessLog.otlp`: where and which access-log records are exported as OTLP log records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtlpLogs {
    /// The collector, `host:port` (e.g. `localhost:4317`); plain text. Read at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A named backend as the collector. Not supported yet: use `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Unsupported>,
    /// A Kubernetes service as the collector. Not supported yet: use `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Unsupported>,
    /// Policies for the connection to the collector. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Unsupported>,
    /// `grpc` (default) or `http` (protobuf over HTTP, `POST <path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OtlpProtocol>,
    /// With `protocol: http`: the path to post to. Default `/v1/logs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// CEL; only requests for which it is `true` are exported. Default: the access log's
    /// `filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Fields of the exported records (`add`: CEL, `remove`: built-in names). Default: the
    /// access log's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<LogFields>,
}

/// `config.logging.fields` and `config.tracing.fields` (deprecated forms): fields to add (CEL)
/// and built-in fields to remove.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogFields {
    /// Name → CEL expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Names of built-in fields to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `frontendPolicies.tracing`: OTLP trace export for every request, with sampling and span
/// attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FrontendTracing {
    /// The collector, `host:port` (e.g. `localhost:4317`); plain text (no TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A named backend as the collector. Not supported yet: use `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Unsupported>,
    /// A Kubernetes service as the collector. Not supported yet: use `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Unsupported>,
    /// Policies for the connection to the collector. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Unsupported>,
    /// `grpc` (default) or `http` (protobuf over HTTP, `POST <path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OtlpProtocol>,
    /// With `protocol: http`: the path to post to. Default `/v1/traces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Span attributes to add: name → CEL expression (same variables as the access log).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Resource attributes (CEL). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Unsupported>,
    /// Names of built-in span attributes to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Share of requests without a client trace that start one: `true`, `false`, a number from
    /// 0 to 1, or a CEL expression giving one of those. Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_sampling: Option<Sampling>,
    /// For requests that carry a `traceparent`: whether to trace them (the client's own
    /// sampled flag still decides whether spans are exported). Same forms; default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_sampling: Option<Sampling>,
    /// CEL expression; only requests for which it is `true` export their spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A sampling decision: `true`/`false`, a ratio from 0 to 1, or a CEL expression (as text)
/// that yields one of those. Held as the CEL source.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling(pub String);

impl<'de> Deserialize<'de> for Sampling {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Int(i64),
            Float(f64),
            Text(String),
        }
        let source = match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected true, false, a number from 0 to 1, or a CEL expression"))?
        {
            Raw::Bool(b) => b.to_string(),
            Raw::Int(n) => format!("{n}.0"),
            Raw::Float(f) => format!("{f:?}"),
            Raw::Text(s) => s,
        };
        Ok(Sampling(source))
    }
}

impl Serialize for Sampling {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for Sampling {
    fn schema_name() -> Cow<'static, str> {
        "Sampling".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["boolean", "number", "string"],
            "description": "true, false, a ratio from 0 to 1, or a CEL expression yielding one of those."
        })
    }
}
