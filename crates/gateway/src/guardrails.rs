//! `mcpGuardrails`: the relay's [`Guardrails`] plug point, implemented with agentgateway's
//! `ExtMcp` gRPC protocol (`ext_mcp.rs`) over the shared gRPC client (`grpc.rs`).
//!
//! Per client request the route's processors are bound to what they may see (the request's
//! headers and CEL variables); the relay then asks them about the MCP calls their `methods`
//! name. Processors run in order: a rewrite is handed to the next one, the first refusal
//! answers the call. A processor that cannot be asked (down, slow past 10 s, an answer over
//! 1 MiB) or that answers something unusable (no decision, a rewrite that is not JSON of the
//! right shape) is skipped with `failOpen`, and refuses the call with `failClosed` (default).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agw_config::model::{GuardrailPhase, McpGuardrails, RemoteFailureMode, resolve_phase};
use agw_config::{FieldError, FieldPath};
use agw_mcp::guardrails::{self as hooks, Call, Check, Decided, Guardrails, HeaderEdits, Outcome};
use agw_mcp::jsonrpc::{ErrorObject, code};
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::Uses;
use http::request::Parts;
use serde_json::Value;
use tracing::{debug, warn};

use crate::envoy::Struct;
use crate::ext_mcp::{
    CHECK_REQUEST, CHECK_RESPONSE, Decision, HeaderMutation, McpHeader, McpRequest, McpRequestResult, McpResponse,
    McpResponseResult,
};

/// Longest a check may take, connecting included (agentgateway's).
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Processor {
    name: String,
    methods: BTreeMap<String, GuardrailPhase>,
    service: crate::grpc::Service,
    fail_open: bool,
    metadata: Vec<(String, Expression)>,
    /// Lowercase header names (pseudo-headers as written); empty: all.
    allowed: Vec<String>,
    disallowed: Vec<String>,
}

/// A route's (or backend's) `mcpGuardrails` in runtime form.
#[derive(Debug)]
pub(crate) struct GuardrailsPolicy {
    processors: Vec<Processor>,
    uses: Uses,
}

impl GuardrailsPolicy {
    /// Compiles `mcpGuardrails` at `at`; problems go to `errors`, warnings to the log.
    pub(crate) fn resolve(at: &FieldPath, raw: &McpGuardrails, errors: &mut Vec<FieldError>) -> Option<Self> {
        for w in raw.warnings() {
            warn!(policy = %at, "mcpGuardrails: {w}");
        }
        let mut uses = Vec::new();
        let mut processors = Vec::new();
        for (i, p) in raw.processors.iter().enumerate() {
            let at = at.key("processors").index(i);
            let mut metadata = Vec::new();
            for (k, src) in &p.metadata {
                match Expression::compile(src) {
                    Ok(e) => {
                        uses.extend(agw_policy::expr::VARIABLES.iter().filter(|v| e.reads(v)).copied());
                        metadata.push((k.clone(), e));
                    }
                    Err(msg) => errors.push(FieldError::new(at.key("metadata").key(k), msg)),
                }
            }
            // Validation checked `host`; lowering turned `backend` into it.
            let service = match crate::grpc::Service::new(p.host.as_deref().unwrap_or_default()) {
                Ok(s) => s,
                Err(msg) => {
                    errors.push(FieldError::new(at.key("host"), msg));
                    continue;
                }
            };
            let lower = |names: &[String]| names.iter().map(|n| n.to_ascii_lowercase()).collect::<Vec<_>>();
            let headers = p.request_headers.clone().unwrap_or_default();
            processors.push(Processor {
                name: format!("mcpGuardrails.processors[{i}]"),
                methods: p.methods.clone(),
                service,
                fail_open: p.failure_mode == Some(RemoteFailureMode::FailOpen),
                metadata,
                allowed: lower(&headers.allowed),
                disallowed: lower(&headers.disallowed),
            });
        }
        let uses = Uses::of(uses.into_iter().filter(|v| !matches!(*v, "mcp" | "response" | "backend")));
        Some(GuardrailsPolicy { processors, uses })
    }

    /// The request variables its expressions read.
    pub(crate) fn uses(&self) -> Uses {
        self.uses
    }

    /// The processors bound to one client request.
    pub(crate) fn bind(self: &Arc<Self>, parts: &Parts, host: &str, tls: bool, inputs: Inputs) -> Arc<dyn Guardrails> {
        Arc::new(Bound { policy: self.clone(), headers: request_headers(parts, host, tls), inputs })
    }
}

