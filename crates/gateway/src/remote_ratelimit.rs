//! `remoteRateLimit`: asks an Envoy rate-limit service (RLS, gRPC `ShouldRateLimit`) whether a
//! request may pass, so that one limit holds across every replica of the gateway.
//!
//! Per request: the applicable check (the one of the single form, or the first conditional
//! entry whose condition holds) evaluates its descriptors' CEL values, sends them with its
//! `domain` in one call (deadline [`CHECK_TIMEOUT`]), and applies the answer: `OK` adds the
//! service's request headers upstream and its response headers (plus `x-ratelimit-*` of the
//! tightest descriptor) to the answer; anything else is a 429 carrying the service's headers
//! and body. On MCP routes, a descriptor that reads `mcp` is evaluated once per JSON-RPC
//! request of the body (a batch counts each; equal descriptors are sent once with their
//! count as `hits_addend`), and a refusal is a JSON-RPC error at HTTP 200, as for keyed local
//! limits. When the service cannot answer, `failureMode` decides: `failClosed` (default) 500,
//! `failOpen` lets the request through.

use std::time::Duration;

use agw_config::model::{RemoteFailureMode, RemoteRateLimit};
use agw_config::{FieldError, FieldPath};
use agw_http::body::{self, Body};
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::{Uses, to_cel};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use serde_json::Value;
use tracing::{debug, warn};

use crate::envoy::UInt64Value;
use crate::envoy::ratelimit::{
    DescriptorStatus, Entry, RateLimitDescriptor, RateLimitOverride, RateLimitRequest, RateLimitResponse,
    SHOULD_RATE_LIMIT, code, unit,
};
use crate::grpc;
use crate::ratelimit::{self, Exceeded, Messages, Status};

/// Longest a check may take, connecting included; then `failureMode` applies.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Descriptor {
    entries: Vec<(String, Expression)>,
    cost: Option<Expression>,
    limit_override: Option<Expression>,
}

#[derive(Debug)]
struct Check {
    /// Where it was written, for the log and refusals: `remoteRateLimit`.
    name: String,
    condition: Option<Expression>,
    service: grpc::Service,
    domain: String,
    descriptors: Vec<Descriptor>,
    fail_open: bool,
    /// Some descriptor reads `mcp`: counted per JSON-RPC request.
    per_message: bool,
}

/// A route's `remoteRateLimit` in runtime form.
#[derive(Debug)]
pub(crate) struct RemoteRateLimits {
    checks: Vec<Check>,
    conditional: bool,
    /// The request variables its expressions read (`mcp` aside).
    uses: Uses,
}

/// The service's answer, applied.
#[derive(Debug)]
enum Answer {
    Allowed(Allowed),
    Refused(Response<Body>),
}

/// What an allowed request carries on.
#[derive(Debug, Default)]
pub(crate) struct Allowed {
    /// Headers the service asks to add to the request.
    pub(crate) request_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Headers for the response: the service's and `x-ratelimit-*`.
    pub(crate) response_headers: HeaderMap,
}

