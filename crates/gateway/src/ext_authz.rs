//! `extAuthz`: asks an external authorization service whether a request may pass, over
//! Envoy's `ext_authz` gRPC protocol (`ext_authz/grpc.rs`) or plain HTTP (`ext_authz/http.rs`).
//!
//! Per request, after authentication and before the `authorization` rules: the check that
//! applies (the single one, or the first conditional entry whose condition holds) is asked,
//! once per JSON-RPC request of an MCP body (each check names its MCP method, tool and target,
//! and with `includeMcpArguments` the call's arguments), or once for the HTTP request. An
//! allow may add or remove request headers, add response headers and return metadata, which
//! becomes `extauthz.*` in later CEL (rules, limits); a denial's status, headers and body go
//! to the client as the service sent them. A `cache` reuses decisions by CEL key for a TTL.
//! When the service cannot answer, `failureMode` decides (deny with 403 by default).

mod grpc;
mod http;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use ::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use ::http::request::Parts;
use ::http::{HeaderMap, Response, StatusCode};
use agw_config::model::{ExtAuthz, ExtAuthzFailureMode, ExtAuthzProtocol};
use agw_config::{FieldError, FieldPath};
use agw_http::HttpClient;
use agw_http::body::{self, Body};
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::{Uses, to_cel};
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::{debug, warn};

/// Longest a check may take, connecting included; then `failureMode` applies.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `includeRequestBody.maxRequestBytes`.
const DEFAULT_BODY: usize = 8192;
/// Default `cache.maxEntries`.
const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Largest JSON of a call's arguments sent to the service; larger ones are left out.
pub(crate) const MAX_ARGUMENTS: usize = 8192;

/// A header the service sees: a real one, or a pseudo-header (`:method`, `:path`, …).
#[derive(Debug, Clone)]
enum Selected {
    Header(HeaderName),
    Pseudo(&'static str),
}

#[derive(Debug)]
enum Protocol {
    Grpc { service: crate::grpc::Service, context: HashMap<String, String>, metadata: Vec<(String, Expression)> },
    Http(Box<http::Settings>),
}

#[derive(Debug)]
struct Cache {
    key: Vec<Expression>,
    ttl: Ttl,
    max: usize,
    entries: Mutex<HashMap<Vec<String>, (Instant, Decision)>>,
}

#[derive(Debug)]
enum Ttl {
    Fixed(Duration),
    Expr(Expression),
}

#[derive(Debug)]
struct Check {
    name: String,
    condition: Option<Expression>,
    protocol: Protocol,
    /// `None` for the protocol's default.
    include_headers: Option<Vec<Selected>>,
    /// `includeRequestBody`: most bytes, partial allowed, raw bytes (gRPC).
    body: Option<(usize, bool, bool)>,
    cache: Option<Cache>,
    mcp_arguments: bool,
    failure: Option<StatusCode>,
}

/// A listener's or route's `extAuthz` in runtime form.
#[derive(Debug)]
pub(crate) struct ExtAuthzPolicy {
    checks: Vec<Check>,
    conditional: bool,
    uses: Uses,
}

/// What the service decided (cached as it is).
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    Allow(Allowed),
    Deny {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        metadata: Option<Map<String, Value>>,
    },
}

/// What an allowed request carries on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Allowed {
    /// Set (`false`) or appended (`true`) on the request.
    pub(crate) request_headers: Vec<(HeaderName, HeaderValue, bool)>,
    pub(crate) remove_headers: Vec<HeaderName>,
    pub(crate) response_headers: Vec<(HeaderName, HeaderValue)>,
    /// `extauthz.*`.
    pub(crate) metadata: Option<Map<String, Value>>,
}

/// The MCP request a check is about.
#[derive(Debug, Clone, Default)]
pub(crate) struct McpCall {
    pub(crate) method: String,
    pub(crate) tool: Option<String>,
    pub(crate) target: Option<String>,
    pub(crate) arguments: Option<Value>,
}

