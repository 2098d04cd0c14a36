//! `mcpGuardrails`: external MCP processors asked about chosen MCP methods, before the request
//! goes upstream and after its answer comes back (agentgateway's `ExtMcp` protocol).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Unsupported;
use super::external::RemoteFailureMode;

/// `mcpGuardrails`: processors asked, in order, about the MCP methods they name; the first
/// to reject a call answers it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct McpGuardrails {
    /// The processors, in the order they are asked.
    #[serde(default)]
    pub processors: Vec<GuardrailProcessor>,
}

/// One processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardrailProcessor {
    /// `remote`: a service speaking `agentgateway.dev.ext_mcp.ExtMcp` (gRPC).
    pub kind: ProcessorKind,
    /// Which methods the processor sees, and when: keys are an exact method (`tools/call`), a
    /// prefix (`tools/*`), a suffix (`*/list`) or `*`; values `request`, `response`, `full`
    /// (both) or `off`. The most specific key wins (exact, then prefix, then suffix, then `*`;
    /// longer first; then alphabetical). Methods no key matches skip the processor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub methods: BTreeMap<String, GuardrailPhase>,
    /// The service, `host:port` (gRPC over HTTP/2 cleartext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A named backend (`backends[]` with a `host`) that is the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// A service reference. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Unsupported>,
    /// Policies for the connection to the service (e.g. `backendTLS`). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Unsupported>,
    /// When the service cannot answer, or answers something unusable: `failClosed` (default:
    /// the call gets a JSON-RPC error) or `failOpen` (the processor is skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<RemoteFailureMode>,
    /// Values sent with every check as `metadata_context`: a CEL expression per key, over
    /// `request`, `source`, `jwt`, `apiKey`, `basicAuth`, `extauthz`. A key whose expression
    /// cannot be evaluated is left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Which request headers the service sees with a request-phase check. Default: every
    /// header and the pseudo-headers `:method`, `:path`, `:authority`, `:scheme`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<GuardrailHeaders>,
}

/// The kinds of processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProcessorKind {
    /// An external gRPC service.
    Remote,
}

/// When a processor runs for a method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GuardrailPhase {
    /// Not at all.
    #[default]
    Off,
    /// Before the request goes upstream.
    Request,
    /// After the upstream's answer (a result; errors are not checked).
    Response,
    /// Both.
    Full,
}

impl GuardrailPhase {
    pub fn request(self) -> bool {
        matches!(self, GuardrailPhase::Request | GuardrailPhase::Full)
    }

    pub fn response(self) -> bool {
        matches!(self, GuardrailPhase::Response | GuardrailPhase::Full)
    }
}

/// `requestHeaders`: header names match without regard to case; pseudo-headers exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardrailHeaders {
    /// Only these (empty: every header and pseudo-header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// Never these; wins over `allowed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disallowed: Vec<String>,
}

/// The request pseudo-headers a processor can be shown.
pub const GUARDRAIL_PSEUDO_HEADERS: [&str; 4] = [":method", ":path", ":authority", ":scheme"];

/// Methods whose request phase never runs (as in agentgateway): only their answers are checked.
pub const REQUEST_PHASE_NEVER: [&str; 3] = ["resources/subscribe", "resources/unsubscribe", "completion/complete"];

impl GuardrailProcessor {
    /// The phase for `method`: the most specific matching key's.
    pub fn phase(&self, method: &str) -> GuardrailPhase {
        resolve_phase(&self.methods, method)
    }
}

impl McpGuardrails {
    /// Problems that do not stop the config from loading (agentgateway logs the same ones).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in REQUEST_PHASE_NEVER {
            if self.processors.iter().any(|p| p.phase(m).request()) {
                out.push(format!(
                    "methods match {m:?} with a request phase, but only the response phase runs for this method"
                ));
            }
        }
        let mut bad: Vec<&String> =
            self.processors.iter().flat_map(|p| p.methods.keys()).filter(|k| !pattern_is_matchable(k)).collect();
        bad.sort();
        out.extend(bad.into_iter().map(|k| {
            format!("methods key {k:?} can never match; use an exact method, 'prefix/*', '*/suffix', or '*'")
        }));
        out
    }
}

