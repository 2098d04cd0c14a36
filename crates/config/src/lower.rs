//! agentgateway's front-door shapes lowered into the one form the gateway runs: `binds`.
//!
//! - `gateways.<g>` becomes a bind on its port, with one listener named `<g>` (its policy
//!   fields are the listener's policies), or one listener `<g>/<name>` per `listeners[]` entry.
//! - `routes[]` are appended to the listeners their `gateways` name (default: the gateway
//!   named `default`), in order, on every listener they resolve to.
//! - `mcp:` becomes a route `default` (namespace `internal`) with one MCP backend: on its own
//!   bind and listener `mcp` matching every path, or appended to gateway listeners matching
//!   `/mcp`, `/sse` and `/.well-known`. agentgateway splits its policies into route and backend
//!   policies; it splits a `binds` route's policies the same way, so keeping them together as
//!   the route's policies is the same configuration.
//! - `backend: <name>` references are replaced by the named backend (`/name` and `name` are the
//!   same); an MCP target's `{backend, path}` becomes the URL `http://<host:port><path>`.
//!
//! Everything else (checking each field) was done on the config as written. What is found
//! here is about how the shapes fit together: references, attachment, ports. [`Origins`]
//! remembers where each lowered piece was written, so later errors point into the file.

use std::collections::{BTreeMap, HashMap};

use crate::error::{FieldError, FieldPath};
use crate::model::{
    Bind, Config, DEFAULT_GATEWAY, DEFAULT_MCP_PORT, ExtAuthz, GatewayProtocol, GatewayRefs, Listener,
    ListenerProtocol, McpBackend, McpGuardrails, McpHost, NamedBackend, PathMatch, RemoteRateLimit, Route,
    RouteBackend, RouteMatch, SimpleMcp, backend_ref_name,
};

/// Routes and MCP targets the lowered config may hold. Attaching a route to many listeners
/// and referencing a large backend many times multiply a small file; past this the config is
/// refused rather than built (no real config comes near it).
pub(crate) const MAX_LOWERED_ITEMS: usize = 200_000;

/// Where the pieces of a lowered config were written: lowered path prefix → source prefix.
#[derive(Debug, Clone, Default)]
pub struct Origins(HashMap<FieldPath, FieldPath>);

impl Origins {
    fn add(&mut self, lowered: FieldPath, source: FieldPath) {
        self.0.insert(lowered, source);
    }

    /// The path in the file as written of a path into the lowered config: its longest prefix
    /// that was lowered, replaced by where that was written.
    pub fn source(&self, path: &FieldPath) -> FieldPath {
        for n in (1..=path.segments().len()).rev() {
            let prefix = path.prefix(n);
            if let Some(source) = self.0.get(&prefix) {
                let rest = path.strip_prefix(&prefix).unwrap_or_default();
                return source.join(&rest);
            }
        }
        path.clone()
    }
}

/// A gateway's protocol as a lowered listener's: `HTTPS`, or left out for HTTP.
fn https_protocol(written: Option<GatewayProtocol>, tls: bool) -> Option<ListenerProtocol> {
    (GatewayProtocol::effective(written, tls) == GatewayProtocol::Https).then_some(ListenerProtocol::Https)
}

/// Lowers `config` into `binds` only. Problems with references, attachment and ports are
/// returned with it (located in the source); the config is usable only when there are none.
pub(crate) fn lower(config: &Config) -> (Config, Origins, Vec<FieldError>) {
    let mut l = Lowering {
        named: &config.backends,
        binds: config.binds.clone(),
        origins: Origins::default(),
        errors: Vec::new(),
        attach: BTreeMap::new(),
        ports: BTreeMap::new(),
        budget: MAX_LOWERED_ITEMS,
        budget_spent: false,
    };
    l.user_binds();
    l.gateways(config);
    for (r, route) in config.routes.iter().enumerate() {
        l.attached_route(config, r, route);
    }
    if let Some(m) = &config.mcp {
        l.mcp(config, m);
    }
    let lowered = Config {
        binds: l.binds,
        gateways: Default::default(),
        routes: Vec::new(),
        backends: Vec::new(),
        mcp: None,
        ..config.clone()
    };
    (lowered, l.origins, l.errors)
}

