//! The one step from the user's config to what the gateway runs: routes with compiled matchers,
//! backends ready to call, policies in their runtime form. Every problem found here is reported
//! with the field path it came from, so the user sees `file:line:col: path: message`.

use std::sync::Arc;
use std::time::Duration;

use agw_config::model::{self, Config, McpHost, RouteBackend, RoutePolicies};
use agw_config::{ConfigErrors, FieldError, FieldPath, Loaded};
use agw_mcp::{Backend as McpBackend, HttpTarget, Target, Upstream};
use http::Uri;
use http::header::{HeaderName, HeaderValue};

use crate::route::{self, HostMatch, Listener, Route};

/// Default time allowed for in-flight requests on shutdown.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// Everything the data plane needs, built once per config version.
#[derive(Debug)]
pub struct Runtime {
    pub binds: Vec<Bind>,
    /// The effective config with secrets redacted, for `/config_dump`.
    pub dump: serde_json::Value,
}

#[derive(Debug)]
pub struct Bind {
    pub port: u16,
    pub listeners: Vec<Arc<Listener>>,
}

/// Where a route sends requests.
#[derive(Debug)]
pub enum Backend {
    /// Plain HTTP reverse proxy to `authority`.
    Host {
        authority: http::uri::Authority,
    },
    Mcp(Arc<McpBackend>),
}

/// Route policies in runtime form.
#[derive(Debug, Default)]
pub struct Policies {
    pub request_timeout: Option<Duration>,
    pub backend_timeout: Option<Duration>,
    pub request_headers: HeaderChanges,
    pub response_headers: HeaderChanges,
}

/// `requestHeaderModifier` / `responseHeaderModifier`, with names and values parsed.
#[derive(Debug, Default)]
pub struct HeaderChanges {
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderChanges {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.set.is_empty() && self.remove.is_empty()
    }

    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Builds the runtime form of a loaded config.
pub fn resolve(loaded: &Loaded) -> Result<Runtime, ConfigErrors> {
    let mut errors = Vec::new();
    let runtime = build(&loaded.config, &mut errors);
    if errors.is_empty() {
        Ok(runtime)
    } else {
        Err(loaded.errors(errors))
    }
}

fn build(config: &Config, errors: &mut Vec<FieldError>) -> Runtime {
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
                .map(|(j, l)| Arc::new(listener(&at.key("listeners").index(j), j, l, errors)))
                .collect();
            Bind {
                port: b.port,
                listeners,
            }
        })
        .collect();
    let dump = serde_json::to_value(config).unwrap_or(serde_json::Value::Null);
    Runtime { binds, dump }
}

fn listener(
    at: &FieldPath,
    index: usize,
    l: &model::Listener,
    errors: &mut Vec<FieldError>,
) -> Listener {
    let routes = l
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| route(&at.key("routes").index(i), i, r, errors))
        .collect();
    Listener::new(
        l.name.clone().unwrap_or_else(|| format!("listener{index}")),
        l.hostname.as_deref().map(HostMatch::parse),
        routes,
    )
}

fn route(
    at: &FieldPath,
    index: usize,
    r: &model::Route,
    errors: &mut Vec<FieldError>,
) -> Option<Route> {
    let matches = if r.matches.is_empty() {
        vec![route::Match::default()]
    } else {
        r.matches
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                route::Match::compile(m)
                    .map_err(|e| {
                        errors.push(FieldError::new(
                            at.key("matches").index(i).join(&e.path),
                            e.message,
                        ))
                    })
                    .ok()
            })
            .collect()
    };
    let policies = r
        .policies
        .as_ref()
        .map(|p| policies(&at.key("policies"), p, errors))
        .unwrap_or_default();
    let backend = backend(&at.key("backends").index(0), r.backends.first()?, errors)?;
    Some(Route {
        name: r.name.clone().unwrap_or_else(|| format!("route{index}")),
        hostnames: r.hostnames.iter().map(|h| HostMatch::parse(h)).collect(),
        matches,
        policies,
        backend,
    })
}

fn policies(at: &FieldPath, p: &RoutePolicies, errors: &mut Vec<FieldError>) -> Policies {
    let mut out = Policies::default();
    if let Some(t) = &p.timeout {
        out.request_timeout = t.request_timeout.map(|d| d.get()).filter(|d| !d.is_zero());
        out.backend_timeout = t
            .backend_request_timeout
            .map(|d| d.get())
            .filter(|d| !d.is_zero());
    }
    if let Some(m) = &p.request_header_modifier {
        out.request_headers = header_changes(&at.key("requestHeaderModifier"), m, errors);
    }
    if let Some(m) = &p.response_header_modifier {
        out.response_headers = header_changes(&at.key("responseHeaderModifier"), m, errors);
    }
    out
}