impl McpCall {
    /// The `mcp` CEL variable: `{method, tool: {name, target}}`.
    fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"method": self.method});
        if let Some(t) = &self.tool {
            v["tool"] = serde_json::json!({"name": t, "target": self.target});
        }
        v
    }
}

/// The request as a check sees it.
pub(crate) struct Subject<'a> {
    pub(crate) parts: &'a Parts,
    pub(crate) host: &'a str,
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) inputs: Inputs,
    pub(crate) body: Option<&'a Bytes>,
}

impl ExtAuthzPolicy {
    /// Compiles `extAuthz` at `at`; problems go to `errors`.
    pub(crate) fn resolve(at: &FieldPath, raw: &ExtAuthz, errors: &mut Vec<FieldError>) -> Option<Self> {
        let conditional = raw.conditional.is_some();
        let mut c = Compiler { errors, uses: Vec::new() };
        let mut checks = Vec::new();
        for (i, (condition, r)) in raw.entries().into_iter().enumerate() {
            let at = if conditional { at.key("conditional").index(i) } else { at.clone() };
            let name = if conditional { format!("extAuthz.conditional[{i}]") } else { "extAuthz".into() };
            let condition = condition.and_then(|e| c.compile(at.key("condition"), e));
            if let Some(check) = c.check(&at, name, condition, r) {
                checks.push(check);
            }
        }
        let uses = Uses::of(c.uses.iter().copied().filter(|v| !matches!(*v, "mcp" | "response" | "extauthz")));
        Some(ExtAuthzPolicy { checks, conditional, uses })
    }

    /// The request variables its expressions read.
    pub(crate) fn uses(&self) -> Uses {
        self.uses
    }

    /// Whether a check needs the request body: to send it, or (`mcp_post`: a `POST` to an
    /// MCP backend) to name the MCP requests it holds.
    pub(crate) fn wants_body(&self, mcp_post: bool) -> bool {
        mcp_post || self.checks.iter().any(|c| c.body.is_some())
    }

    fn selected(&self, inputs: &Inputs) -> Option<&Check> {
        crate::conditional::select(self.conditional, &self.checks, |c| c.condition.as_ref(), inputs)
    }

    /// Asks the service about `subject` once per MCP request in `calls` (once when there are
    /// none). `Err` is the answer to send instead.
    pub(crate) async fn check(
        &self,
        client: &HttpClient,
        subject: &Subject<'_>,
        calls: &[McpCall],
    ) -> Result<Allowed, Response<Body>> {
        let Some(check) = self.selected(&subject.inputs) else { return Ok(Allowed::default()) };
        if check.body_for(subject.body).is_err() {
            // As agentgateway: the body cannot be shown whole, and may not be cut.
            let body = serde_json::json!({"error": "request body too large for authorization"}).to_string();
            let json = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
            return Err(denial(StatusCode::PAYLOAD_TOO_LARGE, &json, Bytes::from(body)));
        }
        let calls: Vec<Option<&McpCall>> = if calls.is_empty() { vec![None] } else { calls.iter().map(Some).collect() };
        // A batch's checks go out together: the request waits for one deadline, not one each.
        let decisions =
            futures_util::future::join_all(calls.into_iter().map(|call| check.decide(client, subject, call))).await;
        let mut allowed = Allowed::default();
        for decision in decisions {
            match decision {
                Ok(Decision::Allow(a)) => merge(&mut allowed, a),
                Ok(Decision::Deny { status, headers, body, .. }) => {
                    debug!(policy = %check.name, status = status.as_u16(), "denied by the authorization service");
                    return Err(denial(status, &headers, body));
                }
                Err(e) => match check.failure {
                    None => {
                        warn!(policy = %check.name, error = %e, "authorization service failed; request let through (failureMode: allow)");
                    }
                    Some(status) => {
                        warn!(policy = %check.name, error = %e, "authorization service failed; request refused");
                        let body = serde_json::json!({"error": "external authorization failed"}).to_string();
                        let json = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
                        return Err(denial(status, &json, Bytes::from(body)));
                    }
                },
            }
        }
        Ok(allowed)
    }
}

