//! The one step from the user's config to what the gateway runs: routes with compiled matchers,
//! backends ready to call, policies in their runtime form, key files loaded. Every problem
//! found here is reported with the field path it came from, so the user sees
//! `file:line:col: path: message`.

mod policy;
mod tools;
mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agw_config::model::{self, AuditMode, Config, McpHost, RouteBackend};
use agw_config::{ConfigErrors, FieldError, FieldPath, Loaded};
use agw_mcp::mux::naming::PrefixMode;
use agw_mcp::upstream::stdio::StdioTarget;
use agw_mcp::{Backend as McpBackend, FailureMode, HttpClient, Target, Upstream};
use http::Uri;

use crate::jwks::RemoteJwks;
pub use crate::listener::tls::BindTls;
use crate::route::{self, HostMatch, Listener, Route};

pub use policy::{Credential, GatewayPolicies, HeaderChanges, Policies};

/// A text file named in the config (bounded; the error names the file).
pub(crate) fn read_text_file(path: &str) -> Result<String, String> {
    policy::read_file(path)
}

/// Default time allowed for in-flight requests on shutdown.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// Everything the data plane needs, built once per config version.
#[derive(Debug)]
pub struct Runtime {
    pub binds: Vec<Bind>,
    /// Remote key sets to keep fresh while this runtime serves.
    pub remote_jwks: Vec<Arc<RemoteJwks>>,
    /// Believe `X-Forwarded-Proto`/`-Host` when building absolute URLs.
    pub trust_forwarded: bool,
    /// Which authorization decisions are logged.
    pub audit: AuditMode,
    /// Located warnings about the config (e.g. deny rules), for the start-up log.
    pub warnings: Vec<String>,
    /// The effective config with secrets redacted, for `/config_dump`.
    pub dump: serde_json::Value,
    /// How connections accepted while this version is current are served.
    pub(crate) frontend: Arc<crate::conn::Settings>,
    /// Access-log and trace policy (CEL compiled).
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
}

#[derive(Debug)]
pub struct Bind {
    pub port: u16,
    pub listeners: Vec<Arc<Listener>>,
    /// Set when the bind's listeners are HTTPS.
    pub tls: Option<Arc<BindTls>>,
}

/// Where a route sends requests.
#[derive(Debug)]
pub enum Backend {
    /// Reverse proxy to `authority`: plain HTTP, or TLS with its own client (`backendTLS`).
    Host {
        authority: http::uri::Authority,
        client: Option<HttpClient>,
    },
    Mcp(Arc<McpBackend>),
    /// Several weighted `host:` backends: each request goes to one, drawn by weight.
    Split(Split),
    /// None: the route answers every request itself (`directResponse`, `requestRedirect`).
    None,
}

/// A weighted split between `host:` backends.
#[derive(Debug)]
pub struct Split {
    /// Each backend with the running total of the weights up to and including it.
    choices: Vec<(u64, Backend)>,
}

impl Split {
    fn new(weighted: Vec<(u32, Backend)>) -> Split {
        let mut total = 0u64;
        let choices = weighted
            .into_iter()
            .map(|(w, b)| {
                total += u64::from(w);
                (total, b)
            })
            .collect();
        Split { choices }
    }

    /// The backends with their weights, for the admin API.
    pub fn backends(&self) -> impl Iterator<Item = (u64, &Backend)> {
        let mut previous = 0;
        self.choices.iter().map(move |(upto, b)| {
            let w = upto - previous;
            previous = *upto;
            (w, b)
        })
    }

    /// One backend, drawn by weight.
    pub(crate) fn pick(&self) -> &Backend {
        let total = self.choices.last().map_or(0, |(t, _)| *t);
        if total == 0 {
            return &Backend::None;
        }
        let draw = agw_policy::random::next_u64() % total;
        self.choices.iter().find(|(upto, _)| draw < *upto).map_or(&Backend::None, |(_, b)| b)
    }
}

/// Builds the runtime form of a loaded config. Relative file paths (JWKS, htpasswd) are read
/// from the working directory.
pub fn resolve(loaded: &Loaded) -> Result<Runtime, ConfigErrors> {
    let mut b = Builder {
        errors: Vec::new(),
        warnings: Vec::new(),
        remotes: HashMap::new(),
        client: HttpClient::default(),
        tls_clients: HashMap::new(),
    };
    let mut runtime = b.config(&loaded.config);
    if !b.errors.is_empty() {
        return Err(loaded.errors(b.errors));
    }
    runtime.warnings = b.warnings.into_iter().map(|w| loaded.error(w).to_string()).collect();
    Ok(runtime)
}