/// The pseudo-headers, then one entry per header value.
fn request_headers(parts: &Parts, host: &str, tls: bool) -> Vec<(String, Vec<u8>)> {
    let mut headers = vec![
        (":method".to_string(), parts.method.as_str().as_bytes().to_vec()),
        (":path".into(), parts.uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes().to_vec()),
        (":authority".into(), host.as_bytes().to_vec()),
        (":scheme".into(), if tls { &b"https"[..] } else { &b"http"[..] }.to_vec()),
    ];
    headers.extend(parts.headers.iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())));
    headers
}

/// The processors and what they may see of one client request.
#[derive(Debug)]
struct Bound {
    policy: Arc<GuardrailsPolicy>,
    /// Pseudo-headers first, then one entry per header value.
    headers: Vec<(String, Vec<u8>)>,
    inputs: Inputs,
}

impl Processor {
    fn phase(&self, method: &str) -> GuardrailPhase {
        resolve_phase(&self.methods, method)
    }

    fn shows(&self, name: &str) -> bool {
        !self.disallowed.iter().any(|d| d == name)
            && (self.allowed.is_empty() || self.allowed.iter().any(|a| a == name))
    }

    fn metadata(&self, inputs: &Inputs) -> Option<Struct> {
        if self.metadata.is_empty() {
            return None;
        }
        let fields = self.metadata.iter().filter_map(|(k, e)| Some((k.clone(), e.eval_json(inputs)?))).collect();
        Struct::from_json(&Value::Object(fields))
    }

    /// With the processor's header changes. `Err`: why the processor could not be used (its
    /// failure mode decides).
    async fn request(
        &self,
        bound: &Bound,
        call: Call<'_>,
        params: Option<&Value>,
    ) -> Result<(Outcome, Option<HeaderMutation>), String> {
        let request = McpRequest {
            service_names: call.targets.iter().map(|t| t.to_string()).collect(),
            method: call.method.to_string(),
            metadata_context: self.metadata(&bound.inputs),
            mcp_request: params.map(|p| serde_json::to_vec(p).expect("JSON serialises")),
            headers: bound
                .headers
                .iter()
                .filter(|(k, _)| self.shows(k))
                .map(|(k, v)| McpHeader { key: k.clone(), value: v.clone() })
                .collect(),
        };
        let answer: McpRequestResult =
            self.service.call(CHECK_REQUEST, &request, CHECK_TIMEOUT).await.map_err(|e| e.to_string())?;
        if answer.metadata.is_some() {
            debug!(processor = %self.name, "metadata is not used (see docs/compatibility.md)");
        }
        let outcome = match answer.result {
            Some(Decision::Pass(_)) => Outcome::Pass,
            // A call checked for all its targets has no params to replace (as agentgateway).
            Some(Decision::Mutated(_)) if params.is_none() => Outcome::Pass,
            Some(Decision::Mutated(bytes)) => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("rewritten params: {e}"))?;
                hooks::valid_params(call.method, params, &v)?;
                Outcome::Mutated(v)
            }
            Some(Decision::Error(e)) => Outcome::Reject(e.to_error()),
            None => return Err("the answer holds no decision".into()),
        };
        Ok((outcome, answer.header_mutation))
    }

    async fn response(&self, bound: &Bound, call: Call<'_>, result: &Value) -> Result<Outcome, String> {
        let request = McpResponse {
            service_names: call.targets.iter().map(|t| t.to_string()).collect(),
            method: call.method.to_string(),
            metadata_context: self.metadata(&bound.inputs),
            mcp_response: serde_json::to_vec(result).expect("JSON serialises"),
        };
        let answer: McpResponseResult =
            self.service.call(CHECK_RESPONSE, &request, CHECK_TIMEOUT).await.map_err(|e| e.to_string())?;
        match answer.result {
            Some(Decision::Pass(_)) => Ok(Outcome::Pass),
            Some(Decision::Mutated(bytes)) => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("rewritten result: {e}"))?;
                hooks::valid_result(call.method, &v)?;
                Ok(Outcome::Mutated(v))
            }
            Some(Decision::Error(e)) => Ok(Outcome::Reject(e.to_error())),
            None => Err("the answer holds no decision".into()),
        }
    }

    /// What a processor that could not be used means for the call.
    fn failed(&self, call: Call<'_>, why: &str) -> Option<Outcome> {
        if self.fail_open {
            warn!(processor = %self.name, method = call.method, error = why, "guardrail failed; skipped (failOpen)");
            return None;
        }
        warn!(processor = %self.name, method = call.method, error = why, "guardrail failed; call refused");
        Some(Outcome::Reject(ErrorObject {
            code: code::INTERNAL_ERROR,
            message: "mcpGuardrails check failed".into(),
            data: None,
        }))
    }
}