fn merge(into: &mut Allowed, a: Allowed) {
    into.request_headers.extend(a.request_headers);
    into.remove_headers.extend(a.remove_headers);
    into.response_headers.extend(a.response_headers);
    if let Some(m) = a.metadata {
        into.metadata.get_or_insert_with(Map::new).extend(m);
    }
}

fn denial(status: StatusCode, headers: &[(HeaderName, HeaderValue)], body: Bytes) -> Response<Body> {
    let mut r = Response::new(body::full(body));
    *r.status_mut() = status;
    for (n, v) in headers {
        if !is_hop_by_hop(n) {
            r.headers_mut().append(n.clone(), v.clone());
        }
    }
    r
}

/// Headers about one connection or framing, never copied from the service's answer.
pub(crate) fn is_hop_by_hop(n: &HeaderName) -> bool {
    matches!(
        n.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "proxy-connection"
    )
}

impl Check {
    /// The decision for one request (and MCP call): from the cache, or asked.
    async fn decide(
        &self,
        client: &HttpClient,
        subject: &Subject<'_>,
        call: Option<&McpCall>,
    ) -> Result<Decision, String> {
        let mut inputs = subject.inputs.clone();
        inputs.mcp = call.map(|c| to_cel(&c.to_json()));
        let key = self.cache.as_ref().and_then(|c| c.key_of(&inputs));
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(d) = cache.get(key)
        {
            return Ok(d);
        }
        let decision = match &self.protocol {
            Protocol::Grpc { service, context, metadata } => {
                let request = grpc::request(self, subject, &inputs, call, (context, metadata))?;
                grpc::ask(service, request).await?
            }
            Protocol::Http(settings) => http::ask(self, settings, client, subject, &inputs, call).await?,
        };
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            inputs.extauthz = decision_metadata(&decision).map(|m| to_cel(&Value::Object(m.clone())));
            cache.put(key, decision.clone(), &inputs);
        }
        Ok(decision)
    }

    /// The request headers the service sees, `None` meaning every one.
    fn headers_for(&self, parts: &Parts, host: &str, tls: bool) -> Vec<(String, String)> {
        let pseudo = |p: &str| -> Option<String> {
            Some(match p {
                ":method" => parts.method.to_string(),
                ":path" => parts.uri.path_and_query().map_or("/".into(), |p| p.to_string()),
                ":authority" => host.to_string(),
                ":scheme" => if tls { "https" } else { "http" }.into(),
                _ => return None,
            })
        };
        let value = |name: &HeaderName| -> Option<String> {
            let values: Vec<String> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            let sep = if name == ::http::header::COOKIE { "; " } else { ", " };
            (!values.is_empty()).then(|| values.join(sep))
        };
        match &self.include_headers {
            Some(list) => list
                .iter()
                .filter_map(|s| match s {
                    Selected::Header(n) => value(n).map(|v| (n.as_str().to_string(), v)),
                    Selected::Pseudo(p) => pseudo(p).map(|v| (p.to_string(), v)),
                })
                .collect(),
            None if matches!(self.protocol, Protocol::Http(_)) => {
                value(&::http::header::AUTHORIZATION).map(|v| ("authorization".to_string(), v)).into_iter().collect()
            }
            None => [":method", ":path", ":authority", ":scheme"]
                .into_iter()
                .filter_map(|p| pseudo(p).map(|v| (p.to_string(), v)))
                .chain(parts.headers.keys().filter_map(|n| value(n).map(|v| (n.as_str().to_string(), v))))
                .collect(),
        }
    }

    /// The body to send and whether it was cut; `Err` when it is too large and may not be cut.
    fn body_for<'a>(&self, body: Option<&'a Bytes>) -> Result<Option<(&'a [u8], bool)>, String> {
        let Some((max, partial, _)) = self.body else { return Ok(None) };
        let b = body.map_or(&[][..], |b| &b[..]);
        if b.len() <= max {
            return Ok(Some((b, false)));
        }
        if partial { Ok(Some((&b[..max], true))) } else { Err("request body larger than maxRequestBytes".into()) }
    }
}

