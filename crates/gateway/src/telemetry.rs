//! Access-log and trace policy: `frontendPolicies.accessLog` / `.tracing` and the deprecated
//! `config.logging.{filter, fields}` / `config.tracing` forms, compiled once per config version.
//!
//! Nothing here runs for a request unless configured: with no CEL anywhere, the listener builds
//! no CEL inputs, and sampling without expressions is two comparisons.

use std::collections::HashSet;
use std::net::SocketAddr;

use agw_config::model::{Config, FrontendPolicies, LogFields, OtlpProtocol, Sampling};
use agw_config::{FieldError, FieldPath};
use agw_mcp::metrics::McpCall;
use agw_mcp::trace::{Attr, SpanContext};
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::{Uses, to_cel};
use http::HeaderMap;
use http::request::Parts;
use serde_json::{Map, Value, json};

use crate::auth::Identity;
use crate::authz;

/// The access log's built-in fields, as `remove` names them.
pub(crate) const LOG_FIELDS: [&str; 16] = [
    "bind",
    "listener",
    "route",
    "peer",
    "http.method",
    "http.path",
    "http.status",
    "duration_ms",
    "mcp.method",
    "mcp.target",
    "mcp.tool",
    "mcp.requests",
    "a2a.method",
    "a2a.task_id",
    "a2a.context_id",
    "jwt.sub",
];

/// Request headers telemetry expressions do not see: they carry credentials.
const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "x-api-key"];

/// The server span's built-in attributes, as `remove` names them.
const SPAN_ATTRIBUTES: [&str; 12] = [
    "http.request.method",
    "url.path",
    "http.response.status_code",
    "server.port",
    "client.address",
    "http.route",
    "mcp.method.name",
    "mcp.target",
    "gen_ai.tool.name",
    "a2a.method",
    "a2a.task.id",
    "enduser.id",
];

/// Telemetry policy of one config version.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    pub(crate) access_log: AccessLog,
    /// `accessLog.otlp`: which records are exported, with which fields.
    otlp: Option<OtlpLog>,
    pub(crate) tracing: Tracing,
    /// Which request variables any expression reads (none: no inputs are built).
    uses: Uses,
    /// Whether any expression reads `response` (not a rule variable, so not in `uses`).
    reads_response: bool,
    /// Some expression reads `backend`.
    reads_backend: bool,
}

#[derive(Debug, Default)]
pub(crate) struct AccessLog {
    filter: Option<Expression>,
    add: Vec<(String, Expression)>,
    /// Bits over [`LOG_FIELDS`].
    removed: u16,
}

#[derive(Debug, Default)]
struct OtlpLog {
    filter: Option<Expression>,
    /// Its own fields; `None`: the access log's.
    fields: Option<AccessLog>,
}

#[derive(Debug, Default)]
pub(crate) struct Tracing {
    random: Option<Expression>,
    client: Option<Expression>,
    attributes: Vec<(String, Expression)>,
    remove: HashSet<String>,
    filter: Option<Expression>,
}

/// What one request's expressions see, gathered on the way.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    inputs: Inputs,
}

/// What the expressions see: the captured inputs (borrowed), or empty ones when nothing was
/// captured.
fn inputs_of(captured: Option<&Captured>) -> std::borrow::Cow<'_, Inputs> {
    captured.map_or_else(|| std::borrow::Cow::Owned(Inputs::default()), |c| std::borrow::Cow::Borrowed(&c.inputs))
}

impl Telemetry {
    /// Whether any expression needs request inputs.
    pub(crate) fn needs_inputs(&self) -> bool {
        self.uses != Uses::default() || self.reads_response || self.reads_backend
    }

    /// The route's backend, once the route is chosen.
    pub(crate) fn route_chosen(&self, captured: Option<&mut Captured>, route: &crate::route::Route) {
        let Some(c) = captured.filter(|_| self.reads_backend) else { return };
        let (name, kind, protocol) = match &route.backend {
            crate::resolve::Backend::Host { authority, .. } => {
                (authority.to_string(), "static", if route.policies.a2a { "a2a" } else { "http" })
            }
            crate::resolve::Backend::Mcp(m) => {
                (m.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(","), "mcp", "mcp")
            }
            // A weighted split: which backend takes the request is decided later.
            crate::resolve::Backend::Split(_) => (String::new(), "static", "http"),
            crate::resolve::Backend::None => (String::new(), "static", "http"),
        };
        c.inputs.backend = Some(to_cel(&json!({"name": name, "type": kind, "protocol": protocol})));
    }