/// Whether a `methods` key can match anything: a non-empty name, `*`, or one `*` at either end.
pub fn pattern_is_matchable(pattern: &str) -> bool {
    match pattern.matches('*').count() {
        _ if pattern.is_empty() => false,
        0 => true,
        1 => pattern.starts_with('*') || pattern.ends_with('*'),
        _ => false,
    }
}

/// How specifically `pattern` matches `method` (higher wins), `None` when it does not.
fn rank(pattern: &str, method: &str) -> Option<u8> {
    if pattern == "*" {
        return Some(1);
    }
    if let Some(prefix) = pattern.strip_suffix('*')
        && !prefix.contains('*')
        && method.starts_with(prefix)
    {
        return Some(3);
    }
    if let Some(suffix) = pattern.strip_prefix('*')
        && !suffix.contains('*')
        && method.ends_with(suffix)
    {
        return Some(2);
    }
    None
}

/// The phase the most specific key of `methods` gives `method`: exact, then `prefix/*`, then
/// `*/suffix`, then `*`; within a kind the longer key; then the alphabetically first.
pub fn resolve_phase(methods: &BTreeMap<String, GuardrailPhase>, method: &str) -> GuardrailPhase {
    if let Some(p) = methods.get(method) {
        return *p;
    }
    methods
        .iter()
        .filter_map(|(k, p)| rank(k, method).map(|r| (r, k, *p)))
        .max_by(|a, b| (a.0, a.1.len()).cmp(&(b.0, b.1.len())).then_with(|| b.1.cmp(a.1)))
        .map(|(_, _, p)| p)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use GuardrailPhase::*;

    fn table(pairs: &[(&str, GuardrailPhase)]) -> BTreeMap<String, GuardrailPhase> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_most_specific_key_wins() {
        let m = table(&[("*", Request), ("*/list", Response), ("tools/*", Full), ("tools/call", Off)]);
        assert_eq!(resolve_phase(&m, "tools/call"), Off, "exact");
        assert_eq!(resolve_phase(&m, "tools/list"), Full, "prefix over suffix");
        assert_eq!(resolve_phase(&m, "prompts/list"), Response, "suffix over *");
        assert_eq!(resolve_phase(&m, "prompts/get"), Request);
        let m = table(&[("logging/*", Request), ("*/setLevel", Response)]);
        assert_eq!(resolve_phase(&m, "logging/setLevel"), Request, "prefix wins whatever the lengths");
        let m = table(&[("resources/*", Request), ("resources/templates/*", Response)]);
        assert_eq!(resolve_phase(&m, "resources/templates/list"), Response, "the longer prefix");
        assert_eq!(resolve_phase(&m, "resources/read"), Request);
        let m = table(&[("*/list", Response), ("*s/list", Request)]);
        assert_eq!(resolve_phase(&m, "tools/list"), Request, "the longer suffix");
        let m = table(&[("a*", Request), ("b*", Response)]);
        assert_eq!(resolve_phase(&m, "ab"), Request);
        assert_eq!(resolve_phase(&table(&[]), "tools/call"), Off, "no key: skipped");
        let m = table(&[("*a", Request), ("*b", Response)]);
        assert_eq!(resolve_phase(&m, "x"), Off);
    }

    #[test]
    fn warnings_name_unmatchable_keys_and_request_phases_that_never_run() {
        let p = |m: &[(&str, GuardrailPhase)]| GuardrailProcessor {
            kind: ProcessorKind::Remote,
            methods: table(m),
            host: Some("h:1".into()),
            backend: None,
            service: None,
            policies: None,
            failure_mode: None,
            metadata: BTreeMap::new(),
            request_headers: None,
        };
        let g = McpGuardrails { processors: vec![p(&[("*", Full)])] };
        let w = g.warnings();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("resources/subscribe"));
        let g = McpGuardrails { processors: vec![p(&[("*", Response), ("tools/call", Full)])] };
        assert!(g.warnings().is_empty());
        let g = McpGuardrails {
            processors: vec![p(&[("a*b", Response), ("**", Response), ("", Response), ("tools/*", Response)])],
        };
        let w = g.warnings();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().all(|w| w.contains("can never match")));
    }
}
