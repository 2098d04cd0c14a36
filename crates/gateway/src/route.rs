//! Choosing a listener and a route for a request.
//!
//! Precedence follows agentgateway (and the Gateway API): the most specific host name first
//! (exact, then the longest `*.` wildcard, then routes without host names), then the most
//! specific match (exact path, then prefix, then regex; longer paths first; then matches with a
//! method, more headers, more query parameters), then config order.

use std::cmp::Reverse;

use agw_config::FieldPath;
use agw_config::model::{self, PathMatch, StringMatch};
use http::request::Parts;
use regex::Regex;

use crate::resolve::{Backend, GatewayPolicies, Policies};

/// A host name condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com` is stored as `.example.com`.
    Suffix(String),
    Any,
}

impl HostMatch {
    pub fn parse(h: &str) -> HostMatch {
        let h = h.to_ascii_lowercase();
        if h == "*" || h.is_empty() {
            HostMatch::Any
        } else if let Some(rest) = h.strip_prefix('*') {
            HostMatch::Suffix(rest.to_string())
        } else {
            HostMatch::Exact(h)
        }
    }

    /// How well `host` is matched: `None` if not at all; higher is more specific.
    pub(crate) fn score(&self, host: &str) -> Option<usize> {
        match self {
            HostMatch::Exact(h) => (h == host).then_some(usize::MAX),
            HostMatch::Suffix(s) => (host.len() > s.len() && host.ends_with(s.as_str())).then_some(s.len() + 1),
            HostMatch::Any => Some(0),
        }
    }
}

/// The request's host name, lower-cased, without port.
pub fn request_host(parts: &Parts) -> String {
    let raw = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let host = if let Some(v6) = raw.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

#[derive(Debug)]
pub struct Listener {
    pub name: String,
    pub hostname: Option<HostMatch>,
    pub policies: GatewayPolicies,
    routes: Vec<Route>,
    /// (route index, match index), sorted by match precedence.
    order: Vec<(usize, usize)>,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub hostnames: Vec<HostMatch>,
    pub matches: Vec<Match>,
    pub policies: Policies,
    pub backend: Backend,
}

impl Listener {
    pub fn new(name: String, hostname: Option<HostMatch>, policies: GatewayPolicies, routes: Vec<Route>) -> Listener {
        let mut order: Vec<(usize, usize)> =
            routes.iter().enumerate().flat_map(|(r, route)| (0..route.matches.len()).map(move |m| (r, m))).collect();
        order.sort_by_key(|&(r, m)| (Reverse(routes[r].matches[m].precedence()), r, m));
        Listener { name, hostname, policies, routes, order }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Picks the listener of a bind that answers for `host`.
    pub fn select<'a>(listeners: &'a [std::sync::Arc<Listener>], host: &str) -> Option<&'a std::sync::Arc<Listener>> {
        listeners
            .iter()
            .filter_map(|l| l.hostname.as_ref().unwrap_or(&HostMatch::Any).score(host).map(|s| (s, l)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, l)| l)
    }

    /// The route for a request, if any.
    pub fn route(&self, parts: &Parts, host: &str) -> Option<&Route> {
        let host_score = |route: &Route| -> Option<usize> {
            if route.hostnames.is_empty() {
                return Some(0);
            }
            route.hostnames.iter().filter_map(|h| h.score(host)).max()
        };
        let mut best: Option<(usize, &Route)> = None;
        for &(r, m) in &self.order {
            let route = &self.routes[r];
            let Some(score) = host_score(route) else {
                continue;
            };
            if best.is_some_and(|(b, _)| b >= score) {
                continue;
            }
            if route.matches[m].matches(parts) {
                best = Some((score, route));
            }
        }
        best.map(|(_, r)| r)
    }
}

impl Route {
    /// The path prefix of the most specific match that takes this request (`""` for a match
    /// without a path); `None` when it matched by exact path or regex.
    pub(crate) fn matched_prefix(&self, parts: &Parts) -> Option<&str> {
        let m = self.matches.iter().filter(|m| m.matches(parts)).max_by_key(|m| m.precedence())?;
        match &m.path {
            PathCond::Prefix(p) => Some(p),
            PathCond::Any => Some(""),
            PathCond::Exact(_) | PathCond::Regex(_) => None,
        }
    }
}

/// One compiled match.
#[derive(Debug, Default)]
pub struct Match {
    path: PathCond,
    method: Option<http::Method>,
    headers: Vec<(http::HeaderName, ValueCond)>,
    query: Vec<(String, ValueCond)>,
}

#[derive(Debug, Default)]
enum PathCond {
    Exact(String),
    /// Stored without a trailing `/`; empty means every path.
    Prefix(String),
    Regex(Regex),
    #[default]
    Any,
}

#[derive(Debug)]
enum ValueCond {
    Exact(String),
    Regex(Regex),
}

