//! `localRateLimit`: token buckets in this process, at listener and route level.
//!
//! A limit without a `key` is agentgateway's: one bucket, one token per HTTP request, and a
//! request over it gets 429 with `Retry-After` and rate-limit headers. A limit with a `key`
//! (an extension) keeps a bucket per value of its CEL expression (`jwt.sub`: per caller;
//! `mcp.tool.name`: per tool) and counts MCP requests one per JSON-RPC request, so a batch
//! counts what it asks; an MCP request over such a limit gets a JSON-RPC error at HTTP 200 that
//! the agent can read (an SDK turns a 429 into a transport failure the model never sees).
//!
//! Buckets start full, gain `tokensPerFill` every `fillInterval` up to `maxTokens`, and
//! live as long as the config version (a reload starts them afresh). Keyed buckets are
//! bounded: at [`MAX_KEYS`] per limit, buckets that have refilled completely are dropped (a
//! full bucket is the same as a new one), then the least recently refilled one.

use std::collections::HashMap;
use std::sync::Mutex;

use agw_config::model::{LocalRateLimits, RateLimitKind};
use agw_config::{FieldError, FieldPath};
use agw_http::body::{self, Body};
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::{Uses, to_cel};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Response};
use serde_json::{Value, json};
use tokio::time::{Duration, Instant};

/// Most buckets one keyed limit holds.
pub(crate) const MAX_KEYS: usize = 100_000;

/// JSON-RPC error code of a request refused by a keyed limit (implementation-defined range).
pub(crate) const RATE_LIMITED: i64 = -32029;

#[derive(Debug, Clone, Copy)]
struct Spec {
    max: u64,
    per_fill: u64,
    interval: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u64,
    /// When the last fill was due.
    last: Instant,
}

impl Bucket {
    fn new(spec: Spec, now: Instant) -> Bucket {
        Bucket { tokens: spec.max, last: now }
    }

    fn refill(&mut self, spec: Spec, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let interval = spec.interval.as_nanos().max(1);
        let fills = elapsed.as_nanos() / interval;
        if fills > 0 {
            let added = u64::try_from(fills).unwrap_or(u64::MAX).saturating_mul(spec.per_fill);
            self.tokens = self.tokens.saturating_add(added).min(spec.max);
            // Keep the phase: the next fill is due one interval after the last one was.
            let rest = u64::try_from(elapsed.as_nanos() % interval).unwrap_or(0);
            self.last = now - Duration::from_nanos(rest);
        }
    }

    /// Time until `n` tokens are there (zero when they are).
    fn wait_for(&self, n: u64, spec: Spec, now: Instant) -> Duration {
        if self.tokens >= n {
            return Duration::ZERO;
        }
        let fills = (n.min(spec.max) - self.tokens.min(n)).div_ceil(spec.per_fill.max(1));
        // Durations, not instants: a huge `fillInterval` saturates instead of overflowing.
        let until = spec.interval.saturating_mul(u32::try_from(fills).unwrap_or(u32::MAX));
        until.saturating_sub(now.saturating_duration_since(self.last))
    }

    fn reset(&self, spec: Spec, now: Instant) -> Duration {
        spec.interval.saturating_sub(now.saturating_duration_since(self.last))
    }
}

/// Where a limit stands, for the rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    /// Seconds until the next fill (or, when refused, until the request could pass).
    pub(crate) reset: u64,
    /// `fillInterval` (or the remote limit's unit), in seconds.
    pub(crate) window: u64,
    /// The policy name in the draft headers: `local` or `remote`.
    pub(crate) scope: &'static str,
}

impl Status {
    fn new(spec: Spec, remaining: u64, reset: Duration) -> Status {
        Status { limit: spec.max, remaining, reset: ceil_secs(reset), window: ceil_secs(spec.interval), scope: "local" }
    }

    /// The one closer to running out.
    pub(crate) fn tighter(a: Option<Status>, b: Status) -> Status {
        match a {
            Some(a) if a.remaining <= b.remaining => a,
            _ => b,
        }
    }