/// Collects errors and shared pieces (remote key sets by URL) while building.
struct Builder {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
    remotes: HashMap<String, Arc<RemoteJwks>>,
    client: HttpClient,
    /// Clients for `backendTLS` blocks, by where they are written (`None`: it failed).
    tls_clients: HashMap<String, Option<HttpClient>>,
}

impl Builder {
    /// An `openapi` target's spec (written at `at`): read now from a file or inline text, or
    /// fetched from its URL when first needed.
    fn openapi_source(&mut self, at: &FieldPath, s: &model::FileInlineOrRemote) -> Option<agw_openapi::Source> {
        let (text, at) = match s {
            model::FileInlineOrRemote::Remote(u) => {
                return u
                    .url
                    .parse()
                    .map(agw_openapi::Source::Url)
                    .map_err(|_| self.err(at.key("url"), format!("`{}` is not a valid URL", u.url)))
                    .ok();
            }
            model::FileInlineOrRemote::Inline(text) => (text.clone(), at.clone()),
            model::FileInlineOrRemote::File(f) => match policy::read_file(&f.file) {
                Ok(text) => (text, at.key("file")),
                Err(msg) => {
                    self.err(at.key("file"), msg);
                    return None;
                }
            },
        };
        match agw_openapi::spec::parse(&text) {
            Ok(spec) => Some(agw_openapi::Source::Loaded(Arc::new(spec))),
            Err(msg) => {
                self.err(at, format!("the OpenAPI spec cannot be used: {msg}"));
                None
            }
        }
    }

    fn err(&mut self, at: FieldPath, message: impl Into<String>) {
        self.errors.push(FieldError::new(at, message));
    }

    fn warn(&mut self, at: FieldPath, message: impl Into<String>) {
        self.warnings.push(FieldError::new(at, message));
    }