impl Guardrails for Bound {
    fn runs_request(&self, method: &str) -> bool {
        self.policy.processors.iter().any(|p| p.phase(method).request())
    }

    fn runs_response(&self, method: &str) -> bool {
        self.policy.processors.iter().any(|p| p.phase(method).response())
    }

    fn check_request<'a>(&'a self, call: Call<'a>, params: Option<&'a Value>) -> Check<'a, Decided> {
        Box::pin(async move {
            let mut current: Option<Value> = None;
            let mut headers = HeaderEdits::default();
            for p in self.policy.processors.iter().filter(|p| p.phase(call.method).request()) {
                let seen = current.as_ref().or(params);
                let mutation = match p.request(self, call, seen).await {
                    Ok((Outcome::Pass, m)) => m,
                    Ok((Outcome::Mutated(v), m)) => {
                        current = Some(v);
                        m
                    }
                    Ok((reject @ Outcome::Reject(_), _)) => {
                        debug!(processor = %p.name, method = call.method, "call refused by a guardrail");
                        return Decided { outcome: reject, headers };
                    }
                    Err(why) => match p.failed(call, &why) {
                        Some(refused) => return Decided { outcome: refused, headers },
                        None => None,
                    },
                };
                if let Some(m) = mutation {
                    m.add_to(&mut headers);
                }
            }
            Decided { outcome: current.map_or(Outcome::Pass, Outcome::Mutated), headers }
        })
    }

    fn check_response<'a>(&'a self, call: Call<'a>, result: &'a Value) -> Check<'a> {
        Box::pin(async move {
            let mut current: Option<Value> = None;
            for p in self.policy.processors.iter().filter(|p| p.phase(call.method).response()) {
                match p.response(self, call, current.as_ref().unwrap_or(result)).await {
                    Ok(Outcome::Pass) => {}
                    Ok(Outcome::Mutated(v)) => current = Some(v),
                    Ok(reject @ Outcome::Reject(_)) => {
                        debug!(processor = %p.name, method = call.method, "result refused by a guardrail");
                        return reject;
                    }
                    Err(why) => {
                        if let Some(refused) = p.failed(call, &why) {
                            return refused;
                        }
                    }
                }
            }
            current.map_or(Outcome::Pass, Outcome::Mutated)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Arc<GuardrailsPolicy> {
        let raw: McpGuardrails = agw_config::load_as("test.yaml", yaml).unwrap();
        let mut errors = Vec::new();
        let p = GuardrailsPolicy::resolve(&FieldPath::root(), &raw, &mut errors).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        Arc::new(p)
    }

    fn shown(p: &Processor, headers: &[(String, Vec<u8>)]) -> Vec<String> {
        headers.iter().filter(|(k, _)| p.shows(k)).map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v))).collect()
    }

    #[test]
    fn processors_see_every_header_by_default_and_only_what_the_filter_lets_through() {
        let p = policy(
            "processors:\n- kind: remote\n  host: h:1\n- kind: remote\n  host: h:1\n  requestHeaders:\n    allowed: [X-Tenant, ':authority', authorization]\n    disallowed: [Authorization]\n",
        );
        let req = http::Request::builder()
            .method("POST")
            .uri("/mcp?x=1")
            .header("authorization", "Bearer t")
            .header("x-tenant", "acme")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let headers = request_headers(&parts, "gw.example", true);
        assert_eq!(
            shown(&p.processors[0], &headers),
            [
                ":method=POST",
                ":path=/mcp?x=1",
                ":authority=gw.example",
                ":scheme=https",
                "authorization=Bearer t",
                "x-tenant=acme",
                "x-multi=a",
                "x-multi=b"
            ]
        );
        assert_eq!(shown(&p.processors[1], &headers), [":authority=gw.example", "x-tenant=acme"]);
    }
}