    /// `RateLimit-Policy` and `RateLimit` (IETF draft-ietf-httpapi-ratelimit-headers), and the
    /// `x-ratelimit-*` headers agentgateway sends.
    pub(crate) fn write_headers(&self, h: &mut HeaderMap) {
        let drafts = [
            (
                HeaderName::from_static("ratelimit-policy"),
                format!("\"{}\";q={};w={}", self.scope, self.limit, self.window),
            ),
            (HeaderName::from_static("ratelimit"), format!("\"{}\";r={};t={}", self.scope, self.remaining, self.reset)),
        ];
        for (name, value) in drafts {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        h.insert(HeaderName::from_static("x-ratelimit-limit"), HeaderValue::from(self.limit));
        h.insert(HeaderName::from_static("x-ratelimit-remaining"), HeaderValue::from(self.remaining));
        h.insert(HeaderName::from_static("x-ratelimit-reset"), HeaderValue::from(self.reset));
    }

    /// A 429 answer also says when to come back.
    pub(crate) fn write_refusal_headers(&self, h: &mut HeaderMap) {
        self.write_headers(h);
        h.insert(RETRY_AFTER, HeaderValue::from(self.reset.max(1)));
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

enum Store {
    One(Mutex<Bucket>),
    Keyed(Mutex<HashMap<String, Bucket>>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Store::One(_) => "One",
            Store::Keyed(_) => "Keyed",
        })
    }
}

#[derive(Debug)]
struct Limit {
    /// Where it was written, for messages: `localRateLimit[0]`.
    name: String,
    condition: Option<Expression>,
    key: Option<Expression>,
    spec: Spec,
    store: Store,
}

/// A request over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exceeded {
    /// The limit, as written: `localRateLimit[1]`.
    pub(crate) limit: String,
    /// Its key expression, for keyed limits.
    pub(crate) key: Option<String>,
    pub(crate) status: Status,
}

/// One policy's limits in runtime form.
#[derive(Debug)]
pub(crate) struct RateLimits {
    limits: Vec<Limit>,
    conditional: bool,
    /// The request variables conditions and keys read (`mcp` aside).
    uses: Uses,
}

/// The JSON-RPC requests of an MCP body: each one's method and parameters.
pub(crate) struct Messages<'a> {
    pub(crate) requests: Vec<(&'a Value, &'a str, Option<&'a Value>)>,
}

impl<'a> Messages<'a> {
    /// The requests (with `id` and `method`) of a parsed body, single or batch.
    pub(crate) fn of(body: &'a Value) -> Messages<'a> {
        let one = |m: &'a Value| {
            let id = m.get("id")?;
            let method = m.get("method")?.as_str()?;
            Some((id, method, m.get("params")))
        };
        let requests = match body {
            Value::Array(items) => items.iter().filter_map(one).collect(),
            m => one(m).into_iter().collect(),
        };
        Messages { requests }
    }
}

impl RateLimits {
    /// Compiles `localRateLimit` at `at`; problems go to `errors`.
    pub(crate) fn resolve(at: &FieldPath, raw: &LocalRateLimits, errors: &mut Vec<FieldError>) -> Option<RateLimits> {
        let conditional = raw.is_conditional();
        let now = Instant::now();
        let mut uses = Vec::new();
        let mut compile = |at: FieldPath, src: &str, errors: &mut Vec<FieldError>| {
            crate::conditional::compile(at, src, errors, &mut uses)
        };
        let mut limits = Vec::new();
        for (i, (condition, r)) in raw.entries().into_iter().enumerate() {
            let at = if conditional { at.key("conditional").index(i) } else { at.index(i) };
            if r.kind == Some(RateLimitKind::Tokens) {
                continue; // refused at validation
            }
            let spec = Spec { max: r.max_tokens, per_fill: r.tokens_per_fill, interval: r.fill_interval.get() };
            let condition = condition.and_then(|c| compile(at.key("condition"), c, errors));
            let key = r.key.as_deref().and_then(|k| compile(at.key("key"), k, errors));
            let store = match key {
                Some(_) => Store::Keyed(Mutex::new(HashMap::new())),
                None => Store::One(Mutex::new(Bucket::new(spec, now))),
            };
            let name =
                if conditional { format!("localRateLimit.conditional[{i}]") } else { format!("localRateLimit[{i}]") };
            limits.push(Limit { name, condition, key, spec, store });
        }
        let uses = Uses::of(uses.iter().copied().filter(|v| *v != "mcp" && *v != "response"));
        Some(RateLimits { limits, conditional, uses })
    }