impl Match {
    /// Whether the path condition is a prefix (or there is none).
    pub(crate) fn is_prefix(&self) -> bool {
        matches!(self.path, PathCond::Prefix(_) | PathCond::Any)
    }

    /// A path this match accepts, for the admin page (`/mcp` when any path will do).
    pub fn example_path(&self) -> String {
        match &self.path {
            PathCond::Exact(p) => p.clone(),
            PathCond::Prefix(p) if !p.is_empty() => p.clone(),
            PathCond::Prefix(_) | PathCond::Regex(_) | PathCond::Any => "/mcp".into(),
        }
    }
}

impl ValueCond {
    fn matches(&self, v: &str) -> bool {
        match self {
            ValueCond::Exact(e) => e == v,
            ValueCond::Regex(r) => r.is_match(v),
        }
    }
}

/// A match that failed to compile: which sub-field (relative to the match), and why.
pub struct CompileError {
    pub path: FieldPath,
    pub message: String,
}

fn full_regex(pattern: &str, path: FieldPath) -> Result<Regex, CompileError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| CompileError {
        path,
        message: format!("invalid regular expression: {}", first_line(&e.to_string())),
    })
}

fn first_line(s: &str) -> String {
    s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_string()
}

impl Match {
    pub fn compile(m: &model::RouteMatch) -> Result<Match, CompileError> {
        let path = match &m.path {
            None => PathCond::Any,
            Some(PathMatch::Exact(p)) => PathCond::Exact(p.clone()),
            Some(PathMatch::PathPrefix(p)) => PathCond::Prefix(p.trim_end_matches('/').to_string()),
            Some(PathMatch::Regex(r)) => PathCond::Regex(full_regex(r, FieldPath::root().key("path").key("regex"))?),
        };
        let method = match &m.method {
            Some(s) => Some(http::Method::from_bytes(s.to_ascii_uppercase().as_bytes()).map_err(|_| CompileError {
                path: FieldPath::root().key("method"),
                message: format!("`{s}` is not an HTTP method"),
            })?),
            None => None,
        };
        let value = |v: &StringMatch, at: FieldPath| -> Result<ValueCond, CompileError> {
            Ok(match v {
                StringMatch::Exact(e) => ValueCond::Exact(e.clone()),
                StringMatch::Regex(r) => ValueCond::Regex(full_regex(r, at.key("value").key("regex"))?),
            })
        };
        let headers = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let at = FieldPath::root().key("headers").index(i);
                let name = http::HeaderName::try_from(h.name.as_str()).map_err(|_| CompileError {
                    path: at.key("name"),
                    message: format!("`{}` is not a header name", h.name),
                })?;
                Ok((name, value(&h.value, at)?))
            })
            .collect::<Result<_, _>>()?;
        let query = m
            .query
            .iter()
            .enumerate()
            .map(|(i, q)| Ok((q.name.clone(), value(&q.value, FieldPath::root().key("query").index(i))?)))
            .collect::<Result<_, _>>()?;
        Ok(Match { path, method, headers, query })
    }

    fn precedence(&self) -> (u8, usize, bool, usize, usize) {
        let (kind, len) = match &self.path {
            PathCond::Exact(p) => (3, p.len()),
            PathCond::Prefix(p) => (2, p.len()),
            PathCond::Regex(r) => (1, r.as_str().len()),
            PathCond::Any => (2, 0),
        };
        (kind, len, self.method.is_some(), self.headers.len(), self.query.len())
    }

    pub fn matches(&self, parts: &Parts) -> bool {
        let path = parts.uri.path();
        let path_ok = match &self.path {
            PathCond::Any => true,
            PathCond::Exact(p) => path == p,
            PathCond::Prefix(p) => {
                p.is_empty()
                    || (path.starts_with(p.as_str()) && matches!(path.as_bytes().get(p.len()), None | Some(b'/')))
            }
            PathCond::Regex(r) => r.is_match(path),
        };
        if !path_ok || self.method.as_ref().is_some_and(|m| *m != parts.method) {
            return false;
        }
        let headers_ok = self
            .headers
            .iter()
            .all(|(name, cond)| parts.headers.get_all(name).iter().any(|v| v.to_str().is_ok_and(|v| cond.matches(v))));
        if !headers_ok {
            return false;
        }
        if self.query.is_empty() {
            return true;
        }
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
        self.query.iter().all(|(name, cond)| pairs.iter().any(|(k, v)| k == name && cond.matches(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::Backend;
    use agw_config::model::{RouteMatch, ValueMatch};

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn route(name: &str, hostnames: &[&str], matches: Vec<RouteMatch>) -> Route {
        Route {
            name: name.into(),
            hostnames: hostnames.iter().map(|h| HostMatch::parse(h)).collect(),
            matches: if matches.is_empty() {
                vec![Match::default()]
            } else {
                matches.iter().map(|m| Match::compile(m).ok().unwrap()).collect()
            },
            policies: Default::default(),
            backend: Backend::Host { authority: "localhost:1".parse().unwrap(), client: None },
        }
    }

    fn path(p: PathMatch) -> RouteMatch {
        RouteMatch { path: Some(p), ..Default::default() }
    }

    fn pick(l: &Listener, method: &str, uri: &str, headers: &[(&str, &str)]) -> Option<String> {
        let p = parts(method, uri, headers);
        let host = request_host(&p);
        l.route(&p, &host).map(|r| r.name.clone())
    }

    #[test]
    fn most_specific_path_wins() {
        let l = Listener::new(
            "l".into(),
            None,
            Default::default(),
            vec![
                route("catchall", &[], vec![]),
                route("prefix", &[], vec![path(PathMatch::PathPrefix("/mcp".into()))]),
                route("longer", &[], vec![path(PathMatch::PathPrefix("/mcp/admin/".into()))]),
                route("exact", &[], vec![path(PathMatch::Exact("/mcp/x".into()))]),
                route("regex", &[], vec![path(PathMatch::Regex("/r/[0-9]+".into()))]),
            ],
        );
        assert_eq!(pick(&l, "GET", "/", &[]).as_deref(), Some("catchall"));
        assert_eq!(pick(&l, "GET", "/mcp", &[]).as_deref(), Some("prefix"));
        assert_eq!(pick(&l, "GET", "/mcpx", &[]).as_deref(), Some("catchall"));
        assert_eq!(pick(&l, "GET", "/mcp/y", &[]).as_deref(), Some("prefix"));
        assert_eq!(pick(&l, "GET", "/mcp/x", &[]).as_deref(), Some("exact"));
        assert_eq!(pick(&l, "GET", "/mcp/admin", &[]).as_deref(), Some("longer"));
        // As in agentgateway, any prefix (even the implicit `/`) outranks a regex.
        assert_eq!(pick(&l, "GET", "/r/12", &[]).as_deref(), Some("catchall"));
        let l = Listener::new(
            "l".into(),
            None,
            Default::default(),
            vec![route("regex", &[], vec![path(PathMatch::Regex("/r/[0-9]+".into()))])],
        );
        assert_eq!(pick(&l, "GET", "/r/12", &[]).as_deref(), Some("regex"));
        assert_eq!(pick(&l, "GET", "/r/12x", &[]), None);
    }

    #[test]
    fn method_header_and_query_conditions() {
        let m = RouteMatch {
            path: Some(PathMatch::PathPrefix("/".into())),
            method: Some("POST".into()),
            headers: vec![ValueMatch { name: "x-tenant".into(), value: StringMatch::Regex("a|b".into()) }],
            query: vec![ValueMatch { name: "v".into(), value: StringMatch::Exact("1 2".into()) }],
        };
        let l = Listener::new("l".into(), None, Default::default(), vec![route("strict", &[], vec![m])]);
        assert_eq!(pick(&l, "POST", "/x?v=1+2", &[("x-tenant", "a")]).as_deref(), Some("strict"));
        assert_eq!(pick(&l, "GET", "/x?v=1+2", &[("x-tenant", "a")]), None);
        assert_eq!(pick(&l, "POST", "/x?v=1+2", &[("x-tenant", "c")]), None);
        assert_eq!(pick(&l, "POST", "/x?v=12", &[("x-tenant", "a")]), None);
    }

    #[test]
    fn hostnames_exact_then_wildcard_then_none() {
        let l = Listener::new(
            "l".into(),
            None,
            Default::default(),
            vec![
                route("none", &[], vec![]),
                route("wild", &["*.example.com"], vec![]),
                route("exact", &["api.example.com"], vec![]),
            ],
        );
        assert_eq!(pick(&l, "GET", "/", &[("host", "api.example.com:8080")]).as_deref(), Some("exact"));
        assert_eq!(pick(&l, "GET", "/", &[("host", "www.example.com")]).as_deref(), Some("wild"));
        assert_eq!(pick(&l, "GET", "/", &[("host", "example.com")]).as_deref(), Some("none"));
        assert_eq!(pick(&l, "GET", "/", &[("host", "[::1]:80")]).as_deref(), Some("none"));
    }

    #[test]
    fn listener_selection_by_host() {
        let ls = vec![
            std::sync::Arc::new(Listener::new("any".into(), None, Default::default(), vec![])),
            std::sync::Arc::new(Listener::new(
                "a".into(),
                Some(HostMatch::parse("a.test")),
                Default::default(),
                vec![],
            )),
        ];
        assert_eq!(Listener::select(&ls, "a.test").unwrap().name, "a");
        assert_eq!(Listener::select(&ls, "b.test").unwrap().name, "any");
    }
}
