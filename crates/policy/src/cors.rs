//! CORS (Fetch standard): preflights answered by the gateway, before authentication; the
//! allow/expose headers added to actual responses.

use agw_config::model;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, request::Parts};

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    Any,
    Exact(String),
    /// `https://*.example.com` (optionally with a port): scheme, suffix, port part.
    Wildcard {
        scheme: String,
        suffix: String,
    },
}

impl OriginRule {
    fn parse(s: &str) -> OriginRule {
        let lower = s.trim().trim_end_matches('/').to_ascii_lowercase();
        if lower == "*" {
            return OriginRule::Any;
        }
        if let Some((scheme, rest)) = lower.split_once("://*.") {
            return OriginRule::Wildcard { scheme: scheme.to_string(), suffix: format!(".{rest}") };
        }
        OriginRule::Exact(lower)
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginRule::Any => true,
            OriginRule::Exact(e) => e == origin,
            OriginRule::Wildcard { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|r| r.strip_prefix("://"))
                .is_some_and(|host| host.ends_with(suffix.as_str()) && host.len() > suffix.len()),
        }
    }
}

/// A list that may be `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum List {
    Any,
    Some(HeaderValue),
    None,
}

impl List {
    fn parse(items: &[String]) -> Result<List, String> {
        if items.iter().any(|i| i.trim() == "*") {
            return Ok(List::Any);
        }
        if items.is_empty() {
            return Ok(List::None);
        }
        HeaderValue::try_from(items.join(", ")).map(List::Some).map_err(|_| format!("invalid value in {items:?}"))
    }
}

/// A compiled `cors` policy.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<OriginRule>,
    headers: List,
    methods: List,
    expose: List,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

impl Cors {
    pub fn new(c: &model::Cors) -> Result<Cors, String> {
        Ok(Cors {
            origins: c.allow_origins.iter().map(|o| OriginRule::parse(o)).collect(),
            headers: List::parse(&c.allow_headers)?,
            methods: List::parse(&c.allow_methods)?,
            expose: List::parse(&c.expose_headers)?,
            credentials: c.allow_credentials,
            max_age: c.max_age.map(|d| HeaderValue::from(d.get().as_secs())),
        })
    }