/// A listener that routes can attach to: bind index, listener index, serves HTTP.
#[derive(Debug, Clone, Copy)]
struct Slot {
    bind: usize,
    listener: usize,
    http: bool,
}

struct Lowering<'a> {
    named: &'a [NamedBackend],
    binds: Vec<Bind>,
    origins: Origins,
    errors: Vec<FieldError>,
    /// Gateway references (`g`, `g/listener`) → the listeners they stand for.
    attach: BTreeMap<String, Vec<Slot>>,
    /// Ports taken so far → who took them (for the message).
    ports: BTreeMap<u16, String>,
    /// Routes and targets that may still be added (see [`MAX_LOWERED_ITEMS`]).
    budget: usize,
    /// The budget ran out (reported once).
    budget_spent: bool,
}

/// What a copy of `route` costs against the budget: the route and its inline targets.
fn cost(route: &Route) -> usize {
    1 + route.backends.iter().filter_map(|b| b.mcp.as_ref()).map(|m| m.targets.len()).sum::<usize>()
}

fn bind_path(b: usize) -> FieldPath {
    FieldPath::root().key("binds").index(b)
}

fn listener_path(b: usize, l: usize) -> FieldPath {
    bind_path(b).key("listeners").index(l)
}

impl<'a> Lowering<'a> {
    fn err(&mut self, at: FieldPath, message: impl Into<String>) {
        self.errors.push(FieldError::new(at, message));
    }

    /// Spends `units` of the budget for a copy made at `at`; false (and one error) when spent.
    fn spend(&mut self, at: &FieldPath, units: usize) -> bool {
        if units > self.budget {
            if self.budget_spent {
                return false;
            }
            self.budget_spent = true;
            let message = format!(
                "the config grows past {MAX_LOWERED_ITEMS} routes and MCP targets once routes are attached \
                 to their gateways and named backends written in place"
            );
            self.err(at.clone(), message);
            return false;
        }
        self.budget -= units;
        true
    }

    /// Takes `port` for `who`; a port already taken is an error at `at`. Port 0 (any free port)
    /// never conflicts.
    fn take_port(&mut self, port: u16, who: String, at: FieldPath) -> bool {
        if port == 0 {
            return true;
        }
        if let Some(owner) = self.ports.get(&port) {
            let message = format!(
                "port {port} is also used by {owner}; binds, gateways and mcp each need their own port \
                 (attach routes and mcp to one gateway to share a port)"
            );
            self.err(at, message);
            return false;
        }
        self.ports.insert(port, who);
        true
    }

    /// The binds as written keep their place; only their `backend:` references are replaced.
    /// Two binds on one port are reported by validation.
    fn user_binds(&mut self) {
        for b in 0..self.binds.len() {
            let port = self.binds[b].port;
            if port != 0 {
                self.ports.entry(port).or_insert_with(|| format!("binds[{b}]"));
            }
            for l in 0..self.binds[b].listeners.len() {
                let policies = self.binds[b].listeners[l].policies.as_mut();
                if let Some(mut authz) = policies.and_then(|p| p.ext_authz.take()) {
                    self.authz_refs(&listener_path(b, l).key("policies").key("extAuthz"), &mut authz);
                    if let Some(p) = self.binds[b].listeners[l].policies.as_mut() {
                        p.ext_authz = Some(authz);
                    }
                }
                for r in 0..self.binds[b].listeners[l].routes.len() {
                    let at = listener_path(b, l).key("routes").index(r);
                    let mut route = std::mem::take(&mut self.binds[b].listeners[l].routes[r]);
                    self.route_backends(&at, &at, &mut route);
                    self.binds[b].listeners[l].routes[r] = route;
                }
            }
        }
    }