fn decision_metadata(d: &Decision) -> Option<&Map<String, Value>> {
    match d {
        Decision::Allow(a) => a.metadata.as_ref(),
        Decision::Deny { metadata, .. } => metadata.as_ref(),
    }
}

impl Cache {
    fn key_of(&self, inputs: &Inputs) -> Option<Vec<String>> {
        self.key.iter().map(|e| e.eval_json(inputs).map(|v| v.to_string())).collect()
    }

    fn get(&self, key: &[String]) -> Option<Decision> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((until, d)) if *until > Instant::now() => Some(d.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: Vec<String>, d: Decision, inputs: &Inputs) {
        let Some(ttl) = self.ttl(inputs).filter(|t| !t.is_zero()) else { return };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max && !entries.contains_key(&key) {
            entries.retain(|_, (until, _)| *until > now);
            if entries.len() >= self.max
                && let Some(first) = entries.iter().min_by_key(|(_, (until, _))| *until).map(|(k, _)| k.clone())
            {
                entries.remove(&first);
            }
        }
        entries.insert(key, (now + ttl, d));
    }

    /// A fixed TTL, or CEL giving seconds, a duration string or a Unix time in the future.
    fn ttl(&self, inputs: &Inputs) -> Option<Duration> {
        let e = match &self.ttl {
            Ttl::Fixed(d) => return Some(*d),
            Ttl::Expr(e) => e,
        };
        let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
        let secs = match e.eval_json(inputs)? {
            Value::Number(n) => n.as_f64()?,
            Value::String(s) => return agw_config::model::Duration::parse(&s).ok().map(|d| d.get()),
            _ => return None,
        };
        // A value past 2001 is a Unix time (an `exp` claim), else a number of seconds.
        let secs = if secs > 1.0e9 { secs - now_unix } else { secs };
        (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0 * 365.0)))
    }
}

/// Compiles a check's expressions, collecting errors and the variables read.
struct Compiler<'e> {
    errors: &'e mut Vec<FieldError>,
    uses: Vec<&'static str>,
}

impl Compiler<'_> {
    fn compile(&mut self, at: FieldPath, src: &str) -> Option<Expression> {
        match Expression::compile(src) {
            Ok(e) => {
                self.uses.extend(agw_policy::expr::VARIABLES.iter().filter(|v| e.reads(v)).copied());
                Some(e)
            }
            Err(msg) => {
                self.errors.push(FieldError::new(at, msg));
                None
            }
        }
    }

    fn map(&mut self, at: FieldPath, m: &std::collections::BTreeMap<String, String>) -> Vec<(String, Expression)> {
        m.iter().filter_map(|(k, src)| self.compile(at.key(k), src).map(|e| (k.clone(), e))).collect()
    }

    fn check(&mut self, at: &FieldPath, name: String, condition: Option<Expression>, r: &ExtAuthz) -> Option<Check> {
        // Validation checked `host`; lowering turned `backend` into it.
        let host = r.host.as_deref().unwrap_or_default();
        let protocol = match &r.protocol {
            None | Some(ExtAuthzProtocol::Grpc(_)) => {
                let (context, metadata) = match &r.protocol {
                    Some(ExtAuthzProtocol::Grpc(g)) => (
                        g.context.iter().flatten().map(|(k, v)| (k.clone(), v.expose().to_string())).collect(),
                        self.map(
                            at.key("protocol").key("grpc").key("metadata"),
                            &g.metadata.clone().unwrap_or_default(),
                        ),
                    ),
                    _ => (HashMap::new(), Vec::new()),
                };
                match crate::grpc::Service::new(host) {
                    Ok(service) => Protocol::Grpc { service, context, metadata },
                    Err(msg) => {
                        self.errors.push(FieldError::new(at.key("host"), msg));
                        return None;
                    }
                }
            }
            Some(ExtAuthzProtocol::Http(h)) => {
                Protocol::Http(Box::new(http::Settings::compile(self, &at.key("protocol").key("http"), host, h)?))
            }
        };
        let include_headers = r.include_request_headers.as_ref().map(|list| {
            list.iter()
                .filter_map(|h| match h.to_ascii_lowercase().as_str() {
                    ":method" => Some(Selected::Pseudo(":method")),
                    ":path" => Some(Selected::Pseudo(":path")),
                    ":authority" | "host" => Some(Selected::Pseudo(":authority")),
                    ":scheme" => Some(Selected::Pseudo(":scheme")),
                    other => HeaderName::try_from(other).ok().map(Selected::Header),
                })
                .collect()
        });
        let body = r.include_request_body.as_ref().map(|b| {
            (b.max_request_bytes.map_or(DEFAULT_BODY, |n| n as usize), b.allow_partial_message, b.pack_as_bytes)
        });
        let cache = match &r.cache {
            None => None,
            Some(c) => {
                let key = c
                    .key
                    .iter()
                    .enumerate()
                    .filter_map(|(i, k)| self.compile(at.key("cache").key("key").index(i), k))
                    .collect();
                let ttl = match agw_config::model::Duration::parse(&c.ttl) {
                    Ok(d) => Ttl::Fixed(d.get()),
                    Err(_) => Ttl::Expr(self.compile(at.key("cache").key("ttl"), &c.ttl)?),
                };
                let max = c.max_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
                Some(Cache { key, ttl, max, entries: Mutex::new(HashMap::new()) })
            }
        };
        let failure = match r.failure_mode {
            Some(ExtAuthzFailureMode::Allow) => None,
            None | Some(ExtAuthzFailureMode::Deny) => Some(StatusCode::FORBIDDEN),
            Some(ExtAuthzFailureMode::DenyWithStatus(code)) => match StatusCode::from_u16(code) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.errors
                        .push(FieldError::new(at.key("failureMode").key("denyWithStatus"), "not an HTTP status"));
                    return None;
                }
            },
        };
        Some(Check {
            name,
            condition,
            protocol,
            include_headers,
            body,
            cache,
            mcp_arguments: r.include_mcp_arguments.unwrap_or(false),
            failure,
        })
    }
}