    fn config(&mut self, config: &Config) -> Runtime {
        let root = FieldPath::root();
        let binds = config
            .binds
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let at = root.key("binds").index(i);
                let listeners = b
                    .listeners
                    .iter()
                    .enumerate()
                    .map(|(j, l)| Arc::new(self.listener(&at.key("listeners").index(j), j, l)))
                    .collect();
                let tls = self.bind_tls(&at, b, config);
                Bind { port: b.port, listeners, tls }
            })
            .collect();
        let mut remote_jwks: Vec<Arc<RemoteJwks>> = self.remotes.values().cloned().collect();
        remote_jwks.sort_by_key(|a| a.url.to_string());
        Runtime {
            binds,
            remote_jwks,
            trust_forwarded: config.config.as_ref().and_then(|s| s.trust_forwarded_headers).unwrap_or(false),
            audit: config.config.as_ref().and_then(|s| s.logging.as_ref()).and_then(|l| l.audit).unwrap_or_default(),
            warnings: Vec::new(),
            dump: agw_config::redact::dump(config),
            frontend: Arc::new(crate::conn::Settings::resolve(config)),
            telemetry: Arc::new(crate::telemetry::resolve(config, &mut self.errors, &mut self.warnings)),
        }
    }

    /// The TLS side of a bind whose listeners are HTTPS (validation saw that all are or none).
    fn bind_tls(&mut self, at: &FieldPath, b: &model::Bind, config: &Config) -> Option<Arc<BindTls>> {
        let https = b.listeners.iter().any(|l| l.protocol == Some(model::ListenerProtocol::Https));
        if !https {
            return None;
        }
        let names: Vec<String> = b
            .listeners
            .iter()
            .enumerate()
            .map(|(j, l)| l.name.clone().unwrap_or_else(|| format!("listener{j}")))
            .collect();
        let listeners = b.listeners.iter().enumerate().filter_map(|(j, l)| {
            let tls = l.tls.as_ref()?;
            Some((at.key("listeners").index(j).key("tls"), names[j].as_str(), l.hostname.as_deref(), tls))
        });
        let frontend = config.frontend_policies.as_ref().and_then(|f| f.tls.as_ref());
        match BindTls::build(listeners, frontend) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(errors) => {
                for (at, message) in errors {
                    self.err(at, message);
                }
                None
            }
        }
    }

    fn listener(&mut self, at: &FieldPath, index: usize, l: &model::Listener) -> Listener {
        let routes =
            l.routes.iter().enumerate().filter_map(|(i, r)| self.route(&at.key("routes").index(i), i, r)).collect();
        let policies = l.policies.as_ref().map(|p| self.gateway_policies(&at.key("policies"), p)).unwrap_or_default();
        Listener::new(
            l.name.clone().unwrap_or_else(|| format!("listener{index}")),
            l.hostname.as_deref().map(HostMatch::parse),
            policies,
            routes,
        )
    }

    fn route(&mut self, at: &FieldPath, index: usize, r: &model::Route) -> Option<Route> {
        let matches = if r.matches.is_empty() {
            vec![route::Match::default()]
        } else {
            r.matches
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    route::Match::compile(m)
                        .map_err(|e| self.err(at.key("matches").index(i).join(&e.path), e.message))
                        .ok()
                })
                .collect()
        };
        let mut policies = r.policies.as_ref().map(|p| self.route_policies(&at.key("policies"), p)).unwrap_or_default();
        let route_tls =
            r.policies.as_ref().and_then(|p| p.backend_tls.as_ref()).map(|t| (at.key("policies").key("backendTLS"), t));
        let backend = match r.backends.as_slice() {
            // Validation saw that the route answers every request itself.
            [] => Backend::None,
            [only] => {
                // One backend: its policies replace the route's of the same kind.
                if let Some(p) = &only.policies {
                    self.backend_overrides(&at.key("backends").index(0).key("policies"), p, &mut policies);
                }
                self.backend(&at.key("backends").index(0), only, route_tls.clone(), &policies)?
            }
            several => {
                let mut weighted = Vec::new();
                for (i, b) in several.iter().enumerate() {
                    let at = at.key("backends").index(i);
                    let backend = self.backend(&at, b, route_tls.clone(), &policies)?;
                    if !matches!(backend, Backend::Host { .. }) {
                        self.err(at, "several backends on one route must all be `host:` backends (a weighted split)");
                        return None;
                    }
                    weighted.push((b.weight.unwrap_or(1), backend));
                }
                Backend::Split(Split::new(weighted))
            }
        };
        self.check_traffic(&at.key("policies"), &policies, &matches, &backend);
        if policies.mcp_guardrails.is_some() && !matches!(backend, Backend::Mcp(_)) {
            self.err(at.key("policies").key("mcpGuardrails"), "applies to MCP backends only (`mcp:` or MCP targets)");
        }
        if policies.a2a && !matches!(backend, Backend::Host { .. }) {
            self.err(
                at.key("policies").key("a2a"),
                "A2A traffic goes to a `host:` backend (the agent), not an MCP one",
            );
        }
        Some(Route {
            name: r.name.clone().unwrap_or_else(|| format!("route{index}")),
            hostnames: r.hostnames.iter().map(|h| HostMatch::parse(h)).collect(),
            matches,
            policies,
            backend,
        })
    }

    /// What the traffic policies need of the route: prefix matches for a prefix rewrite,
    /// a `host:` backend for `urlRewrite`; `retry` does not apply to MCP backends.
    fn check_traffic(&mut self, at: &FieldPath, policies: &Policies, matches: &[route::Match], backend: &Backend) {
        let Some(t) = &policies.traffic else { return };
        if t.needs_prefix() && !matches.iter().all(route::Match::is_prefix) {
            self.err(
                at.clone(),
                "a `path: {prefix: …}` rewrite or redirect needs every match of the route to be a `pathPrefix` (or to have no path)",
            );
        }
        if let Backend::Mcp(_) = backend {
            if t.rewrites_url() {
                self.err(at.key("urlRewrite"), "applies to `host:` backends (MCP targets have their own URLs)");
            }
            if t.changes_request_body() {
                self.err(
                    at.key("transformations").key("request").key("body"),
                    "not on MCP backends: the relay reads the JSON-RPC body the client sent",
                );
            }
            if t.retry.is_some() {
                self.warn(
                    at.key("retry"),
                    "not applied to MCP backends: the gateway never sends a JSON-RPC message twice (a `tools/call` may have taken effect); each failed request gets a JSON-RPC error",
                );
            }
        }
    }

    fn backend(
        &mut self,
        at: &FieldPath,
        b: &RouteBackend,
        route_tls: Option<(FieldPath, &model::BackendTls)>,
        policies: &Policies,
    ) -> Option<Backend> {
        // route < backend < target, one policy kind at a time.
        let own_tls =
            b.policies.as_ref().and_then(|p| p.backend_tls.as_ref()).map(|t| (at.key("policies").key("backendTLS"), t));
        let backend_tls = own_tls.or(route_tls);
        if let Some(host) = &b.host {
            let client = match &backend_tls {
                Some((tls_at, tls)) => Some(self.tls_client(tls_at, tls)?),
                None => None,
            };
            return match host.parse::<http::uri::Authority>() {
                Ok(authority) => Some(Backend::Host { authority, client }),
                Err(_) => {
                    self.err(at.key("host"), format!("`{host}` is not `host:port`"));
                    None
                }
            };
        }
        let m = b.mcp.as_ref()?;
        let targets = m
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let at = at.key("mcp").key("targets").index(i);
                let own = t
                    .policies
                    .as_ref()
                    .and_then(|p| p.backend_tls.as_ref())
                    .map(|tls| (at.key("policies").key("backendTLS"), tls));
                let tls = own.clone().or(backend_tls.clone());
                let upstream = if let Some(host) = &t.mcp {
                    let url = mcp_url(host).map_err(|msg| self.err(at.key("mcp").key("host"), msg)).ok()?;
                    Upstream::Http(self.http_target(&at, url, tls, t.policies.as_ref(), policies)?)
                } else if let Some(host) = &t.sse {
                    let url = mcp_url(host).map_err(|msg| self.err(at.key("sse").key("host"), msg)).ok()?;
                    Upstream::Sse(self.http_target(&at, url, tls, t.policies.as_ref(), policies)?)
                } else if let Some(o) = &t.openapi {
                    let at = at.key("openapi");
                    let host = o.host.as_deref()?;
                    let base = if host.contains("://") { host.to_string() } else { format!("http://{host}") };
                    let Ok(url) = base.parse::<Uri>() else {
                        self.err(at.key("host"), format!("`{host}` is not a valid host"));
                        return None;
                    };
                    let service = self.http_target(&at, url, tls, t.policies.as_ref(), policies)?;
                    let source = self.openapi_source(&at.key("schema"), &o.schema)?;
                    Upstream::Local(Arc::new(agw_openapi::OpenApiServer::new(
                        &t.name,
                        service,
                        source,
                        self.client.clone(),
                    )))
                } else {
                    let s = t.stdio.as_ref()?;
                    if let Some((tls_at, _)) = own {
                        self.err(tls_at, "a stdio target has no network connection to secure");
                    }
                    Upstream::Stdio(StdioTarget {
                        cmd: s.cmd.clone(),
                        args: s.args.clone(),
                        env: s.env.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect(),
                        clear_env: s.clear_env.unwrap_or(false),
                    })
                };
                Some(Target { name: t.name.clone(), upstream })
            })
            .collect();
        let tools = self.tool_guard(&at.key("mcp"), m);
        Some(Backend::Mcp(Arc::new(McpBackend {
            key: at.to_string(),
            targets,
            prefix_mode: match m.prefix_mode.unwrap_or_default() {
                model::PrefixMode::Conditional => PrefixMode::Conditional,
                model::PrefixMode::Always => PrefixMode::Always,
                model::PrefixMode::Never => PrefixMode::Never,
            },
            failure_mode: match m.failure_mode.unwrap_or_default() {
                model::FailureMode::FailClosed => FailureMode::FailClosed,
                model::FailureMode::FailOpen => FailureMode::FailOpen,
            },
            stateless: m.stateful_mode == Some(model::StatefulMode::Stateless),
            dns_rebinding_protection: m.dns_rebinding_protection.unwrap_or(false),
            tools,
        })))
    }
}

