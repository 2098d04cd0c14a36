//! `requestRedirect` (answer with `Location`) and `urlRewrite` (change the URL before a
//! `host:` backend gets it): both derive a URL from the request's, so they share these steps.
//!
//! A `prefix` path replaces the part of the path the route's `pathPrefix` matched, at a segment
//! boundary (`/api` matches `/api/x`, not `/apix`); the query string always stays.

use agw_config::FieldPath;
use agw_config::model::{self, AuthorityRewrite, PathRewrite};
use agw_http::body::{self, Body};
use http::header::{HOST, HeaderValue, LOCATION};
use http::request::Parts;
use http::{Response, StatusCode};

use super::Compiler;
use crate::error::GatewayError;

/// `requestRedirect` in runtime form.
#[derive(Debug)]
pub(crate) struct Redirect {
    scheme: Option<&'static str>,
    authority: Option<AuthorityRewrite>,
    path: Option<PathRewrite>,
    status: StatusCode,
}

/// `urlRewrite` in runtime form.
#[derive(Debug)]
pub(crate) struct UrlRewrite {
    authority: Option<AuthorityRewrite>,
    path: Option<PathRewrite>,
}

/// The `Host` a `host:` backend receives instead of its own authority (set by `urlRewrite`).
#[derive(Debug, Clone)]
pub(crate) struct HostOverride(pub(crate) HeaderValue);

impl Redirect {
    pub(crate) fn resolve(at: &FieldPath, r: &model::RequestRedirect, c: &mut Compiler<'_>) -> Option<Redirect> {
        let status = match r.status.map(StatusCode::from_u16) {
            None => StatusCode::FOUND,
            Some(Ok(s)) if s.is_redirection() => s,
            Some(_) => {
                c.err(at.key("status"), "not a redirect status (3xx)");
                return None;
            }
        };
        let scheme = match r.scheme.as_deref() {
            None => None,
            Some("http") => Some("http"),
            Some("https") => Some("https"),
            Some(other) => {
                c.err(at.key("scheme"), format!("`{other}`: expected `http` or `https`"));
                return None;
            }
        };
        Some(Redirect { scheme, authority: r.authority.clone(), path: r.path.clone(), status })
    }

    pub(crate) fn uses_prefix(&self) -> bool {
        matches!(self.path, Some(PathRewrite::Prefix(_)))
    }

    /// The redirect for this request; `tls`: whether it came over HTTPS.
    pub(crate) fn answer(
        &self,
        parts: &Parts,
        prefix: Option<&str>,
        tls: bool,
    ) -> Result<Response<Body>, GatewayError> {
        let from_scheme = if tls { "https" } else { "http" };
        let scheme = self.scheme.unwrap_or(from_scheme);
        let original = original_authority(parts).ok_or(GatewayError::PolicyFailed)?;
        let authority = match &self.authority {
            None => original.to_string(),
            Some(rw) => authority(rw, original, scheme, self.scheme.is_some()),
        };
        let path = match &self.path {
            None => parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            Some(rw) => path(rw, prefix, parts.uri.path(), parts.uri.query()).ok_or(GatewayError::PolicyFailed)?,
        };
        let location = format!("{scheme}://{authority}{path}");
        // The URL must be one a client can follow: parse it before answering with it.
        let checked: http::Uri = location.parse().map_err(|_| GatewayError::PolicyFailed)?;
        let mut r = Response::new(body::empty());
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(LOCATION, HeaderValue::from_str(&checked.to_string()).map_err(|_| GatewayError::PolicyFailed)?);
        Ok(r)
    }
}

impl UrlRewrite {
    pub(crate) fn resolve(r: &model::UrlRewrite) -> UrlRewrite {
        UrlRewrite { authority: r.authority.clone(), path: r.path.clone() }
    }

    pub(crate) fn uses_prefix(&self) -> bool {
        matches!(self.path, Some(PathRewrite::Prefix(_)))
    }

    /// Rewrites the request's path and notes the `Host` the backend is to receive.
    pub(crate) fn apply(&self, parts: &mut Parts, prefix: Option<&str>) -> Result<(), GatewayError> {
        if let Some(rw) = &self.path {
            let new = path(rw, prefix, parts.uri.path(), parts.uri.query()).ok_or(GatewayError::PolicyFailed)?;
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.path_and_query = Some(new.parse().map_err(|_| GatewayError::PolicyFailed)?);
            parts.uri = http::Uri::from_parts(uri).map_err(|_| GatewayError::PolicyFailed)?;
        }
        let host = match &self.authority {
            None | Some(AuthorityRewrite::Auto) => return Ok(()),
            Some(AuthorityRewrite::None) => original_authority(parts).map(str::to_string),
            Some(rw) => original_authority(parts).map(|o| authority(rw, o, "http", true)),
        };
        let value = host.and_then(|h| HeaderValue::from_str(&h).ok()).ok_or(GatewayError::PolicyFailed)?;
        parts.extensions.insert(HostOverride(value));
        Ok(())
    }
}