    /// The request variables its expressions read.
    pub(crate) fn uses(&self) -> Uses {
        self.uses
    }

    /// Whether some limit counts MCP requests one by one (it has a key).
    pub(crate) fn keyed(&self) -> bool {
        self.limits.iter().any(|l| l.key.is_some())
    }

    /// The limits that apply: all of a list; the first whose condition holds in the
    /// conditional form.
    fn selected<'a>(&'a self, inputs: &'a Inputs) -> impl Iterator<Item = &'a Limit> + 'a {
        let first = self
            .conditional
            .then(|| self.limits.iter().find(|l| l.condition.as_ref().is_none_or(|c| c.eval_bool(inputs))));
        let all = (!self.conditional).then(|| self.limits.iter());
        first.flatten().into_iter().chain(all.into_iter().flatten())
    }

    /// Takes what this request asks from every limit that applies. `messages`: the requests
    /// of an MCP body, when keyed limits count them. On success, the state of the tightest
    /// limit without a key (for the response headers).
    pub(crate) fn check(
        &self,
        inputs: &Inputs,
        messages: Option<&Messages<'_>>,
        now: Instant,
    ) -> Result<Option<Status>, Exceeded> {
        let mut status = None;
        for limit in self.selected(inputs) {
            match (&limit.store, &limit.key) {
                (Store::One(bucket), _) => {
                    let s = take_one(limit, bucket, now)?;
                    status = Some(Status::tighter(status, s));
                }
                (Store::Keyed(map), Some(key)) => {
                    let counts = key_counts(key, inputs, messages);
                    take_keyed(limit, map, &counts, now)?;
                }
                (Store::Keyed(_), None) => {}
            }
        }
        Ok(status)
    }
}

fn take_one(limit: &Limit, bucket: &Mutex<Bucket>, now: Instant) -> Result<Status, Exceeded> {
    let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
    b.refill(limit.spec, now);
    if b.tokens >= 1 {
        b.tokens -= 1;
        Ok(Status::new(limit.spec, b.tokens, b.reset(limit.spec, now)))
    } else {
        Err(Exceeded {
            limit: limit.name.clone(),
            key: None,
            status: Status::new(limit.spec, 0, b.wait_for(1, limit.spec, now)),
        })
    }
}

/// How many tokens each key value asks for: one per MCP request whose key evaluates, or one
/// for the whole HTTP request when there are no messages to count.
fn key_counts(key: &Expression, inputs: &Inputs, messages: Option<&Messages<'_>>) -> Vec<(String, u64)> {
    let value = |inputs: &Inputs| {
        key.eval_json(inputs).map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
    };
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut add = |k: String| match counts.iter_mut().find(|(have, _)| *have == k) {
        Some((_, n)) => *n += 1,
        None => counts.push((k, 1)),
    };
    match messages {
        None => {
            if let Some(k) = value(inputs) {
                add(k);
            }
        }
        // A key that does not read `mcp` has one value for every message of the body.
        Some(m) if !key.reads("mcp") => {
            if let Some(k) = value(inputs) {
                for _ in &m.requests {
                    add(k.clone());
                }
            }
        }
        Some(m) => {
            let mut with_mcp = inputs.clone();
            for (_, method, params) in &m.requests {
                with_mcp.mcp = Some(to_cel(&mcp_json(method, *params)));
                if let Some(k) = value(&with_mcp) {
                    add(k);
                }
            }
        }
    }
    counts
}