    fn allowed_origin<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        self.allows(headers.get(header::ORIGIN)?)
    }

    fn allows<'a>(&self, origin: &'a HeaderValue) -> Option<&'a HeaderValue> {
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        if self.credentials && text == "null" && !self.origins.contains(&OriginRule::Exact("null".into())) {
            // Sandboxed frames and `file:` pages send `null`; with credentials, `*` does not
            // cover it (only an explicit `null` entry does).
            return None;
        }
        self.origins.iter().any(|r| r.matches(&text)).then_some(origin)
    }

    fn any_origin(&self) -> bool {
        self.origins.contains(&OriginRule::Any)
    }

    /// `Access-Control-Allow-Origin` (and `Vary: Origin` when the answer depends on it).
    fn origin_headers(&self, origin: &HeaderValue, out: &mut HeaderMap) {
        if self.any_origin() && !self.credentials {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        } else {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            out.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if self.credentials {
            out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
    }

    /// If `parts` is a CORS preflight, the headers of the gateway's own `200` answer (empty
    /// when the origin is not allowed: the browser then refuses). `None` if it is not one.
    pub fn preflight(&self, parts: &Parts) -> Option<HeaderMap> {
        let h = &parts.headers;
        if parts.method != Method::OPTIONS
            || !h.contains_key(header::ORIGIN)
            || !h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut out = HeaderMap::new();
        let Some(origin) = self.allowed_origin(h) else { return Some(out) };
        self.origin_headers(origin, &mut out);
        let echo = |list: &List, requested: header::HeaderName| -> Option<HeaderValue> {
            match list {
                List::Some(v) => Some(v.clone()),
                List::None => None,
                List::Any => {
                    h.get(requested).cloned().or_else(|| (!self.credentials).then(|| HeaderValue::from_static("*")))
                }
            }
        };
        if let Some(v) = echo(&self.methods, header::ACCESS_CONTROL_REQUEST_METHOD) {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if let Some(v) = echo(&self.headers, header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(v) = &self.max_age {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        Some(out)
    }

    /// Adds the CORS headers an actual (non-preflight) response needs; `origin` is the
    /// request's `Origin` header.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let Some(origin) = origin.and_then(|o| self.allows(o)) else { return };
        self.origin_headers(origin, response);
        match &self.expose {
            List::Some(v) => {
                response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
            }
            List::Any if !self.credentials => {
                response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("*"));
            }
            List::Any | List::None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], headers: &[&str], methods: &[&str], expose: &[&str], credentials: bool) -> Cors {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Cors::new(&model::Cors {
            allow_credentials: credentials,
            allow_headers: s(headers),
            allow_methods: s(methods),
            allow_origins: s(origins),
            expose_headers: s(expose),
            max_age: Some(model::Duration::parse("1h").unwrap()),
        })
        .unwrap()
    }

    fn preflight(origin: &str, method: &str, req_headers: Option<&str>) -> Parts {
        let mut b = http::Request::builder()
            .method("OPTIONS")
            .uri("/mcp")
            .header("origin", origin)
            .header("access-control-request-method", method);
        if let Some(h) = req_headers {
            b = b.header("access-control-request-headers", h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tutorial_policy_preflight_and_response() {
        let c = cors(&["*"], &["*"], &[], &["Mcp-Session-Id"], false);
        let out = c.preflight(&preflight("https://app.example", "POST", Some("content-type,mcp-session-id"))).unwrap();
        assert_eq!(out["access-control-allow-origin"], "*");
        assert_eq!(out["access-control-allow-headers"], "content-type,mcp-session-id");
        assert!(out.get("access-control-allow-methods").is_none());
        assert_eq!(out["access-control-max-age"], "3600");
        assert!(out.get("vary").is_none());

        let mut resp = HeaderMap::new();
        c.decorate(Some(&HeaderValue::from_static("https://app.example")), &mut resp);
        assert_eq!(resp["access-control-allow-origin"], "*");
        assert_eq!(resp["access-control-expose-headers"], "Mcp-Session-Id");
    }

    #[test]
    fn exact_and_wildcard_origins_vary() {
        let c =
            cors(&["https://app.example", "https://*.corp.example"], &["content-type"], &["GET", "POST"], &[], true);
        let out = c.preflight(&preflight("https://app.example", "POST", None)).unwrap();
        assert_eq!(out["access-control-allow-origin"], "https://app.example");
        assert_eq!(out["vary"], "Origin");
        assert_eq!(out["access-control-allow-credentials"], "true");
        assert_eq!(out["access-control-allow-methods"], "GET, POST");
        assert!(
            c.preflight(&preflight("https://x.corp.example", "POST", None))
                .unwrap()
                .contains_key("access-control-allow-origin")
        );
        assert!(c.preflight(&preflight("https://corp.example", "POST", None)).unwrap().is_empty());
        assert!(c.preflight(&preflight("https://evil.example", "POST", None)).unwrap().is_empty());
        assert!(c.preflight(&preflight("http://app.example", "POST", None)).unwrap().is_empty(), "scheme matters");
        let not_preflight = http::Request::builder()
            .method("OPTIONS")
            .uri("/")
            .header("origin", "https://app.example")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(c.preflight(&not_preflight).is_none());
    }

    #[test]
    fn any_origin_with_credentials_reflects_but_never_null() {
        let c = cors(&["*"], &[], &[], &[], true);
        let out = c.preflight(&preflight("https://app.example", "POST", None)).unwrap();
        assert_eq!(out["access-control-allow-origin"], "https://app.example");
        assert_eq!(out["access-control-allow-credentials"], "true");
        assert!(c.preflight(&preflight("null", "POST", None)).unwrap().is_empty(), "opaque origin refused");
        let explicit = cors(&["null"], &[], &[], &[], true);
        assert_eq!(
            explicit.preflight(&preflight("null", "POST", None)).unwrap()["access-control-allow-origin"],
            "null"
        );
        let no_credentials = cors(&["*"], &[], &[], &[], false);
        assert_eq!(
            no_credentials.preflight(&preflight("null", "POST", None)).unwrap()["access-control-allow-origin"],
            "*"
        );
    }
}