/// The URL of a Streamable HTTP target: `host` as a URL (no scheme means `http`), or
/// `host` + `port` + `path`.
/// `config.mcp` as the relay runs it: batch limit, default request timeout, quotas.
pub fn mcp_options(m: &model::McpSettings) -> agw_mcp::McpOptions {
    use agw_mcp::quota::{QuotaSettings, Rate};
    let d = QuotaSettings::default();
    let q = m.quotas.clone().unwrap_or_default();
    let a = q.anonymous.clone().unwrap_or_default();
    let rate = |per_second: Option<f64>, burst: Option<f64>, default: Rate| Rate {
        per_second: per_second.unwrap_or(default.per_second),
        burst: burst.unwrap_or(default.burst),
    };
    agw_mcp::McpOptions {
        max_batch: m.max_batch_size.unwrap_or(agw_mcp::relay::DEFAULT_MAX_BATCH),
        request_timeout: m.request_timeout.map_or(agw_mcp::relay::DEFAULT_REQUEST_TIMEOUT, |t| t.get()),
        quotas: QuotaSettings {
            sessions: q.sessions.unwrap_or(d.sessions),
            stdio_sessions: q.stdio_sessions.unwrap_or(d.stdio_sessions),
            rate: rate(q.new_sessions_per_second, q.new_sessions_burst, d.rate),
            anonymous_sessions: a.sessions.unwrap_or(d.anonymous_sessions),
            anonymous_stdio_sessions: a.stdio_sessions.unwrap_or(d.anonymous_stdio_sessions),
            anonymous_rate: rate(a.new_sessions_per_second, a.new_sessions_burst, d.anonymous_rate),
            anonymous_rate_per_address: rate(
                a.new_sessions_per_second_per_address,
                a.new_sessions_burst_per_address,
                d.anonymous_rate_per_address,
            ),
        },
    }
}