/// The `mcp` variable of one request: `{method, tool|prompt: {name}, resource: {name}}`.
pub(crate) fn mcp_json(method: &str, params: Option<&Value>) -> Value {
    let field = |name: &str| params.and_then(|p| p.get(name)).and_then(Value::as_str);
    let mut v = json!({"method": method});
    match method {
        "tools/call" => {
            if let Some(n) = field("name") {
                v["tool"] = json!({"name": n});
            }
        }
        "prompts/get" => {
            if let Some(n) = field("name") {
                v["prompt"] = json!({"name": n});
            }
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            if let Some(n) = field("uri") {
                v["resource"] = json!({"name": n});
            }
        }
        _ => {}
    }
    v
}

/// All or nothing: every key must have its tokens before any is taken.
fn take_keyed(
    limit: &Limit,
    map: &Mutex<HashMap<String, Bucket>>,
    counts: &[(String, u64)],
    now: Instant,
) -> Result<(), Exceeded> {
    if counts.is_empty() {
        return Ok(());
    }
    let spec = limit.spec;
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    for (k, _) in counts {
        if !map.contains_key(k) {
            make_room(&mut map, spec, now);
            map.insert(k.clone(), Bucket::new(spec, now));
        }
    }
    let mut worst: Option<Duration> = None;
    for (k, n) in counts {
        if let Some(b) = map.get_mut(k) {
            b.refill(spec, now);
            if b.tokens < *n {
                let wait = b.wait_for(*n, spec, now);
                worst = Some(worst.map_or(wait, |w| w.max(wait)));
            }
        }
    }
    if let Some(wait) = worst {
        return Err(Exceeded {
            limit: limit.name.clone(),
            key: limit.key.as_ref().map(|k| k.source().to_string()),
            status: Status::new(spec, 0, wait),
        });
    }
    for (k, n) in counts {
        if let Some(b) = map.get_mut(k) {
            b.tokens -= n;
        }
    }
    Ok(())
}

/// Keeps a keyed limit under [`MAX_KEYS`] buckets.
fn make_room(map: &mut HashMap<String, Bucket>, spec: Spec, now: Instant) {
    if map.len() < MAX_KEYS {
        return;
    }
    map.retain(|_, b| {
        b.refill(spec, now);
        b.tokens < spec.max
    });
    if map.len() >= MAX_KEYS
        && let Some(oldest) = map.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

/// The 429 answer of a limit without a key, or of a keyed limit on a non-MCP request.
pub(crate) fn too_many_requests(e: &Exceeded) -> Response<Body> {
    let mut r = crate::error::GatewayError::RateLimited.into_response();
    e.status.write_refusal_headers(r.headers_mut());
    r
}

/// The JSON-RPC answer (HTTP 200) to an MCP body refused by a keyed limit: an error for every
/// request in it, saying which limit and when to retry.
pub(crate) fn jsonrpc_refusal(e: &Exceeded, messages: &Messages<'_>, batch: bool) -> Response<Body> {
    let retry = e.status.reset.max(1);
    let error = |id: &Value| {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": RATE_LIMITED,
                "message": format!("Rate limit exceeded ({}): retry after {retry} s", e.limit),
                "data": {
                    "reason": "rate_limited",
                    "limit": e.limit,
                    "key": e.key,
                    "maxTokens": e.status.limit,
                    "fillIntervalSeconds": e.status.window,
                    "retryAfterSeconds": retry,
                },
            },
        })
    };
    let answers: Vec<Value> = messages.requests.iter().map(|(id, _, _)| error(id)).collect();
    let body = if batch { Value::Array(answers) } else { answers.into_iter().next().unwrap_or(Value::Null) };
    let mut r = Response::new(body::full(body.to_string()));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry));
    r
}

#[cfg(test)]
mod tests;