    /// The request side (`request`, `source`), taken as the request arrives.
    pub(crate) fn capture(&self, parts: &Parts, peer: SocketAddr) -> Option<Box<Captured>> {
        if !self.needs_inputs() {
            return None;
        }
        let request = self.uses.reads("request").then(|| {
            let mut headers = Map::new();
            // Credentials never reach a log line or a span through an expression.
            for name in parts.headers.keys().filter(|n| !CREDENTIAL_HEADERS.contains(&n.as_str())) {
                let values: Vec<&str> = parts.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
                headers.insert(name.as_str().to_string(), Value::String(values.join(", ")));
            }
            let host = crate::route::request_host(parts);
            to_cel(
                &json!({"method": parts.method.as_str(), "path": parts.uri.path(), "host": host, "headers": headers}),
            )
        });
        let source =
            self.uses.reads("source").then(|| to_cel(&json!({"address": peer.ip().to_string(), "port": peer.port()})));
        Some(Box::new(Captured { inputs: Inputs { request, source, ..Inputs::default() } }))
    }

    /// The caller, once authenticated.
    pub(crate) fn identify(&self, captured: Option<&mut Captured>, parts: &Parts, identity: &Identity) {
        let Some(c) = captured else { return };
        let only = Uses::of(["jwt", "apiKey", "basicAuth", "extauthz"].into_iter().filter(|n| self.uses.reads(n)));
        let peer = SocketAddr::from(([0, 0, 0, 0], 0));
        let v = authz::request_vars(parts, "", peer, identity, only);
        c.inputs.jwt = v.jwt;
        c.inputs.api_key = v.api_key;
        c.inputs.basic_auth = v.basic_auth;
        c.inputs.extauthz = v.extauthz;
    }

    /// Whether this request is traced: with a client `traceparent`, `clientSampling` (default
    /// true) and the client's sampled flag must both say so; without one, `randomSampling`
    /// (default false) decides. Returns the server span and its parent.
    pub(crate) fn sample(
        &self,
        headers: &HeaderMap,
        captured: Option<&Captured>,
    ) -> Option<(SpanContext, Option<[u8; 8]>)> {
        let inputs = || inputs_of(captured);
        let decide = |e: &Expression| e.eval_sample(&inputs(), agw_mcp::trace::random_unit());
        match SpanContext::client(headers) {
            Some((parent, client_sampled)) => {
                let traced = self.tracing.client.as_ref().is_none_or(decide);
                (traced && client_sampled).then(|| SpanContext::server_under(Some(parent)))
            }
            None => self.tracing.random.as_ref().is_some_and(decide).then(|| SpanContext::server_under(None)),
        }
    }

    /// Adds the response side (`response`, `mcp`) for the end-of-request expressions.
    pub(crate) fn finish(&self, captured: Option<&mut Captured>, status: u16, mcp: Option<&McpCall>) {
        let Some(c) = captured else { return };
        if self.reads_response {
            c.inputs.response = Some(to_cel(&json!({"code": status})));
        }
        if self.uses.reads("mcp") {
            c.inputs.mcp = mcp.map(|m| to_cel(&mcp_json(m)));
        }
    }

    /// Whether the access log records this request.
    pub(crate) fn log_this(&self, captured: Option<&Captured>) -> bool {
        match &self.access_log.filter {
            None => true,
            Some(f) => f.eval_bool(&inputs_of(captured)),
        }
    }

    /// Whether the access log keeps built-in field `name`.
    pub(crate) fn keeps(&self, name: &str) -> bool {
        // The common case (nothing removed) costs one comparison per field.
        self.access_log.removed == 0
            || LOG_FIELDS.iter().position(|f| *f == name).is_none_or(|i| self.access_log.removed & (1 << i) == 0)
    }

