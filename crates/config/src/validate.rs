//! Checks that need no I/O and no compilation: shapes serde cannot express (exactly one of
//! several keys), names, addresses, and the features this gateway does not implement yet.
//!
//! The list of "not supported yet" features lives here, in one place, so that it shrinks as
//! features land and nothing agentgateway accepts is ever silently ignored.

mod backend;
mod external;
mod front;
mod tls;
mod traffic;

use std::collections::HashSet;

use crate::error::{FieldError, FieldPath};
use crate::model::{
    AuthMode, BasicAuth, Bind, Config, FrontendPolicies, GatewayPolicies, HeaderCase, HeaderModifier, HistogramMode,
    JwtAuth, Listener, ListenerProtocol, LocalRateLimits, MAX_WORKER_THREADS, McpBackend, McpHost, McpSettings,
    McpTarget, PathMatch, RateLimitKind, Route, RouteBackend, RoutePolicies, Settings, ToolFilter, ToolPinning,
    Unsupported, WorkerThreads, present,
};

pub(crate) fn validate(config: &Config) -> Vec<FieldError> {
    let mut v = Validator::default();
    v.config(config);
    v.errors
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn err(&mut self, path: FieldPath, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    fn unsupported<'a>(&mut self, at: &FieldPath, items: impl Iterator<Item = (&'static str, &'a Unsupported)>) {
        for (name, _) in items {
            self.errors.push(FieldError::not_supported(at.key(name)));
        }
    }

    fn config(&mut self, c: &Config) {
        let root = FieldPath::root();
        self.unsupported(&root, c.unsupported());
        if let Some(s) = &c.config {
            self.settings(&root.key("config"), s);
        }
        if let Some(f) = &c.frontend_policies {
            self.frontend(&root.key("frontendPolicies"), f);
        }
        self.telemetry_forms(c);
        let mut ports = HashSet::new();
        for (i, bind) in c.binds.iter().enumerate() {
            let at = root.key("binds").index(i);
            if bind.port != 0 && !ports.insert(bind.port) {
                self.err(at.key("port"), format!("port {} is bound twice; put both listeners in one bind", bind.port));
            }
            self.bind(&at, bind);
        }
        self.front_door(c);
    }

    /// The deprecated `config.logging.{filter, fields}` and `config.tracing` mean the same as
    /// `frontendPolicies.accessLog` and `.tracing`: one form each, as in agentgateway.
    fn telemetry_forms(&mut self, c: &Config) {
        let front = c.frontend_policies.as_ref();
        let settings = c.config.as_ref();
        let old_log = settings.and_then(|s| s.logging.as_ref()).filter(|l| l.filter.is_some() || l.fields.is_some());
        if old_log.is_some() && front.is_some_and(|f| f.access_log.is_some() || f.logging.is_some()) {
            self.err(
                FieldPath::root().key("config").key("logging"),
                "cannot use the deprecated config.logging.filter/fields together with frontendPolicies.accessLog",
            );
        }
        if settings.is_some_and(|s| s.tracing.is_some()) && front.is_some_and(|f| f.tracing.is_some()) {
            self.err(
                FieldPath::root().key("config").key("tracing"),
                "cannot use the deprecated config.tracing together with frontendPolicies.tracing",
            );
        }
    }

    /// An OTLP collector given as `host` (and an HTTP `path`).
    fn collector(&mut self, at: &FieldPath, host: Option<&str>, path: Option<&str>, elsewhere: bool) {
        match host {
            None if !elsewhere => self.err(at.key("host"), "required: the collector as host:port, e.g. localhost:4317"),
            Some(h) if h.contains("://") || h.parse::<http::uri::Authority>().is_err() => {
                self.err(at.key("host"), "host:port, e.g. localhost:4317")
            }
            _ => {}
        }
        if path.is_some_and(|p| !p.starts_with('/')) {
            self.err(at.key("path"), "a path starting with /");
        }
    }

    fn frontend(&mut self, at: &FieldPath, f: &FrontendPolicies) {
        self.unsupported(at, f.unsupported());
        if f.access_log.is_some() && f.logging.is_some() {
            self.err(at.key("logging"), "`logging` is an alias of `accessLog`: set one of them");
        }
        for (name, log) in [("accessLog", &f.access_log), ("logging", &f.logging)] {
            if let Some(log) = log {
                self.unsupported(&at.key(name), present([("database", &log.database)]));
                if let Some(o) = &log.otlp {
                    let at = at.key(name).key("otlp");
                    self.unsupported(
                        &at,
                        present([("backend", &o.backend), ("service", &o.service), ("policies", &o.policies)]),
                    );
                    self.collector(
                        &at,
                        o.host.as_deref(),
                        o.path.as_deref(),
                        o.backend.is_some() || o.service.is_some(),
                    );
                }
            }
        }
        if let Some(t) = &f.tracing {
            let at = at.key("tracing");
            self.unsupported(
                &at,
                present([
                    ("backend", &t.backend),
                    ("service", &t.service),
                    ("policies", &t.policies),
                    ("resources", &t.resources),
                ]),
            );
            self.collector(&at, t.host.as_deref(), t.path.as_deref(), t.backend.is_some() || t.service.is_some());
        }
        if let Some(http) = &f.http {
            let at = at.key("http");
            if http.http1_header_case == Some(HeaderCase::Preserve) {
                self.errors.push(FieldError::not_supported(at.key("http1HeaderCase")));
            }
            if let Some(size) = http.http2_frame_size
                && !(16_384..=16_777_215).contains(&size)
            {
                self.err(at.key("http2FrameSize"), "must be between 16384 and 16777215 (RFC 9113)");
            }
            let positive = [
                ("maxBufferSize", http.max_buffer_size),
                ("http1MaxHeaders", http.http1_max_headers),
                ("maxBufferedRequestBytes", http.max_buffered_request_bytes),
            ];
            for (name, value) in positive {
                if value == Some(0) {
                    self.err(at.key(name), "must be more than 0");
                }
            }
            if let (Some(each), Some(all)) = (http.max_buffer_size, http.max_buffered_request_bytes)
                && all < each
            {
                self.err(
                    at.key("maxBufferedRequestBytes"),
                    "is smaller than `maxBufferSize`: one request of the largest size could never be read",
                );
            }
            if http.http2_keepalive_timeout.is_some() && http.http2_keepalive_interval.is_none() {
                self.err(at.key("http2KeepaliveTimeout"), "has no effect without `http2KeepaliveInterval`");
            }
            let durations = [
                ("http1IdleTimeout", http.http1_idle_timeout),
                ("requestHeaderTimeout", http.request_header_timeout),
                ("requestBodyTimeout", http.request_body_timeout),
                ("maxConnectionDuration", http.max_connection_duration),
            ];
            for (name, value) in durations {
                if value.is_some_and(|d| d.get().is_zero()) {
                    self.err(at.key(name), "must be more than 0 (leave it out for the default)");
                }
            }
        }
        if let Some(tls) = &f.tls {
            self.frontend_tls(&at.key("tls"), tls);
        }
        if let Some(tcp) = &f.tcp
            && tcp.max_connections_per_worker == Some(0)
        {
            self.err(at.key("tcp").key("maxConnectionsPerWorker"), "must be more than 0");
        }
    }

    fn settings(&mut self, at: &FieldPath, s: &Settings) {
        self.unsupported(at, s.unsupported());
        for (name, addr) in
            [("adminAddr", &s.admin_addr), ("readinessAddr", &s.readiness_addr), ("statsAddr", &s.stats_addr)]
        {
            if let Some(addr) = addr
                && let Err(msg) = check_addr(addr)
            {
                self.err(at.key(name), msg);
            }
        }
        if let Some(logging) = &s.logging {
            let at = at.key("logging");
            self.unsupported(&at, present([("database", &logging.database)]));
        }
        if let Some(t) = &s.tracing {
            let at = at.key("tracing");
            match t.otlp_endpoint.as_deref() {
                None => self.err(at.key("otlpEndpoint"), "required: the collector's URL, e.g. http://localhost:4317"),
                Some(e) if !["http://", "https://"].iter().any(|p| e.starts_with(p) && e.len() > p.len()) => {
                    self.err(at.key("otlpEndpoint"), "an http:// or https:// URL, e.g. http://localhost:4317")
                }
                Some(_) => {}
            }
            for (name, value) in &t.headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    self.err(at.key("headers").key(name), "not a valid HTTP header name");
                } else if http::HeaderValue::from_str(value.expose()).is_err() {
                    self.err(at.key("headers").key(name), "not a valid HTTP header value");
                }
            }
            if t.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
                self.err(at.key("path"), "a path starting with /");
            }
        }
        if let Some(session) = &s.session
            && !is_session_key(session.key.expose())
        {
            self.err(
                at.key("session").key("key"),
                "a session key is 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`",
            );
        }
        if let Some(WorkerThreads::Count(n)) = s.worker_threads
            && !(1..=MAX_WORKER_THREADS as u64).contains(&n)
        {
            self.err(at.key("workerThreads"), "between 1 and 1024");
        }
        if s.enable_ipv6 == Some(true) {
            self.err(
                at.key("enableIpv6"),
                "not supported yet: this gateway listens on IPv4 only (`false` is accepted)",
            );
        }
        if matches!(s.histograms, Some(HistogramMode::Native | HistogramMode::Both)) {
            self.err(at.key("histograms"), "not supported yet: only `classic` histograms are exported");
        }
        if s.listener.is_some() {
            self.err(at.key("listener"), "`listener` has been removed; move to `frontendPolicies` (a top-level key)");
        }
        if let Some(m) = &s.mcp {
            self.mcp_settings(&at.key("mcp"), m);
        }
    }

    fn mcp_settings(&mut self, at: &FieldPath, m: &McpSettings) {
        if m.max_batch_size == Some(0) {
            self.err(at.key("maxBatchSize"), "at least 1");
        }
        if m.request_timeout.is_some_and(|d| d.get().is_zero()) {
            self.err(at.key("requestTimeout"), "a duration above zero");
        }
        let Some(q) = &m.quotas else { return };
        let at = at.key("quotas");
        // Bounded both ways: a rate of 1e-300 would make "when to retry" overflow.
        let mut rate = |at: FieldPath, v: Option<f64>, min: f64| {
            if v.is_some_and(|v| !(min..=1e9).contains(&v)) {
                self.err(at, format!("a number from {min} to 1000000000"));
            }
        };
        rate(at.key("newSessionsPerSecond"), q.new_sessions_per_second, 0.001);
        rate(at.key("newSessionsBurst"), q.new_sessions_burst, 1.0);
        if let Some(a) = &q.anonymous {
            let at = at.key("anonymous");
            rate(at.key("newSessionsPerSecond"), a.new_sessions_per_second, 0.001);
            rate(at.key("newSessionsBurst"), a.new_sessions_burst, 1.0);
            rate(at.key("newSessionsPerSecondPerAddress"), a.new_sessions_per_second_per_address, 0.001);
            rate(at.key("newSessionsBurstPerAddress"), a.new_sessions_burst_per_address, 1.0);
        }
    }

    fn bind(&mut self, at: &FieldPath, b: &Bind) {
        self.unsupported(
            at,
            present([("protocol", &b.protocol), ("tunnelProtocol", &b.tunnel_protocol), ("mode", &b.mode)]),
        );
        let mut names = HashSet::new();
        for (i, l) in b.listeners.iter().enumerate() {
            let at = at.key("listeners").index(i);
            if let Some(name) = &l.name
                && !names.insert(name.as_str())
            {
                self.err(at.key("name"), format!("listener name `{name}` is used twice in this bind"));
            }
            self.listener(&at, l);
        }
        // One handshake decides the protocol of a connection before its listener is known.
        if let Some(first) = b.listeners.first() {
            let https = |l: &Listener| l.protocol == Some(ListenerProtocol::Https);
            for (i, l) in b.listeners.iter().enumerate().skip(1) {
                if https(l) != https(first) {
                    self.err(
                        at.key("listeners").index(i).key("protocol"),
                        "every listener of a bind must be HTTPS, or none: put HTTP and HTTPS on separate ports",
                    );
                }
            }
        }
    }

    fn listener(&mut self, at: &FieldPath, l: &Listener) {
        if let Some(tcp) = &l.tcp_routes {
            self.unsupported(at, std::iter::once(("tcpRoutes", tcp)));
        }
        match l.protocol.unwrap_or(ListenerProtocol::Http) {
            ListenerProtocol::Http => {
                if l.tls.is_some() {
                    self.err(at.key("tls"), "`tls` needs `protocol: HTTPS`");
                }
            }
            ListenerProtocol::Https => match &l.tls {
                Some(tls) => self.listener_tls(&at.key("tls"), tls),
                None => self.err(at.key("tls"), "missing: `protocol: HTTPS` needs `tls: {cert: <file>, key: <file>}`"),
            },
            ListenerProtocol::Tls | ListenerProtocol::Tcp | ListenerProtocol::Hbone => {
                self.err(at.key("protocol"), "not supported yet (only HTTP listeners)")
            }
        }
        if let Some(h) = &l.hostname
            && let Err(msg) = check_hostname(h)
        {
            self.err(at.key("hostname"), msg);
        }
        if let Some(p) = &l.policies {
            self.gateway_policies(&at.key("policies"), p);
        }
        for (i, r) in l.routes.iter().enumerate() {
            self.route(&at.key("routes").index(i), r);
        }
    }

    fn rate_limits(&mut self, at: &FieldPath, l: &LocalRateLimits) {
        let (entries, at_of): (_, Box<dyn Fn(usize) -> FieldPath>) = match l {
            LocalRateLimits::List(_) => (l.entries(), Box::new(|i| at.index(i))),
            LocalRateLimits::Conditional(_) => (l.entries(), Box::new(|i| at.key("conditional").index(i))),
        };
        if l.is_conditional() {
            if entries.is_empty() {
                self.err(at.key("conditional"), "needs at least one entry");
            }
            if entries.len() > 64 {
                self.err(at.key("conditional"), "at most 64 entries");
            }
            if let Some(i) = entries.iter().position(|(c, _)| c.is_none())
                && i + 1 != entries.len()
            {
                self.err(at_of(i), "an entry without a condition is the fallback and must be last");
            }
        }
        for (i, (_, r)) in entries.iter().enumerate() {
            let at = at_of(i);
            if r.kind == Some(RateLimitKind::Tokens) {
                self.errors.push(FieldError::not_supported(at.key("type")));
            }
            if r.max_tokens == 0 {
                self.err(at.key("maxTokens"), "must be more than 0");
            }
            if r.tokens_per_fill == 0 {
                self.err(at.key("tokensPerFill"), "must be more than 0");
            } else if r.tokens_per_fill > r.max_tokens && r.max_tokens > 0 {
                self.err(at.key("tokensPerFill"), "cannot be more than `maxTokens` (the bucket's size)");
            }
            if r.fill_interval.get().is_zero() {
                self.err(at.key("fillInterval"), "must be more than 0");
            }
        }
    }

    fn gateway_policies(&mut self, at: &FieldPath, p: &GatewayPolicies) {
        self.unsupported(at, p.unsupported());
        if let Some(r) = &p.ext_authz {
            self.ext_authz(&at.key("extAuthz"), r);
        }
        if let Some(l) = &p.local_rate_limit {
            self.rate_limits(&at.key("localRateLimit"), l);
        }
        if let Some(j) = &p.jwt_auth {
            self.jwt_auth(&at.key("jwtAuth"), j);
        }
        if let Some(b) = &p.basic_auth {
            self.basic_auth(&at.key("basicAuth"), b);
        }
    }

    fn jwt_auth(&mut self, at: &FieldPath, j: &JwtAuth) {
        match (&j.providers, &j.issuer, &j.jwks) {
            (Some(p), None, None) => {
                if p.is_empty() {
                    self.err(at.key("providers"), "needs at least one provider");
                }
                if j.audiences.is_some() || j.jwt_validation_options.is_some() {
                    self.err(at.clone(), "with `providers`, set `audiences` and `jwtValidationOptions` per provider");
                }
                // Tokens are matched to a provider by `iss`: a second provider with the same
                // issuer would never be consulted.
                for (i, provider) in p.iter().enumerate() {
                    if p[..i].iter().any(|earlier| earlier.issuer == provider.issuer) {
                        self.err(
                            at.key("providers").index(i).key("issuer"),
                            "duplicate issuer: each provider needs its own (put all of an issuer's keys in one JWKS)",
                        );
                    }
                }
            }
            (None, Some(_), Some(_)) => {}
            (None, None, _) => self.err(at.clone(), "needs `issuer` and `jwks` (or `providers`)"),
            (None, Some(_), None) => {
                self.err(at.key("jwks"), "missing: the issuer's keys (`jwks: {file: …}`, `{url: …}` or inline JSON)")
            }
            (Some(_), _, _) => self.err(at.key("providers"), "use either `providers` or `issuer`/`jwks`, not both"),
        }
    }

    fn basic_auth(&mut self, at: &FieldPath, b: &BasicAuth) {
        if b.mode == Some(AuthMode::Permissive) {
            self.err(at.key("mode"), "basicAuth supports `strict` and `optional` only");
        }
    }

    fn route(&mut self, at: &FieldPath, r: &Route) {
        for (i, h) in r.hostnames.iter().enumerate() {
            if let Err(msg) = check_hostname(h) {
                self.err(at.key("hostnames").index(i), msg);
            }
        }
        for (i, m) in r.matches.iter().enumerate() {
            let at = at.key("matches").index(i);
            match &m.path {
                Some(PathMatch::Exact(p)) if !p.starts_with('/') => {
                    self.err(at.key("path").key("exact"), "a path must start with `/`")
                }
                Some(PathMatch::PathPrefix(p)) if !p.starts_with('/') => {
                    self.err(at.key("path").key("pathPrefix"), "a path prefix must start with `/`")
                }
                _ => {}
            }
            if let Some(method) = &m.method
                && (method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                self.err(at.key("method"), format!("`{method}` is not an HTTP method (expected e.g. GET, POST)"));
            }
        }
        if let Some(p) = &r.policies {
            self.route_policies(&at.key("policies"), p);
        }
        self.route_backends(at, r);
        for (i, b) in r.backends.iter().enumerate() {
            self.backend(&at.key("backends").index(i), b);
        }
    }

    fn oidc(&mut self, at: &FieldPath, o: &crate::model::Oidc) {
        let absolute = |u: &str| (u.starts_with("http://") || u.starts_with("https://")) && check_url(u).is_ok();
        if !absolute(&o.redirect_uri) {
            self.err(at.key("redirectURI"), format!("`{}` is not an absolute http(s) URL", o.redirect_uri));
        }
        if o.client_id.is_empty() {
            self.err(at.key("clientId"), "empty");
        }
        let explicit = [o.authorization_endpoint.is_some(), o.token_endpoint.is_some(), o.jwks.is_some()];
        let n = explicit.iter().filter(|e| **e).count();
        if n != 0 && n != 3 {
            self.err(
                at.clone(),
                "`authorizationEndpoint`, `tokenEndpoint` and `jwks` go together (or none: discovery)",
            );
        }
        if n == 3 && o.discovery.is_some() {
            self.err(at.key("discovery"), "not with explicit endpoints");
        }
        if o.token_endpoint_auth.is_some() && n != 3 {
            self.err(at.key("tokenEndpointAuth"), "only with explicit endpoints (discovery reads the provider's)");
        }
        for (name, url) in [("authorizationEndpoint", &o.authorization_endpoint), ("tokenEndpoint", &o.token_endpoint)]
        {
            if let Some(u) = url
                && !absolute(u)
            {
                self.err(at.key(name), format!("`{u}` is not an absolute http(s) URL"));
            }
        }
        if let Some(p) = &o.logout_path
            && !p.starts_with('/')
        {
            self.err(at.key("logoutPath"), "a path must start with `/`");
        }
        for (i, s) in o.scopes.iter().enumerate() {
            if s.is_empty() || s.contains(char::is_whitespace) {
                self.err(at.key("scopes").index(i), format!("`{s}` is not a scope"));
            }
        }
    }

    fn route_policies(&mut self, at: &FieldPath, p: &RoutePolicies) {
        self.unsupported(at, p.unsupported());
        self.traffic(at, p);
        if let Some(l) = &p.local_rate_limit {
            self.rate_limits(&at.key("localRateLimit"), l);
        }
        if let Some(o) = &p.oidc {
            self.oidc(&at.key("oidc"), o);
        }
        if let Some(r) = &p.remote_rate_limit {
            self.remote_rate_limit(&at.key("remoteRateLimit"), r);
        }
        if let Some(r) = &p.ext_authz {
            self.ext_authz(&at.key("extAuthz"), r);
        }
        if let Some(g) = &p.mcp_guardrails {
            self.mcp_guardrails(&at.key("mcpGuardrails"), g);
        }

        if let Some(j) = &p.jwt_auth {
            self.jwt_auth(&at.key("jwtAuth"), j);
        }
        if let Some(b) = &p.basic_auth {
            self.basic_auth(&at.key("basicAuth"), b);
        }
        if let Some(b) = &p.backend_auth {
            self.backend_auth(&at.key("backendAuth"), b);
        }
        if let Some(t) = &p.timeout
            && let Some(idle) = &t.response_idle_timeout
        {
            self.unsupported(&at.key("timeout"), std::iter::once(("responseIdleTimeout", idle)));
        }
        self.header_modifiers(at, &p.request_header_modifier, &p.response_header_modifier);
        if let Some(t) = &p.backend_tls {
            self.backend_tls(&at.key("backendTLS"), t);
        }
    }

    fn header_modifiers(
        &mut self,
        at: &FieldPath,
        request: &Option<HeaderModifier>,
        response: &Option<HeaderModifier>,
    ) {
        for (name, m) in [("requestHeaderModifier", request), ("responseHeaderModifier", response)] {
            let Some(m) = m else { continue };
            let at = at.key(name);
            for (kind, names) in [
                ("add", m.add.keys().collect::<Vec<_>>()),
                ("set", m.set.keys().collect()),
                ("remove", m.remove.iter().collect()),
            ] {
                for h in names {
                    if http_header_name_invalid(h) {
                        self.err(at.key(kind), format!("`{h}` is not a valid header name"));
                    }
                }
            }
        }
    }

    fn backend(&mut self, at: &FieldPath, b: &RouteBackend) {
        self.unsupported(at, b.unsupported());
        let kinds = usize::from(b.host.is_some())
            + usize::from(b.mcp.is_some())
            + usize::from(b.backend.is_some())
            + b.unsupported().count();
        if kinds == 0 {
            self.err(at.clone(), "a backend needs one of `host`, `mcp` or `backend`");
        } else if kinds > 1 {
            self.err(at.clone(), "a backend has exactly one of `host`, `mcp`, `backend`, …; found several");
        }
        if let Some(r) = &b.backend {
            self.backend_ref(&at.key("backend"), r);
        }
        if let Some(host) = &b.host
            && let Err(msg) = check_host_port(host)
        {
            self.err(at.key("host"), msg);
        }
        if let Some(mcp) = &b.mcp {
            self.mcp(&at.key("mcp"), mcp);
        }
        if let Some(p) = &b.policies {
            self.backend_policies(&at.key("policies"), p, false);
        }
    }

    fn mcp(&mut self, at: &FieldPath, m: &McpBackend) {
        self.unsupported(at, present([("sseKeepAlive", &m.sse_keep_alive), ("server", &m.server)]));
        if m.targets.is_empty() {
            self.err(at.key("targets"), "an MCP backend needs at least one target");
        }
        let mut names = HashSet::new();
        for (i, t) in m.targets.iter().enumerate() {
            let at = at.key("targets").index(i);
            if !names.insert(t.name.as_str()) {
                self.err(at.key("name"), format!("target name `{}` is used twice", t.name));
            }
            self.target(&at, t);
        }
        if let Some(p) = &m.tool_pinning {
            self.tool_pinning(&at.key("toolPinning"), p);
        }
    }

    fn tool_pinning(&mut self, at: &FieldPath, p: &ToolPinning) {
        if p.file.is_none() && p.trust_on_first_use.is_none() {
            self.err(at.clone(), "needs `file` (a pin file from `agentgateway pin`), `trustOnFirstUse`, or both");
        }
        if p.file.as_ref().is_some_and(|f| f.trim().is_empty()) {
            self.err(at.key("file"), "names no file");
        }
        if let Some(t) = &p.trust_on_first_use {
            if t.state_file.trim().is_empty() {
                self.err(at.key("trustOnFirstUse").key("stateFile"), "names no file");
            } else if p.file.as_ref() == Some(&t.state_file) {
                self.err(
                    at.key("trustOnFirstUse").key("stateFile"),
                    "must not be the pin file: the gateway writes it, the pin file is yours",
                );
            }
        }
    }

    fn tool_filter(&mut self, at: &FieldPath, f: &ToolFilter) {
        for (list, patterns) in [("allow", &f.allow), ("deny", &f.deny)] {
            for (i, p) in patterns.iter().enumerate() {
                if p.is_empty() {
                    self.err(at.key(list).index(i), "an empty pattern matches no tool");
                } else if p.len() > 256 {
                    self.err(at.key(list).index(i), "longer than 256 bytes");
                }
            }
        }
    }

    fn target(&mut self, at: &FieldPath, t: &McpTarget) {
        if let Err(msg) = check_target_name(&t.name) {
            self.err(at.key("name"), msg);
        }
        self.unsupported(at, present([("condition", &t.condition)]));
        if let Some(o) = &t.openapi {
            self.openapi(&at.key("openapi"), o);
        }
        if let Some(f) = &t.tools {
            self.tool_filter(&at.key("tools"), f);
        }
        if let Some(p) = &t.policies {
            self.backend_policies(&at.key("policies"), p, true);
        }
        let kinds =
            [t.mcp.is_some(), t.sse.is_some(), t.stdio.is_some(), t.openapi.is_some()].iter().filter(|k| **k).count();
        if kinds == 0 {
            self.err(at.clone(), "a target needs one of `mcp`, `sse`, `stdio` or `openapi`");
        } else if kinds > 1 {
            self.err(at.clone(), "a target has exactly one of `mcp`, `sse`, `stdio`, `openapi`; found several");
        }
        for (kind, host) in [("mcp", &t.mcp), ("sse", &t.sse)] {
            let Some(h) = host else { continue };
            self.mcp_host(&at.key(kind), h);
            if h.backend.is_some() && t.policies.is_some() {
                self.err(at.key("policies"), "a target that names a `backend` cannot have `policies` of its own");
            }
        }
        if let Some(s) = &t.stdio
            && s.cmd.trim().is_empty()
        {
            self.err(at.key("stdio").key("cmd"), "names no program");
        }
    }

    fn openapi(&mut self, at: &FieldPath, o: &crate::model::OpenApiTarget) {
        self.unsupported(at, present([("backend", &o.backend)]));
        match &o.host {
            None if o.backend.is_none() => self.err(at.key("host"), "missing: the service, e.g. `localhost:8080`"),
            None => {}
            Some(h) => {
                let ok = if h.contains("://") { check_url(h).is_ok() } else { check_host_port(h).is_ok() };
                if !ok {
                    self.err(at.key("host"), format!("`{h}` is not `host:port` or `http(s)://host[:port]`"));
                }
            }
        }
        if let crate::model::FileInlineOrRemote::Remote(u) = &o.schema
            && let Err(msg) = check_url(&u.url)
        {
            self.err(at.key("schema").key("url"), msg);
        }
    }

    fn mcp_host(&mut self, at: &FieldPath, h: &McpHost) {
        if let Some(b) = &h.backend {
            self.backend_ref(&at.key("backend"), b);
            if h.host.is_some() || h.port.is_some() {
                self.err(at.clone(), "use either `backend` (with `path`) or `host`, not both");
            }
            match &h.path {
                None => self.err(at.clone(), "`backend` needs `path` too: the MCP endpoint's path, e.g. `/mcp`"),
                Some(p) if !p.starts_with('/') => self.err(at.key("path"), "a path must start with `/`"),
                Some(_) => {}
            }
            return;
        }
        let Some(host) = &h.host else {
            self.err(at.key("host"), "missing field `host` (e.g. `host: http://localhost:3001/mcp`)");
            return;
        };
        match (h.port, &h.path) {
            (None, None) => {
                if let Err(msg) = check_url(host) {
                    self.err(at.key("host"), msg);
                }
            }
            (Some(_), Some(path)) => {
                if !path.starts_with('/') {
                    self.err(at.key("path"), "a path must start with `/`");
                }
                if host.contains('/') || host.contains(':') {
                    self.err(at.key("host"), "with `port` and `path`, `host` is a bare host name");
                }
            }
            (Some(_), None) => self.err(at.clone(), "`port` needs `path` too (or write the full URL in `host`)"),
            (None, Some(_)) => self.err(at.clone(), "`path` needs `port` too (or write the full URL in `host`)"),
        }
    }
}