/// What the client asked for: its `Host` (or the absolute URI's authority, HTTP/2's `:authority`).
fn original_authority(parts: &Parts) -> Option<&str> {
    parts.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

fn split_port(authority: &str) -> (&str, Option<u16>) {
    match authority.rsplit_once(':') {
        // `[::1]` alone has colons but no port.
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()),
        _ => (authority, None),
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// The new authority. `host`: a port the client used stays, unless the scheme was set (then
/// the new scheme's default port is meant); `port`: the scheme's default port is left out.
fn authority(rw: &AuthorityRewrite, original: &str, scheme: &str, scheme_set: bool) -> String {
    let (host, port) = split_port(original);
    match rw {
        AuthorityRewrite::Full(a) => a.clone(),
        AuthorityRewrite::Host(h) => match port {
            Some(p) if !scheme_set && p != default_port(scheme) => format!("{h}:{p}"),
            _ => h.clone(),
        },
        AuthorityRewrite::Port(p) if *p == default_port(scheme) => host.to_string(),
        AuthorityRewrite::Port(p) => format!("{host}:{p}"),
        AuthorityRewrite::Auto | AuthorityRewrite::None => original.to_string(),
    }
}

/// The new path and query; `None` when a prefix rewrite does not apply to this path.
fn path(rw: &PathRewrite, prefix: Option<&str>, path: &str, query: Option<&str>) -> Option<String> {
    let mut out = match rw {
        PathRewrite::Full(f) => f.clone(),
        PathRewrite::Prefix(replacement) => {
            let matched = prefix?.trim_end_matches('/');
            let rest = path.strip_prefix(matched)?;
            if !(matched.is_empty() || rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            let base = replacement.trim_end_matches('/');
            let rest = rest.trim_start_matches('/');
            match (base.is_empty(), rest.is_empty()) {
                (_, true) if replacement.ends_with('/') || base.is_empty() => format!("{base}/"),
                (_, true) => base.to_string(),
                _ => format!("{base}/{rest}"),
            }
        }
    };
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(r: &str, matched: &str, p: &str) -> Option<String> {
        path(&PathRewrite::Prefix(r.into()), Some(matched), p, None)
    }

    #[test]
    fn prefix_paths() {
        assert_eq!(prefix("/v2", "/api", "/api/users").as_deref(), Some("/v2/users"));
        assert_eq!(prefix("/v2/", "/api/", "/api/users").as_deref(), Some("/v2/users"));
        assert_eq!(prefix("/", "/api", "/api/users").as_deref(), Some("/users"));
        assert_eq!(prefix("/v2", "/api", "/api").as_deref(), Some("/v2"));
        assert_eq!(prefix("/", "/api", "/api").as_deref(), Some("/"));
        assert_eq!(prefix("/v2", "/api", "/apix"), None, "segment boundary");
        assert_eq!(prefix("/v2", "", "/a/b").as_deref(), Some("/v2/a/b"));
        assert_eq!(
            path(&PathRewrite::Full("/new".into()), None, "/old", Some("q=1")).as_deref(),
            Some("/new?q=1"),
            "the query stays"
        );
        assert_eq!(path(&PathRewrite::Full(String::new()), None, "/old", None).as_deref(), Some("/"));
    }

    #[test]
    fn authorities() {
        let a = |rw: AuthorityRewrite, o: &str, s: &str, set: bool| authority(&rw, o, s, set);
        assert_eq!(a(AuthorityRewrite::Host("b".into()), "a:8080", "http", false), "b:8080");
        assert_eq!(a(AuthorityRewrite::Host("b".into()), "a:8080", "https", true), "b");
        assert_eq!(a(AuthorityRewrite::Port(8443), "a:80", "https", true), "a:8443");
        assert_eq!(a(AuthorityRewrite::Port(443), "a:80", "https", true), "a");
        assert_eq!(a(AuthorityRewrite::Full("x:1".into()), "a", "http", false), "x:1");
        assert_eq!(a(AuthorityRewrite::Port(81), "[::1]", "http", false), "[::1]:81");
    }
}