fn header_changes(
    at: &FieldPath,
    m: &model::HeaderModifier,
    errors: &mut Vec<FieldError>,
) -> HeaderChanges {
    let mut pair = |kind: &str, name: &str, value: &str| -> Option<(HeaderName, HeaderValue)> {
        let n = HeaderName::try_from(name);
        let v = HeaderValue::try_from(value);
        match (n, v) {
            (Ok(n), Ok(v)) => Some((n, v)),
            (Err(_), _) => {
                errors.push(FieldError::new(
                    at.key(kind).key(name),
                    "not a valid header name",
                ));
                None
            }
            (_, Err(_)) => {
                errors.push(FieldError::new(
                    at.key(kind).key(name),
                    "not a valid header value",
                ));
                None
            }
        }
    };
    let add = m
        .add
        .iter()
        .filter_map(|(n, v)| pair("add", n, v.expose()))
        .collect();
    let set = m
        .set
        .iter()
        .filter_map(|(n, v)| pair("set", n, v.expose()))
        .collect();
    let remove = m
        .remove
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            HeaderName::try_from(n.as_str())
                .map_err(|_| {
                    errors.push(FieldError::new(
                        at.key("remove").index(i),
                        "not a valid header name",
                    ))
                })
                .ok()
        })
        .collect();
    HeaderChanges { add, set, remove }
}

fn backend(at: &FieldPath, b: &RouteBackend, errors: &mut Vec<FieldError>) -> Option<Backend> {
    if let Some(host) = &b.host {
        return match host.parse::<http::uri::Authority>() {
            Ok(authority) => Some(Backend::Host { authority }),
            Err(_) => {
                errors.push(FieldError::new(
                    at.key("host"),
                    format!("`{host}` is not `host:port`"),
                ));
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
            let host = t.mcp.as_ref()?;
            let url = mcp_url(host)
                .map_err(|msg| errors.push(FieldError::new(at.key("mcp").key("host"), msg)))
                .ok()?;
            Some(Target {
                name: t.name.clone(),
                upstream: Upstream::Http(HttpTarget { url }),
            })
        })
        .collect();
    Some(Backend::Mcp(Arc::new(McpBackend {
        targets,
        dns_rebinding_protection: m.dns_rebinding_protection.unwrap_or(false),
    })))
}

/// The URL of a Streamable HTTP target: `host` as a URL (no scheme means `http`), or
/// `host` + `port` + `path`.
fn mcp_url(h: &McpHost) -> Result<Uri, String> {
    let host = h.host.as_deref().unwrap_or_default();
    let text = match (h.port, &h.path) {
        (Some(port), Some(path)) => format!("http://{host}:{port}{path}"),
        _ if host.contains("://") => host.to_string(),
        _ => format!("http://{host}"),
    };
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a valid URL: {e}"))?;
    if uri.authority().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str, port: Option<u16>, path: Option<&str>) -> McpHost {
        McpHost {
            host: Some(h.into()),
            port,
            path: path.map(Into::into),
            backend: None,
        }
    }

    #[test]
    fn mcp_urls() {
        assert_eq!(
            mcp_url(&host("http://localhost:3001/mcp", None, None)).unwrap(),
            "http://localhost:3001/mcp"
        );
        assert_eq!(
            mcp_url(&host("localhost:3001/mcp", None, None)).unwrap(),
            "http://localhost:3001/mcp"
        );
        assert_eq!(
            mcp_url(&host("example", Some(8080), Some("/sse"))).unwrap(),
            "http://example:8080/sse"
        );
    }

    #[test]
    fn regex_errors_are_located() {
        let text = "binds:\n- port: 0\n  listeners:\n  - routes:\n    - matches:\n      - path:\n          regex: '(unclosed'\n      backends:\n      - host: localhost:1\n";
        let loaded = agw_config::load_str("c.yaml", text).unwrap();
        let err = resolve(&loaded).unwrap_err().to_string();
        assert!(err.starts_with("c.yaml:7:11: binds[0].listeners[0].routes[0].matches[0].path.regex: invalid regular expression"), "{err}");
    }
}