fn is_session_key(k: &str) -> bool {
    let k = k.trim();
    k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `host:port`, `[v6]:port`, or `off`.
pub(crate) fn check_addr(addr: &str) -> Result<(), String> {
    if addr == "off" {
        return Ok(());
    }
    check_host_port(addr)
}

fn check_host_port(s: &str) -> Result<(), String> {
    let bad = || format!("`{s}` is not `host:port` (e.g. `localhost:8080`)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() || host.contains('/') {
        return Err(bad());
    }
    Ok(())
}

fn check_url(text: &str) -> Result<(), String> {
    // Quoted in errors, which reach the log on a reload: without its credentials.
    let s = &crate::redact::url(text);
    let rest = if let Some(r) = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://")) {
        r
    } else if s.contains("://") {
        return Err(format!("`{s}`: only http:// and https:// URLs are supported"));
    } else {
        s
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("`{s}` is not a URL like `http://localhost:3001/mcp`"));
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("`{s}`: bad port `{port}`"));
    }
    Ok(())
}

fn check_hostname(h: &str) -> Result<(), String> {
    let body = h.strip_prefix("*.").unwrap_or(h);
    let ok = !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok || h == "*" { Ok(()) } else { Err(format!("`{h}` is not a host name (or `*.suffix` wildcard)")) }
}

/// Target names become tool-name prefixes: a DNS-label-like name without `_` or `+`.
fn check_target_name(name: &str) -> Result<(), String> {
    if name.contains('_') || name.contains('+') {
        return Err(format!(
            "target name `{name}` contains `_` or `+`, which separate target names from tool names and resource URIs"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("target name `{name}`: use lower-case letters, digits, `-` and `.`"));
    }
    Ok(())
}

fn http_header_name_invalid(h: &str) -> bool {
    h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