    /// The added access-log fields as one JSON object, `None` when there are none.
    pub(crate) fn added_fields(&self, captured: Option<&Captured>) -> Option<String> {
        if self.access_log.add.is_empty() {
            return None;
        }
        let inputs = inputs_of(captured);
        let fields: Map<String, Value> = self
            .access_log
            .add
            .iter()
            .filter_map(|(name, e)| e.eval_json(&inputs).map(|v| (name.clone(), v)))
            .collect();
        Some(Value::Object(fields).to_string())
    }

    /// Whether access-log records are exported over OTLP.
    pub(crate) fn exports_logs(&self) -> bool {
        self.otlp.is_some()
    }

    /// The OTLP log record of this request, if it is exported (`accessLog.otlp.filter`, else
    /// the access log's filter): built-in fields not removed, then the added ones.
    pub(crate) fn log_record(
        &self,
        builtin: Vec<(&'static str, Attr)>,
        captured: Option<&Captured>,
        trace: Option<SpanContext>,
    ) -> Option<agw_mcp::otlp::LogRecord> {
        let otlp = self.otlp.as_ref()?;
        let inputs = || inputs_of(captured);
        let keep = match &otlp.filter {
            Some(f) => f.eval_bool(&inputs()),
            None => self.log_this(captured),
        };
        if !keep {
            return None;
        }
        let fields = otlp.fields.as_ref().unwrap_or(&self.access_log);
        let mut attributes: Vec<(String, Attr)> = builtin
            .into_iter()
            .filter(|(k, _)| LOG_FIELDS.iter().position(|f| f == k).is_none_or(|i| fields.removed & (1 << i) == 0))
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        if !fields.add.is_empty() {
            let inputs = inputs();
            for (name, e) in &fields.add {
                let value = match e.eval_json(&inputs) {
                    Some(Value::String(s)) => Attr::Str(s),
                    Some(Value::Number(n)) if n.is_i64() => Attr::Int(n.as_i64().unwrap_or_default()),
                    Some(v) => Attr::Str(v.to_string()),
                    None => continue,
                };
                attributes.push((name.clone(), value));
            }
        }
        Some(agw_mcp::otlp::LogRecord { time: std::time::SystemTime::now(), body: "request".into(), attributes, trace })
    }

    /// Whether the request's span is exported (`tracing.filter`).
    pub(crate) fn export_span(&self, captured: Option<&Captured>) -> bool {
        match &self.tracing.filter {
            None => true,
            Some(f) => f.eval_bool(&inputs_of(captured)),
        }
    }

    /// The server span's attributes: built-ins not removed, then the configured ones.
    pub(crate) fn span_attributes(
        &self,
        builtin: Vec<(&'static str, Attr)>,
        captured: Option<&Captured>,
    ) -> Vec<(std::borrow::Cow<'static, str>, Attr)> {
        let mut out: Vec<(std::borrow::Cow<'static, str>, Attr)> = builtin
            .into_iter()
            .filter(|(k, _)| !self.tracing.remove.contains(*k))
            .map(|(k, v)| (k.into(), v))
            .collect();
        if !self.tracing.attributes.is_empty() {
            let inputs = inputs_of(captured);
            for (name, e) in &self.tracing.attributes {
                let value = match e.eval_json(&inputs) {
                    Some(Value::String(s)) => Attr::Str(s),
                    Some(Value::Number(n)) if n.is_i64() => Attr::Int(n.as_i64().unwrap_or_default()),
                    Some(v) => Attr::Str(v.to_string()),
                    None => continue,
                };
                out.retain(|(k, _)| k != name);
                out.push((name.clone().into(), value));
            }
        }
        out
    }
}

/// The `mcp` variable at the end of a request: `{method, target, tool: {name, target}}`.
fn mcp_json(c: &McpCall) -> Value {
    let mut v = json!({"method": c.method});
    if let Some(t) = &c.target {
        v["target"] = json!(t);
    }
    if let Some(tool) = &c.tool {
        v["tool"] = json!({"name": tool, "target": c.target});
    }
    v
}

/// Compiles the telemetry policy of `config`; problems are located errors and warnings.
pub(crate) fn resolve(config: &Config, errors: &mut Vec<FieldError>, warnings: &mut Vec<FieldError>) -> Telemetry {
    let mut c = Compiler { errors, warnings, uses: Vec::new() };
    let front = config.frontend_policies.as_ref();
    let settings = config.config.as_ref();
    let root = FieldPath::root();
    let access_log = if let Some((name, log)) = front.and_then(access_log_of) {
        let at = root.key("frontendPolicies").key(name);
        c.access_log(&at, log.filter.as_deref(), &log.add, &log.remove, (&at, &at))
    } else if let Some(l) = settings.and_then(|s| s.logging.as_ref()) {
        let at = root.key("config").key("logging");
        let empty = LogFields::default();
        let fields = l.fields.as_ref().unwrap_or(&empty);
        let f_at = at.key("fields");
        c.access_log(&at, l.filter.as_deref(), &fields.add, &fields.remove, (&f_at, &f_at))
    } else {
        AccessLog::default()
    };
    let otlp = front
        .and_then(access_log_of)
        .and_then(|(name, l)| Some((root.key("frontendPolicies").key(name).key("otlp"), l.otlp.as_ref()?)))
        .map(|(at, o)| OtlpLog {
            filter: o.filter.as_deref().and_then(|f| c.compile(at.key("filter"), f)),
            fields: o.fields.as_ref().map(|f| {
                let f_at = at.key("fields");
                c.access_log(&at, None, &f.add, &f.remove, (&f_at, &f_at))
            }),
        });
    let tracing = if let Some(t) = front.and_then(|f| f.tracing.as_ref()) {
        let at = root.key("frontendPolicies").key("tracing");
        c.tracing(
            &at,
            (t.random_sampling.as_ref(), t.client_sampling.as_ref()),
            (&t.attributes, &t.remove, &at),
            t.filter.as_deref(),
        )
    } else if let Some(t) = settings.and_then(|s| s.tracing.as_ref()) {
        let at = root.key("config").key("tracing");
        let empty = LogFields::default();
        let fields = t.fields.as_ref().unwrap_or(&empty);
        c.tracing(
            &at,
            (t.random_sampling.as_ref(), t.client_sampling.as_ref()),
            (&fields.add, &fields.remove, &at.key("fields")),
            None,
        )
    } else {
        Tracing::default()
    };
    let uses = Uses::of(c.uses.iter().copied());
    Telemetry {
        access_log,
        otlp,
        tracing,
        uses,
        reads_response: c.uses.contains(&"response"),
        reads_backend: c.uses.contains(&"backend"),
    }
}

struct Compiler<'a> {
    errors: &'a mut Vec<FieldError>,
    warnings: &'a mut Vec<FieldError>,
    uses: Vec<&'static str>,
}

impl Compiler<'_> {
    fn compile(&mut self, at: FieldPath, source: &str) -> Option<Expression> {
        match Expression::compile(source) {
            Ok(e) => {
                for v in agw_policy::expr::VARIABLES {
                    if e.reads(v) && !self.uses.contains(&v) {
                        self.uses.push(v);
                    }
                }
                Some(e)
            }
            Err(msg) => {
                self.errors.push(FieldError::new(at, msg));
                None
            }
        }
    }

    fn fields(
        &mut self,
        at: &FieldPath,
        add: &std::collections::BTreeMap<String, String>,
    ) -> Vec<(String, Expression)> {
        add.iter().filter_map(|(name, src)| Some((name.clone(), self.compile(at.key(name), src)?))).collect()
    }

    fn access_log(
        &mut self,
        at: &FieldPath,
        filter: Option<&str>,
        add: &std::collections::BTreeMap<String, String>,
        remove: &[String],
        (add_at, remove_at): (&FieldPath, &FieldPath),
    ) -> AccessLog {
        let filter = filter.and_then(|f| self.compile(at.key("filter"), f));
        let add = self.fields(&add_at.key("add"), add);
        let mut removed = 0u16;
        for (i, name) in remove.iter().enumerate() {
            match LOG_FIELDS.iter().position(|f| f == name) {
                Some(bit) => removed |= 1 << bit,
                None => self.warnings.push(FieldError::new(
                    remove_at.key("remove").index(i),
                    format!("the access log has no field `{name}` (its fields: {})", LOG_FIELDS.join(", ")),
                )),
            }
        }
        AccessLog { filter, add, removed }
    }

    fn tracing(
        &mut self,
        at: &FieldPath,
        (random, client): (Option<&Sampling>, Option<&Sampling>),
        (attributes, remove, fields_at): (&std::collections::BTreeMap<String, String>, &[String], &FieldPath),
        filter: Option<&str>,
    ) -> Tracing {
        let random = random.and_then(|s| self.compile(at.key("randomSampling"), &s.0));
        let client = client.and_then(|s| self.compile(at.key("clientSampling"), &s.0));
        let attr_key = if fields_at == at { "attributes" } else { "add" };
        let attributes = self.fields(&fields_at.key(attr_key), attributes);
        for (i, name) in remove.iter().enumerate() {
            if !SPAN_ATTRIBUTES.contains(&name.as_str()) {
                self.warnings.push(FieldError::new(
                    fields_at.key("remove").index(i),
                    format!("spans have no attribute `{name}` (theirs: {})", SPAN_ATTRIBUTES.join(", ")),
                ));
            }
        }
        let filter = filter.and_then(|f| self.compile(at.key("filter"), f));
        Tracing { random, client, attributes, remove: remove.iter().cloned().collect(), filter }
    }
}

/// The collectors a config names (traces, access-log records), to tell a reload that changed
/// them: they are read at start-up only.
pub(crate) fn collectors(config: &Config) -> [Option<String>; 2] {
    let describe = |e: Exporter| format!("{} {:?} {:?} {:?}", e.endpoint, e.protocol, e.path, e.headers);
    [exporter(config).map(describe), log_exporter(config).map(describe)]
}

/// `frontendPolicies.accessLog`, or its alias `logging`, with the name it was written under.
fn access_log_of(front: &FrontendPolicies) -> Option<(&'static str, &agw_config::model::AccessLog)> {
    front.access_log.as_ref().map(|l| ("accessLog", l)).or(front.logging.as_ref().map(|l| ("logging", l)))
}

fn protocol(p: Option<OtlpProtocol>) -> agw_mcp::trace::Protocol {
    match p.unwrap_or_default() {
        OtlpProtocol::Grpc => agw_mcp::trace::Protocol::Grpc,
        OtlpProtocol::Http => agw_mcp::trace::Protocol::Http,
    }
}

/// Where access-log records are exported (`accessLog.otlp`), read at start-up.
pub(crate) fn log_exporter(config: &Config) -> Option<Exporter> {
    let front = config.frontend_policies.as_ref()?;
    let (name, log) = access_log_of(front)?;
    let o = log.otlp.as_ref()?;
    Some(Exporter {
        endpoint: format!("http://{}", o.host.as_deref().unwrap_or_default()),
        protocol: protocol(o.protocol),
        path: o.path.clone(),
        headers: HeaderMap::new(),
        at: FieldPath::root().key("frontendPolicies").key(name).key("otlp").key("host"),
    })
}

/// Where spans are exported: from `frontendPolicies.tracing` or `config.tracing`.
pub(crate) struct Exporter {
    pub(crate) endpoint: String,
    pub(crate) protocol: agw_mcp::trace::Protocol,
    pub(crate) path: Option<String>,
    pub(crate) headers: HeaderMap,
    /// Where the endpoint was written, for errors.
    pub(crate) at: FieldPath,
}

/// The exporter the config asks for, if any (read at start-up).
pub(crate) fn exporter(config: &Config) -> Option<Exporter> {
    if let Some(t) = config.frontend_policies.as_ref().and_then(|f| f.tracing.as_ref()) {
        return Some(Exporter {
            endpoint: format!("http://{}", t.host.as_deref().unwrap_or_default()),
            protocol: protocol(t.protocol),
            path: t.path.clone(),
            headers: HeaderMap::new(),
            at: FieldPath::root().key("frontendPolicies").key("tracing").key("host"),
        });
    }
    let t = config.config.as_ref()?.tracing.as_ref()?;
    let mut headers = HeaderMap::new();
    for (name, value) in &t.headers {
        // Checked at validation; a bad pair cannot get here, and is skipped if it did.
        if let (Ok(n), Ok(mut v)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value.expose()))
        {
            v.set_sensitive(true);
            headers.append(n, v);
        }
    }
    Some(Exporter {
        endpoint: t.otlp_endpoint.clone().unwrap_or_default(),
        protocol: protocol(t.otlp_protocol),
        path: t.path.clone(),
        headers,
        at: FieldPath::root().key("config").key("tracing").key("otlpEndpoint"),
    })
}