/// The MCP requests of a parsed body, with tool names split from their target's prefix.
pub(crate) fn mcp_calls(body: &Value, targets: &[String], prefixed: bool) -> Vec<McpCall> {
    crate::ratelimit::Messages::of(body)
        .requests
        .iter()
        .map(|(_, method, params)| {
            let mut call = McpCall { method: method.to_string(), ..McpCall::default() };
            if *method == "tools/call"
                && let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str)
            {
                let split = name.split_once('_').filter(|(t, _)| prefixed && targets.iter().any(|n| n == t));
                let (target, tool) = match split {
                    Some((t, rest)) => (Some(t.to_string()), rest.to_string()),
                    None if targets.len() == 1 => (targets.first().cloned(), name.to_string()),
                    None => (None, name.to_string()),
                };
                call.tool = Some(tool);
                call.target = target;
                call.arguments = params.and_then(|p| p.get("arguments")).cloned();
            }
            call
        })
        .collect()
}

/// The arguments as ASCII JSON (non-ASCII escaped, so it fits in a header), or `None` when
/// larger than [`MAX_ARGUMENTS`].
pub(crate) fn arguments_text(arguments: Option<&Value>) -> Option<String> {
    let text = arguments.map_or_else(|| "{}".to_string(), Value::to_string);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    (out.len() <= MAX_ARGUMENTS).then_some(out)
}

/// Applies an allow to the request and the identity (`extauthz.*`).
pub(crate) fn apply(allowed: &Allowed, headers: &mut HeaderMap, identity: &mut crate::auth::Identity) {
    for n in &allowed.remove_headers {
        headers.remove(n);
    }
    for (n, v, append) in &allowed.request_headers {
        if *append {
            headers.append(n.clone(), v.clone());
        } else {
            headers.insert(n.clone(), v.clone());
        }
    }
    if let Some(m) = &allowed.metadata {
        let mut merged = match identity.extauthz.take() {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        merged.extend(m.clone());
        identity.extauthz = Some(Value::Object(merged));
    }
}

#[cfg(test)]
mod tests;