impl RemoteRateLimits {
    /// Compiles `remoteRateLimit` at `at`; problems go to `errors`.
    pub(crate) fn resolve(at: &FieldPath, raw: &RemoteRateLimit, errors: &mut Vec<FieldError>) -> Option<Self> {
        let conditional = raw.conditional.is_some();
        let mut uses = Vec::new();
        let mut compile = |at: FieldPath, src: &str, errors: &mut Vec<FieldError>| {
            crate::conditional::compile(at, src, errors, &mut uses)
        };
        let mut checks = Vec::new();
        for (i, (condition, r)) in raw.entries().into_iter().enumerate() {
            let at = if conditional { at.key("conditional").index(i) } else { at.clone() };
            let condition = condition.and_then(|c| compile(at.key("condition"), c, errors));
            let mut descriptors = Vec::new();
            for (d, raw_d) in r.descriptors.iter().enumerate() {
                let at = at.key("descriptors").index(d);
                let entries = raw_d
                    .entries
                    .iter()
                    .enumerate()
                    .filter_map(|(e, entry)| {
                        compile(at.key("entries").index(e).key("value"), &entry.value, errors)
                            .map(|x| (entry.key.clone(), x))
                    })
                    .collect();
                let cost = raw_d.cost.as_deref().and_then(|c| compile(at.key("cost"), c, errors));
                let limit_override =
                    raw_d.limit_override.as_deref().and_then(|c| compile(at.key("limitOverride"), c, errors));
                descriptors.push(Descriptor { entries, cost, limit_override });
            }
            let per_message = descriptors.iter().any(|d| {
                d.entries.iter().any(|(_, e)| e.reads("mcp"))
                    || d.cost.as_ref().is_some_and(|e| e.reads("mcp"))
                    || d.limit_override.as_ref().is_some_and(|e| e.reads("mcp"))
            });
            // Validation checked `host`; lowering turned `backend` into it.
            let service = match grpc::Service::new(r.host.as_deref().unwrap_or_default()) {
                Ok(s) => s,
                Err(msg) => {
                    errors.push(FieldError::new(at.key("host"), msg));
                    continue;
                }
            };
            let name = if conditional { format!("remoteRateLimit.conditional[{i}]") } else { "remoteRateLimit".into() };
            checks.push(Check {
                name,
                condition,
                service,
                domain: r.domain.clone(),
                descriptors,
                fail_open: r.failure_mode == Some(RemoteFailureMode::FailOpen),
                per_message,
            });
        }
        let uses = Uses::of(uses.iter().copied().filter(|v| *v != "mcp" && *v != "response"));
        Some(RemoteRateLimits { checks, conditional, uses })
    }

    /// The request variables its expressions read.
    pub(crate) fn uses(&self) -> Uses {
        self.uses
    }

    /// Whether some check counts the JSON-RPC requests of an MCP body one by one.
    pub(crate) fn per_message(&self) -> bool {
        self.checks.iter().any(|c| c.per_message)
    }

    /// The check that applies: the single one, or the first whose condition holds.
    fn selected(&self, inputs: &Inputs) -> Option<&Check> {
        crate::conditional::select(self.conditional, &self.checks, |c| c.condition.as_ref(), inputs)
    }

    /// Asks the service. `messages`: the requests of an MCP body, when some check counts
    /// them (`batch`: the body was an array). `Err` is the answer to send instead.
    pub(crate) async fn check(
        &self,
        inputs: &Inputs,
        messages: Option<&Messages<'_>>,
        batch: bool,
    ) -> Result<Allowed, Response<Body>> {
        let Some(check) = self.selected(inputs) else { return Ok(Allowed::default()) };
        let messages = messages.filter(|m| check.per_message && !m.requests.is_empty());
        let Some(request) = check.request(inputs, messages) else { return Ok(Allowed::default()) };
        match check.service.call::<_, RateLimitResponse>(SHOULD_RATE_LIMIT, &request, CHECK_TIMEOUT).await {
            Ok(answer) => match check.apply(answer, messages, batch) {
                Answer::Allowed(a) => Ok(a),
                Answer::Refused(r) => Err(r),
            },
            Err(e) if check.fail_open => {
                warn!(policy = %check.name, domain = %check.domain, error = %e, "rate-limit service failed; request let through (failOpen)");
                Ok(Allowed::default())
            }
            Err(e) => {
                warn!(policy = %check.name, domain = %check.domain, error = %e, "rate-limit service failed; request refused (failClosed)");
                Err(crate::error::GatewayError::RateLimitUnavailable.into_response())
            }
        }
    }
}

impl Check {
    /// The service's request, or `None` when no descriptor could be evaluated.
    fn request(&self, inputs: &Inputs, messages: Option<&Messages<'_>>) -> Option<RateLimitRequest> {
        let mut descriptors: Vec<RateLimitDescriptor> = Vec::new();
        let mut add = |d: RateLimitDescriptor| {
            let hits = d.hits_addend.map_or(1, |h| h.value);
            match descriptors.iter_mut().find(|have| have.entries == d.entries && have.limit == d.limit) {
                Some(have) => {
                    let total = have.hits_addend.map_or(1, |h| h.value).saturating_add(hits);
                    have.hits_addend = Some(UInt64Value { value: total });
                }
                None => descriptors.push(d),
            }
        };
        match messages {
            None => self.descriptors.iter().filter_map(|d| evaluate(d, inputs)).for_each(&mut add),
            Some(m) => {
                let mut with_mcp = inputs.clone();
                for (_, method, params) in &m.requests {
                    with_mcp.mcp = Some(to_cel(&ratelimit::mcp_json(method, *params)));
                    self.descriptors.iter().filter_map(|d| evaluate(d, &with_mcp)).for_each(&mut add);
                }
            }
        }
        if descriptors.is_empty() {
            debug!(policy = %self.name, "no descriptor could be evaluated; the rate-limit service is not asked");
            return None;
        }
        Some(RateLimitRequest { domain: self.domain.clone(), descriptors, hits_addend: 0 })
    }