    fn gateways(&mut self, config: &Config) {
        for (name, g) in &config.gateways {
            let at = FieldPath::root().key("gateways").key(name);
            let Some(port) = g.port else {
                self.err(at.key("port"), "required: the port this gateway listens on");
                self.attach.insert(name.clone(), Vec::new());
                continue;
            };
            if !g.listeners.is_empty() && (g.protocol.is_some() || g.tls.is_some() || g.policies().is_some()) {
                self.err(
                    at.clone(),
                    "with `listeners`, only `port` may be set on the gateway itself: \
                     move `protocol`, `tls` and policies onto its listeners",
                );
            }
            self.take_port(port, format!("gateways.{name}"), at.key("port"));
            let b = self.binds.len();
            self.origins.add(bind_path(b), at.clone());
            let mut listeners = Vec::new();
            let mut all = Vec::new();
            if g.listeners.is_empty() {
                let http = GatewayProtocol::effective(g.protocol, g.tls.is_some()).serves_http();
                listeners.push(Listener {
                    name: Some(name.clone()),
                    policies: g.policies(),
                    protocol: https_protocol(g.protocol, g.tls.is_some()),
                    tls: g.tls.clone(),
                    ..Default::default()
                });
                self.origins.add(listener_path(b, 0), at.clone());
                self.origins.add(listener_path(b, 0).key("tls"), at.key("tls"));
                self.origins.add(listener_path(b, 0).key("policies"), at.clone());
                all.push(Slot { bind: b, listener: 0, http });
            }
            for (i, gl) in g.listeners.iter().enumerate() {
                let own = gl.name.clone().unwrap_or_else(|| format!("listener{i}"));
                let reference = format!("{name}/{own}");
                let http = GatewayProtocol::effective(gl.protocol, gl.tls.is_some()).serves_http();
                let slot = Slot { bind: b, listener: i, http };
                listeners.push(Listener {
                    name: Some(reference.clone()),
                    hostname: gl.hostname.clone(),
                    policies: gl.policies(),
                    protocol: https_protocol(gl.protocol, gl.tls.is_some()),
                    tls: gl.tls.clone(),
                    ..Default::default()
                });
                let source = at.key("listeners").index(i);
                self.origins.add(listener_path(b, i).key("tls"), source.key("tls"));
                self.origins.add(listener_path(b, i), source.clone());
                self.origins.add(listener_path(b, i).key("policies"), source);
                self.attach.insert(reference, vec![slot]);
                all.push(slot);
            }
            self.attach.insert(name.clone(), all);
            self.binds.push(Bind { port, listeners, protocol: None, tunnel_protocol: None, mode: None });
        }
    }

