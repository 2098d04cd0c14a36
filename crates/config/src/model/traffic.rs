//! Traffic policies on routes: answering directly, redirecting, rewriting the URL, injected
//! delay, retries and mirroring.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Duration, Unsupported};

/// `directResponse`: the gateway answers the request itself. Either `status` (with `body`,
/// `bodyExpression`, `headers`), or `conditional: [...]` (the first entry whose condition
/// holds answers; when none does, the request goes on to the backend).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DirectResponse {
    /// HTTP status of the answer (100–599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The body, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// CEL computing the body (over `request`, `source`, `jwt`, `apiKey`, `basicAuth`): a
    /// string or bytes as they are, anything else as JSON. Not with `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_expression: Option<String>,
    /// Response headers, each a CEL expression giving its value (a header whose expression
    /// fails or is not a string is left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The conditional form: at most 64 entries; the first whose `condition` holds answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional: Option<Vec<ConditionalDirectResponse>>,
}

/// One entry of `directResponse.conditional`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionalDirectResponse {
    /// CEL over `request`, `source`, `jwt`, `apiKey`, `basicAuth` (and `random()`); absent:
    /// always (the fallback, last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// HTTP status of the answer.
    pub status: u16,
    /// The body, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// CEL computing the body. Not with `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_expression: Option<String>,
    /// Response headers, each a CEL expression giving its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// How the authority (host and port) changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum AuthorityRewrite {
    /// The whole authority: `host` or `host:port`.
    Full(String),
    /// The host only; the port stays.
    Host(String),
    /// The port only (dropped when it is the scheme's default).
    Port(u16),
    /// The backend's own authority (`urlRewrite` only; what a `host:` backend gets by default).
    Auto,
    /// Unchanged: the client's `Host` goes to the backend.
    None,
}

/// How the path changes; the query string is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum PathRewrite {
    /// The whole path.
    Full(String),
    /// The part the route's `pathPrefix` matched is replaced by this.
    Prefix(String),
}

/// `requestRedirect`: answer with a redirect to a URL derived from the request's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `http` or `https`. Default: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// `{full}`, `{host}` or `{port}`. Default: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<AuthorityRewrite>,
    /// `{full}` or `{prefix}`. Default: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// A 3xx status. Default `302`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// `urlRewrite`: change the URL before the request goes to the backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UrlRewrite {
    /// The `Host` the backend receives: `{full}`, `{host}`, `{port}`, `auto` (the backend's,
    /// the default) or `none` (the client's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<AuthorityRewrite>,
    /// `{full}` or `{prefix}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

/// `delay`: latency injected before the request goes on (fault injection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delay {
    /// A duration (`2s`), or CEL giving a duration (`duration("500ms")`) or a number of
    /// milliseconds (`random() < 0.1 ? 2000 : 0`). Zero, negative or a failed evaluation: no
    /// delay. At most 1 hour.
    pub duration: String,
}

/// `retry`: send the request again when the backend fails or answers with one of `codes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retry {
    /// Retries after the first attempt (as agentgateway's proxy counts them: `attempts: 2`
    /// makes at most 3 tries). Default 1, at most 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u8>,
    /// Wait between attempts (counted against `requestTimeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
    /// Response statuses that are retried. Connection failures and backend time-outs always are.
    #[serde(default)]
    pub codes: Vec<u16>,
    /// CEL over the request; when false, the request is tried once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precondition: Option<String>,
    /// CEL over `response` (`response.code`, `response.headers`); when true the response is
    /// retried too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// `requestMirror`: a copy of a share of the requests goes to another backend; its answer is
/// dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestMirror {
    /// Where the copies go: `{host: host:port}`.
    pub backend: MirrorBackend,
    /// The share of requests mirrored, from 0.0 to 1.0.
    pub percentage: f64,
}

/// A mirror's backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MirrorBackend {
    /// `host:port`, plain HTTP.
    pub host: String,
}

/// `csrf`: state-changing requests (not `GET`, `HEAD`, `OPTIONS`) from another site are refused
/// with 403. A request is same-site when `Sec-Fetch-Site` says `same-origin` or `none`, or,
/// without that header, when it has no `Origin` (or `null`) or its `Origin` is the gateway's
/// own (scheme and `Host`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Csrf {
    /// Other origins trusted to send such requests, e.g. `https://app.example.com`.
    #[serde(default)]
    pub additional_origins: Vec<String>,
}

/// `transformations`: CEL changes to the request before the backend and to the response
/// before the client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Transformations {
    /// Changes to the request (CEL over `request`, `source`, `jwt`, `apiKey`, `basicAuth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Transform>,
    /// Changes to the response (CEL over `response` and the request's variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Transform>,
    /// The conditional form. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional: Option<Unsupported>,
}

/// One side's changes, applied in this order: `replace`, `add`, `set`, `remove`, `body`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Transform {
    /// Headers to append: name → CEL giving the value (a failed or non-string value: not added).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Headers to set (replacing the values there): name → CEL giving the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// CEL giving every header at once: a map of name to a string or a list of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<String>,
    /// CEL giving the new body (a string or bytes as they are, anything else as JSON). The
    /// body is read whole (at most 1 MiB); `request.body` / `response.body` is it, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Values for the access log. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Unsupported>,
}

/// `buffer`: read bodies whole before they go on (so that a retry can replay a request, or a
/// backend gets a body with its length).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Buffer {
    /// Read the request body before the backend gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<BufferBody>,
    /// Read the backend's response body before the client gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<BufferBody>,
}

/// How much of a body is read, and what a larger one gets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BufferBody {
    /// Most bytes read. Default 2 MiB (agentgateway's `maxBufferSize` default); at most 64 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// `failClosed` (default): a larger request gets 413, a larger response 502; `failOpen`:
    /// the first `maxBytes` are read and the rest streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<BufferFailureMode>,
}

/// What a body larger than `maxBytes` gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BufferFailureMode {
    /// Refused.
    #[default]
    FailClosed,
    /// Streamed on after the first `maxBytes`.
    FailOpen,
}