    fn apply(&self, answer: RateLimitResponse, messages: Option<&Messages<'_>>, batch: bool) -> Answer {
        let status = tightest(&answer.statuses);
        // The service's headers replace ours of the same name (as agentgateway applies them).
        let headers = |h: &mut HeaderMap| {
            for (n, v) in answer.response_headers_to_add.iter().filter_map(crate::envoy::HeaderValue::to_http) {
                h.insert(n, v);
            }
        };
        if answer.overall_code == code::OK {
            let mut allowed = Allowed {
                request_headers: answer.request_headers_to_add.iter().filter_map(|h| h.to_http()).collect(),
                response_headers: HeaderMap::new(),
            };
            if let Some(s) = status {
                s.write_headers(&mut allowed.response_headers);
            }
            headers(&mut allowed.response_headers);
            return Answer::Allowed(allowed);
        }
        debug!(policy = %self.name, domain = %self.domain, "over the remote rate limit");
        let status = status.unwrap_or(Status { limit: 0, remaining: 0, reset: 1, window: 0, scope: "remote" });
        let mut resp = match messages {
            Some(m) => {
                let exceeded = Exceeded { limit: self.name.clone(), key: None, status };
                ratelimit::jsonrpc_refusal(&exceeded, m, batch)
            }
            // The service's body when it sent one (as text unless its headers say otherwise).
            None if !answer.raw_body.is_empty() => {
                let mut r = Response::new(body::full(answer.raw_body.clone()));
                *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r
            }
            None => crate::error::GatewayError::RateLimited.into_response(),
        };
        if messages.is_none() && answer.statuses.iter().any(|s| s.current_limit.is_some()) {
            status.write_refusal_headers(resp.headers_mut());
        }
        headers(resp.headers_mut());
        Answer::Refused(resp)
    }
}

/// One descriptor for these inputs; `None` when a value, its cost or its limit override
/// cannot be evaluated (the descriptor is then left out, as in Envoy and agentgateway).
fn evaluate(d: &Descriptor, inputs: &Inputs) -> Option<RateLimitDescriptor> {
    let entries = d
        .entries
        .iter()
        .map(|(key, value)| Some(Entry { key: key.clone(), value: text(value.eval_json(inputs)?)? }))
        .collect::<Option<Vec<_>>>()?;
    let hits_addend = match &d.cost {
        None => None,
        Some(cost) => Some(UInt64Value { value: cost.eval_json(inputs)?.as_u64()? }),
    };
    let limit = match &d.limit_override {
        None => None,
        Some(e) => Some(limit_override(&e.eval_json(inputs)?)?),
    };
    Some(RateLimitDescriptor { entries, limit, hits_addend })
}

/// A descriptor value as text: strings as they are, numbers and booleans written out.
fn text(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `{"unit": "minute", "requestsPerUnit": 100}` (or `requests_per_unit`).
fn limit_override(v: &Value) -> Option<RateLimitOverride> {
    let unit = unit::by_name(v.get("unit")?.as_str()?)?;
    let n = v.get("requestsPerUnit").or_else(|| v.get("requests_per_unit"))?.as_u64()?;
    Some(RateLimitOverride { requests_per_unit: u32::try_from(n).ok()?, unit })
}

/// The status of the descriptor with the fewest requests left, as header values.
fn tightest(statuses: &[DescriptorStatus]) -> Option<Status> {
    let s = statuses.iter().filter(|s| s.current_limit.is_some()).min_by_key(|s| s.limit_remaining)?;
    let limit = s.current_limit.as_ref()?;
    let reset = s.duration_until_reset.map_or(0, |d| u64::try_from(d.seconds).unwrap_or(0));
    Some(Status {
        limit: u64::from(limit.requests_per_unit),
        remaining: u64::from(s.limit_remaining),
        reset,
        window: unit::seconds(limit.unit),
        scope: "remote",
    })
}

#[cfg(test)]
mod tests;