fn mcp_url(h: &McpHost) -> Result<Uri, String> {
    let host = h.host.as_deref().unwrap_or_default();
    let text = match (h.port, &h.path) {
        (Some(port), Some(path)) => format!("http://{host}:{port}{path}"),
        _ if host.contains("://") => host.to_string(),
        _ => format!("http://{host}"),
    };
    let shown = || agw_config::redact::url(&text);
    let uri: Uri = text.parse().map_err(|e| format!("`{}` is not a valid URL: {e}", shown()))?;
    if uri.authority().is_none() {
        return Err(format!("`{}` has no host", shown()));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str, port: Option<u16>, path: Option<&str>) -> McpHost {
        McpHost { host: Some(h.into()), port, path: path.map(Into::into), backend: None }
    }

    #[test]
    fn mcp_urls() {
        assert_eq!(mcp_url(&host("http://localhost:3001/mcp", None, None)).unwrap(), "http://localhost:3001/mcp");
        assert_eq!(mcp_url(&host("localhost:3001/mcp", None, None)).unwrap(), "http://localhost:3001/mcp");
        assert_eq!(mcp_url(&host("example", Some(8080), Some("/sse"))).unwrap(), "http://example:8080/sse");
    }

    #[test]
    fn errors_in_lowered_shapes_point_into_the_file() {
        let text = "gateways:\n  default:\n    port: 0\nroutes:\n- matches:\n  - path:\n      regex: '(unclosed'\n  backends:\n  - host: localhost:1\nmcp:\n  policies:\n    mcpAuthorization:\n      rules:\n      - 'mcp.tool.name =='\n  targets:\n  - name: a\n    stdio: {cmd: x}\n";
        let loaded = agw_config::load_str("c.yaml", text).unwrap();
        let err = resolve(&loaded).unwrap_err().0;
        let shown: Vec<String> =
            err.iter().map(|e| format!("{}:{}: {}", e.line, e.col, e.path.as_ref().unwrap())).collect();
        assert_eq!(shown, ["7:7: routes[0].matches[0].path.regex", "14:9: mcp.policies.mcpAuthorization.rules[0]"]);
    }

    #[test]
    fn regex_errors_are_located() {
        let text = "binds:\n- port: 0\n  listeners:\n  - routes:\n    - matches:\n      - path:\n          regex: '(unclosed'\n      backends:\n      - host: localhost:1\n";
        let loaded = agw_config::load_str("c.yaml", text).unwrap();
        let err = resolve(&loaded).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "c.yaml:7:11: binds[0].listeners[0].routes[0].matches[0].path.regex: invalid regular expression"
            ),
            "{err}"
        );
    }
}