    /// The HTTP listeners `refs` (written at `at`) stand for, each once, in order.
    fn resolve_refs(&mut self, at: &FieldPath, refs: &GatewayRefs) -> Vec<Slot> {
        let mut out: Vec<Slot> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, reference) in refs.as_slice().iter().enumerate() {
            let at = match refs {
                GatewayRefs::One(_) => at.clone(),
                GatewayRefs::Many(_) => at.index(i),
            };
            let Some(slots) = self.attach.get(reference) else {
                let known: Vec<&str> = self.attach.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "there are no `gateways`".to_string()
                } else {
                    format!("gateways and listeners: {}", known.join(", "))
                };
                self.err(at, format!("unknown gateway `{reference}` ({hint})"));
                continue;
            };
            let http: Vec<Slot> = slots.iter().copied().filter(|s| s.http).collect();
            if http.is_empty() && !slots.is_empty() {
                self.err(at, format!("gateway `{reference}` has no HTTP listeners"));
            }
            out.extend(http.into_iter().filter(|s| seen.insert((s.bind, s.listener))));
        }
        out
    }

    /// `gateways` as written, or the `default` gateway when it serves HTTP.
    fn refs_or_default(config: &Config, refs: &Option<GatewayRefs>) -> Option<GatewayRefs> {
        match refs {
            Some(r) if !r.as_slice().is_empty() => Some(r.clone()),
            _ => {
                let default = config.gateways.get(DEFAULT_GATEWAY)?;
                let http = if default.listeners.is_empty() {
                    GatewayProtocol::effective(default.protocol, default.tls.is_some()).serves_http()
                } else {
                    default
                        .listeners
                        .iter()
                        .any(|l| GatewayProtocol::effective(l.protocol, l.tls.is_some()).serves_http())
                };
                http.then(|| GatewayRefs::One(DEFAULT_GATEWAY.to_string()))
            }
        }
    }

    /// Where the next route appended to `slot` will be.
    fn next_route(&self, slot: Slot) -> FieldPath {
        let routes = &self.binds[slot.bind].listeners[slot.listener].routes;
        listener_path(slot.bind, slot.listener).key("routes").index(routes.len())
    }

    fn push_route(&mut self, slot: Slot, route: Route) {
        self.binds[slot.bind].listeners[slot.listener].routes.push(route);
    }

    fn attached_route(&mut self, config: &Config, r: usize, route: &crate::model::AttachedRoute) {
        let source = FieldPath::root().key("routes").index(r);
        let Some(refs) = Self::refs_or_default(config, &route.gateways) else {
            let message = "names no `gateways`, and there is no `default` gateway serving HTTP to attach it to";
            self.err(source, message);
            return;
        };
        for slot in self.resolve_refs(&source.key("gateways"), &refs) {
            let mut lowered = route.route();
            if !self.spend(&source, cost(&lowered)) {
                return;
            }
            let at = self.next_route(slot);
            self.origins.add(at.clone(), source.clone());
            self.route_backends(&at, &source, &mut lowered);
            self.push_route(slot, lowered);
        }
    }

    fn mcp(&mut self, config: &Config, m: &SimpleMcp) {
        let at = FieldPath::root().key("mcp");
        let attached = m.gateways.as_ref().is_some_and(|g| !g.as_slice().is_empty());
        if attached && m.port.is_some() {
            self.err(at.key("gateways"), "use either `gateways` or `port`, not both");
            return;
        }
        let refs = if m.port.is_some() { None } else { Self::refs_or_default(config, &m.gateways) };
        match refs {
            Some(refs) => {
                for slot in self.resolve_refs(&at.key("gateways"), &refs) {
                    if !self.spend(&at, 1 + m.targets.len()) {
                        return;
                    }
                    let route = self.mcp_route(m, shared_port_matches());
                    let at = self.next_route(slot);
                    self.mcp_origins(&at);
                    self.push_route(slot, route);
                }
            }
            None => {
                let port = m.port.unwrap_or(DEFAULT_MCP_PORT);
                let (who, where_) = match m.port {
                    Some(_) => ("mcp".to_string(), at.key("port")),
                    None => (format!("mcp (default port {DEFAULT_MCP_PORT})"), at.clone()),
                };
                if !self.take_port(port, who, where_) {
                    return;
                }
                let b = self.binds.len();
                let route = self.mcp_route(
                    m,
                    vec![RouteMatch { path: Some(PathMatch::PathPrefix("/".into())), ..Default::default() }],
                );
                let listener = Listener { name: Some("mcp".into()), routes: vec![route], ..Default::default() };
                self.binds.push(Bind {
                    port,
                    listeners: vec![listener],
                    protocol: None,
                    tunnel_protocol: None,
                    mode: None,
                });
                self.origins.add(bind_path(b), at.clone());
                self.origins.add(listener_path(b, 0), at);
                self.mcp_origins(&listener_path(b, 0).key("routes").index(0));
            }
        }
    }

    fn mcp_origins(&mut self, route: &FieldPath) {
        let at = FieldPath::root().key("mcp");
        self.origins.add(route.clone(), at.clone());
        self.origins.add(route.key("policies"), at.key("policies"));
        self.origins.add(route.key("backends").index(0).key("mcp"), at);
    }

    fn mcp_route(&mut self, m: &SimpleMcp, matches: Vec<RouteMatch>) -> Route {
        let mut backend = m.backend();
        self.target_refs(&FieldPath::root().key("mcp"), &mut backend);
        let mut policies = m.policies.clone();
        let at = FieldPath::root().key("mcp").key("policies");
        if let Some(r) = policies.as_mut().and_then(|p| p.remote_rate_limit.as_mut()) {
            self.service_refs(&at.key("remoteRateLimit"), r);
        }
        if let Some(r) = policies.as_mut().and_then(|p| p.ext_authz.as_mut()) {
            self.authz_refs(&at.key("extAuthz"), r);
        }
        if let Some(g) = policies.as_mut().and_then(|p| p.mcp_guardrails.as_mut()) {
            self.guardrail_refs(&at.key("mcpGuardrails"), g);
        }
        Route {
            name: Some("default".into()),
            namespace: Some("internal".into()),
            matches,
            policies,
            backends: vec![RouteBackend { mcp: Some(backend), ..Default::default() }],
            ..Default::default()
        }
    }

    /// Replaces the `backend:` references of a route (lowered at `at`, written at `source`).
    fn route_backends(&mut self, at: &FieldPath, source: &FieldPath, route: &mut Route) {
        if let Some(r) = route.policies.as_mut().and_then(|p| p.remote_rate_limit.as_mut()) {
            self.service_refs(&source.key("policies").key("remoteRateLimit"), r);
        }
        if let Some(r) = route.policies.as_mut().and_then(|p| p.ext_authz.as_mut()) {
            self.authz_refs(&source.key("policies").key("extAuthz"), r);
        }
        if let Some(g) = route.policies.as_mut().and_then(|p| p.mcp_guardrails.as_mut()) {
            self.guardrail_refs(&source.key("policies").key("mcpGuardrails"), g);
        }
        for (i, b) in route.backends.iter_mut().enumerate() {
            let at = at.key("backends").index(i);
            let source = source.key("backends").index(i);
            if let Some(mcp) = &mut b.mcp {
                self.target_refs(&source.key("mcp"), mcp);
            }
            let Some(reference) = b.backend.take() else { continue };
            let Some((n, named)) = self.named(&source.key("backend"), &reference) else { continue };
            let named_at = FieldPath::root().key("backends").index(n);
            if let Some(p) = &named.policies {
                if b.policies.is_some() {
                    let message = format!("`{reference}` has `policies` of its own: set them there or here, not both");
                    self.err(source.key("policies"), message);
                }
                b.policies = Some(p.clone());
                self.origins.add(at.key("policies"), named_at.key("policies"));
            }
            if let Some(host) = &named.host {
                b.host = Some(host.clone());
                self.origins.add(at.key("host"), named_at.key("host"));
            } else if let Some(mcp) = &named.mcp {
                if !self.spend(&source, mcp.targets.len()) {
                    continue;
                }
                let mut mcp = mcp.clone();
                self.target_refs(&named_at.key("mcp"), &mut mcp);
                b.mcp = Some(mcp);
                self.origins.add(at.key("mcp"), named_at.key("mcp"));
            }
        }
        // After the loop: a `backend:` reference brings its named backend's policies.
        for (i, b) in route.backends.iter_mut().enumerate() {
            if let Some(g) = b.policies.as_mut().and_then(|p| p.mcp_guardrails.as_mut()) {
                self.guardrail_refs(&source.key("backends").index(i).key("policies").key("mcpGuardrails"), g);
            }
        }
    }

    /// Replaces the `backend:` of a remote policy's service (and of its conditional entries)
    /// by the named backend's `host`.
    fn service_refs(&mut self, source: &FieldPath, r: &mut RemoteRateLimit) {
        if let Some(list) = &mut r.conditional {
            for (i, e) in list.iter_mut().enumerate() {
                self.service_refs(&source.key("conditional").index(i), e);
            }
        }
        self.service_ref(source, &mut r.host, &mut r.backend);
    }

    /// [`Self::service_refs`] for `extAuthz`.
    fn authz_refs(&mut self, source: &FieldPath, r: &mut ExtAuthz) {
        if let Some(list) = &mut r.conditional {
            for (i, e) in list.iter_mut().enumerate() {
                self.authz_refs(&source.key("conditional").index(i), e);
            }
        }
        self.service_ref(source, &mut r.host, &mut r.backend);
    }

    /// [`Self::service_refs`] for the processors of `mcpGuardrails`.
    fn guardrail_refs(&mut self, source: &FieldPath, g: &mut McpGuardrails) {
        for (i, p) in g.processors.iter_mut().enumerate() {
            self.service_ref(&source.key("processors").index(i), &mut p.host, &mut p.backend);
        }
    }

    fn service_ref(&mut self, source: &FieldPath, host: &mut Option<String>, backend: &mut Option<String>) {
        let Some(reference) = backend.take() else { return };
        let at = source.key("backend");
        let Some((_, named)) = self.named(&at, &reference) else { return };
        match &named.host {
            Some(h) => *host = Some(h.clone()),
            None => {
                self.err(at, format!("`{reference}` is not a `host` backend: a remote service is `host: <host:port>`"))
            }
        }
    }

    /// Replaces the `{backend, path}` of MCP targets (written at `source`) by URLs.
    fn target_refs(&mut self, source: &FieldPath, mcp: &mut McpBackend) {
        for (i, t) in mcp.targets.iter_mut().enumerate() {
            for (kind, host) in [("mcp", t.mcp.as_mut()), ("sse", t.sse.as_mut())] {
                let Some(host) = host else { continue };
                let Some(reference) = host.backend.take() else { continue };
                let at = source.key("targets").index(i).key(kind).key("backend");
                let Some((_, named)) = self.named(&at, &reference) else { continue };
                match &named.host {
                    Some(authority) => {
                        let path = host.path.clone().unwrap_or_default();
                        *host = McpHost { host: Some(format!("http://{authority}{path}")), ..Default::default() };
                        // A target naming a backend has no policies of its own (validation).
                        if let Some(p) = &named.policies {
                            if let Some(kind) = p.backend_only().first() {
                                let message = format!("`{reference}` has `{kind}`, which an MCP target cannot have");
                                self.err(at.clone(), message);
                            }
                            t.policies = Some(p.clone());
                        }
                    }
                    None if named.mcp.is_some() => {
                        let message = format!(
                            "`{reference}` is an MCP backend: an MCP target's `backend` names a `host` backend"
                        );
                        self.err(at, message);
                    }
                    // Other kinds (`aws`, `ai`, …) are refused where they are defined.
                    None => {}
                }
            }
        }
    }

    /// The named backend `reference` (`name` or `/name`) points at.
    fn named(&mut self, at: &FieldPath, reference: &str) -> Option<(usize, &'a NamedBackend)> {
        let name = backend_ref_name(reference);
        if name.is_empty() {
            return None; // reported by validation
        }
        let named = self.named;
        match named.iter().enumerate().find(|(_, b)| b.name == name) {
            Some(found) => Some(found),
            None => {
                let known: Vec<&str> = named.iter().map(|b| b.name.as_str()).collect();
                let hint = if known.is_empty() {
                    "there are no top-level `backends`".to_string()
                } else {
                    format!("named backends: {}", known.join(", "))
                };
                self.err(at.clone(), format!("unknown backend `{reference}` ({hint})"));
                None
            }
        }
    }
}

/// Where an MCP endpoint attached to a shared gateway answers: the Streamable HTTP and legacy
/// SSE endpoints, and the OAuth metadata paths.
fn shared_port_matches() -> Vec<RouteMatch> {
    ["/mcp", "/sse", "/.well-known"]
        .into_iter()
        .map(|p| RouteMatch { path: Some(PathMatch::PathPrefix(p.into())), ..Default::default() })
        .collect()
}

#[cfg(test)]
mod tests;
