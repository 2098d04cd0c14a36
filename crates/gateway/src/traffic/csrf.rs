//! `csrf`: a browser on another site must not make state-changing requests with the user's
//! cookies. Safe methods pass; then `Sec-Fetch-Site` decides when the browser sent it
//! (`same-origin` and `none` pass); otherwise the `Origin` must be absent (or `null`), the
//! gateway's own origin (the scheme and `Host` the request came with), or a trusted one.

use std::collections::HashSet;

use agw_config::model;
use agw_http::body::{self, Body};
use http::header::{HOST, ORIGIN};
use http::request::Parts;
use http::{Method, Response, StatusCode};

#[derive(Debug)]
pub(crate) struct Csrf {
    trusted: HashSet<String>,
}

impl Csrf {
    pub(crate) fn resolve(c: &model::Csrf) -> Csrf {
        Csrf { trusted: c.additional_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect() }
    }

    /// `Some(403)` when the request is refused.
    pub(crate) fn check(&self, parts: &Parts, tls: bool) -> Option<Response<Body>> {
        if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        let origin = parts
            .headers
            .get(ORIGIN)
            .map(|o| o.to_str().map(str::to_ascii_lowercase).unwrap_or_default())
            .filter(|o| o != "null");
        let trusted = origin.as_ref().is_some_and(|o| self.trusted.contains(o));
        let allowed = match parts.headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or_default()) {
            Some("same-origin" | "none") => true,
            Some(_) => trusted,
            None => match &origin {
                None => true,
                Some(o) => trusted || *o == own_origin(parts, tls),
            },
        };
        if allowed {
            return None;
        }
        tracing::debug!(origin = ?origin, "csrf: cross-site state-changing request refused");
        let mut r = Response::new(body::full("CSRF validation failed"));
        *r.status_mut() = StatusCode::FORBIDDEN;
        Some(r)
    }
}

fn own_origin(parts: &Parts, tls: bool) -> String {
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    format!("{}://{}", if tls { "https" } else { "http" }, host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/x").header("host", "gw.example.com");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn cross_site_state_changes_are_refused() {
        let c = Csrf::resolve(&model::Csrf { additional_origins: vec!["https://app.example.com/".into()] });
        let refused = |m: &str, h: &[(&str, &str)]| c.check(&parts(m, h), false).map(|r| r.status().as_u16());
        assert_eq!(refused("GET", &[("origin", "https://evil.example")]), None, "safe methods pass");
        assert_eq!(refused("POST", &[]), None, "no Origin: not a browser's cross-site request");
        assert_eq!(refused("POST", &[("origin", "null")]), None);
        assert_eq!(refused("POST", &[("origin", "http://gw.example.com")]), None, "same origin");
        assert_eq!(refused("POST", &[("origin", "https://evil.example")]), Some(403));
        assert_eq!(refused("DELETE", &[("origin", "https://app.example.com")]), None, "trusted");
        assert_eq!(refused("POST", &[("sec-fetch-site", "same-origin"), ("origin", "https://x")]), None);
        assert_eq!(refused("POST", &[("sec-fetch-site", "cross-site")]), Some(403));
        assert_eq!(refused("PUT", &[("sec-fetch-site", "same-site"), ("origin", "https://app.example.com")]), None);
        assert_eq!(
            refused("POST", &[("origin", "http://gw.example.com")]).is_none(),
            c.check(&parts("POST", &[("origin", "https://gw.example.com")]), true).is_none()
        );
    }
}
