//! Where a credential travels: a header (with a scheme prefix), a query parameter, or a cookie.

use agw_config::model::CredentialLocation;
use http::header::{AUTHORIZATION, COOKIE, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A header; the prefix (e.g. `Bearer `) is matched case-insensitively.
    Header {
        name: HeaderName,
        prefix: String,
    },
    Query(String),
    Cookie(String),
}

impl Location {
    /// `Authorization: Bearer <token>`.
    pub fn bearer() -> Location {
        Location::Header { name: AUTHORIZATION, prefix: "Bearer ".into() }
    }

    /// `Authorization: Basic <credentials>`.
    pub fn basic() -> Location {
        Location::Header { name: AUTHORIZATION, prefix: "Basic ".into() }
    }

    /// From config; `None` → `default`. A CEL `expression` location is not supported.
    pub fn from_config(c: Option<&CredentialLocation>, default: Location) -> Result<Location, String> {
        Ok(match c {
            None => default,
            Some(CredentialLocation::Header(h)) => Location::Header {
                name: HeaderName::try_from(h.name.as_str())
                    .map_err(|_| format!("`{}` is not a header name", h.name))?,
                prefix: h.prefix.clone().unwrap_or_default(),
            },
            Some(CredentialLocation::QueryParameter(q)) => Location::Query(q.name.clone()),
            Some(CredentialLocation::Cookie(c)) => Location::Cookie(c.name.clone()),
            Some(CredentialLocation::Expression(_)) => return Err("not supported yet (`expression` locations)".into()),
        })
    }

    /// The credential, if the request carries one here. Surrounding spaces are trimmed.
    pub fn extract(&self, parts: &Parts) -> Option<String> {
        match self {
            Location::Header { name, prefix } => parts.headers.get_all(name).iter().find_map(|v| {
                let rest = after_prefix(v.as_bytes(), prefix)?;
                // Bytes that are not UTF-8 cannot be a valid credential; kept (lossily) so that
                // the request is refused as invalid rather than let in as anonymous.
                let text = match std::str::from_utf8(rest) {
                    Ok(s) => s.to_string(),
                    Err(_) => String::from_utf8_lossy(rest).into_owned(),
                };
                Some(text).filter(|t| !t.is_empty())
            }),
            Location::Query(name) => form_urlencoded::parse(parts.uri.query()?.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|t| !t.is_empty()),
            Location::Cookie(name) => {
                cookies(parts).find(|(k, _)| k == name).map(|(_, v)| v.to_string()).filter(|t| !t.is_empty())
            }
        }
    }

    /// Puts `credential` on the request here (replacing what was there).
    pub fn insert(&self, parts: &mut Parts, credential: &str) {
        self.remove(parts);
        match self {
            Location::Header { name, prefix } => {
                if let Ok(v) = HeaderValue::try_from(format!("{prefix}{credential}")) {
                    parts.headers.insert(name.clone(), v);
                }
            }
            Location::Query(name) => {
                let mut pq = parts.uri.path().to_string();
                let mut ser = form_urlencoded::Serializer::new(String::new());
                if let Some(q) = parts.uri.query() {
                    ser.extend_pairs(form_urlencoded::parse(q.as_bytes()));
                }
                ser.append_pair(name, credential);
                pq.push('?');
                pq.push_str(&ser.finish());
                let mut uri_parts = parts.uri.clone().into_parts();
                if let Ok(pq) = PathAndQuery::try_from(pq) {
                    uri_parts.path_and_query = Some(pq);
                    if let Ok(uri) = http::Uri::from_parts(uri_parts) {
                        parts.uri = uri;
                    }
                }
            }
            Location::Cookie(name) => {
                let mut all: Vec<String> = cookies(parts).map(|(k, v)| format!("{k}={v}")).collect();
                all.push(format!("{name}={credential}"));
                if let Ok(v) = HeaderValue::try_from(all.join("; ")) {
                    parts.headers.insert(COOKIE, v);
                }
            }
        }
    }

    /// The header this location names, if it is a header.
    pub fn header(&self, credential: &str) -> Option<(HeaderName, HeaderValue)> {
        match self {
            Location::Header { name, prefix } => {
                HeaderValue::try_from(format!("{prefix}{credential}")).ok().map(|v| (name.clone(), v))
            }
            Location::Query(_) | Location::Cookie(_) => None,
        }
    }

    /// Takes the credential out of the request (so it does not go upstream).
    pub fn remove(&self, parts: &mut Parts) {
        match self {
            Location::Header { name, prefix } => {
                let kept: Vec<HeaderValue> = parts
                    .headers
                    .get_all(name)
                    .iter()
                    .filter(|v| after_prefix(v.as_bytes(), prefix).is_none())
                    .cloned()
                    .collect();
                parts.headers.remove(name);
                for v in kept {
                    parts.headers.append(name.clone(), v);
                }
            }
            Location::Query(name) => {
                let Some(query) = parts.uri.query() else { return };
                let rest: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                    .filter(|(k, _)| k != name)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let mut pq = parts.uri.path().to_string();
                if !rest.is_empty() {
                    pq.push('?');
                    pq.push_str(&form_urlencoded::Serializer::new(String::new()).extend_pairs(rest).finish());
                }
                let mut uri_parts = parts.uri.clone().into_parts();
                if let Ok(pq) = PathAndQuery::try_from(pq) {
                    uri_parts.path_and_query = Some(pq);
                    if let Ok(uri) = http::Uri::from_parts(uri_parts) {
                        parts.uri = uri;
                    }
                }
            }
            Location::Cookie(name) => {
                let rest: Vec<String> =
                    cookies(parts).filter(|(k, _)| k != name).map(|(k, v)| format!("{k}={v}")).collect();
                parts.headers.remove(COOKIE);
                if !rest.is_empty()
                    && let Ok(v) = HeaderValue::try_from(rest.join("; "))
                {
                    parts.headers.insert(COOKIE, v);
                }
            }
        }
    }
}

/// What follows `prefix` in a header value (trimmed), if the value starts with it. The scheme
/// is matched case-insensitively, and a prefix ending in a space (`Bearer `) accepts any run
/// of spaces and tabs there (RFC 9110 §11.4), so `Bearer<TAB>tok` is a credential too.
fn after_prefix<'a>(value: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    let scheme = prefix.trim_end().as_bytes();
    let spaced = scheme.len() != prefix.len();
    let head = value.get(..scheme.len())?;
    if !head.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = &value[scheme.len()..];
    if spaced && !scheme.is_empty() && !rest.is_empty() && !matches!(rest[0], b' ' | b'\t') {
        // `Bearerx`: another scheme.
        return None;
    }
    Some(rest.trim_ascii())
}

fn cookies(parts: &Parts) -> impl Iterator<Item = (&str, &str)> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn header_with_prefix() {
        let mut p = parts("/", &[("authorization", "bearer  abc "), ("x-other", "1")]);
        assert_eq!(Location::bearer().extract(&p).as_deref(), Some("abc"));
        assert_eq!(Location::basic().extract(&p), None);
        Location::bearer().remove(&mut p);
        assert!(p.headers.get("authorization").is_none());
        assert!(p.headers.get("x-other").is_some());
        let p = parts("/", &[("authorization", "Bearer ")]);
        assert_eq!(Location::bearer().extract(&p), None);
        let mut tab = parts("/", &[("authorization", "Bearer\tabc")]);
        assert_eq!(Location::bearer().extract(&tab).as_deref(), Some("abc"), "any whitespace after the scheme");
        Location::bearer().remove(&mut tab);
        assert!(tab.headers.get("authorization").is_none(), "and it is removed");
        let other = parts("/", &[("authorization", "Bearerx abc")]);
        assert_eq!(Location::bearer().extract(&other), None, "another scheme");
        let mut raw = parts("/", &[]);
        raw.headers.insert("authorization", HeaderValue::from_bytes(b"Bearer \xfftok").unwrap());
        assert!(Location::bearer().extract(&raw).is_some(), "not UTF-8: still a (bad) credential");
        Location::bearer().remove(&mut raw);
        assert!(raw.headers.get("authorization").is_none());
        let key = Location::Header { name: HeaderName::from_static("x-api-key"), prefix: String::new() };
        assert_eq!(key.extract(&parts("/", &[("x-api-key", " k1 ")])).as_deref(), Some("k1"));
    }

    #[test]
    fn query_and_cookie() {
        let mut p = parts("/mcp?a=1&token=t%2B1&b=2", &[("cookie", "x=1; session=s2; y=3")]);
        let q = Location::Query("token".into());
        assert_eq!(q.extract(&p).as_deref(), Some("t+1"));
        q.remove(&mut p);
        assert_eq!(p.uri.to_string(), "/mcp?a=1&b=2");
        let c = Location::Cookie("session".into());
        assert_eq!(c.extract(&p).as_deref(), Some("s2"));
        c.remove(&mut p);
        assert_eq!(p.headers["cookie"], "x=1; y=3");
        let mut only = parts("/mcp?token=x", &[]);
        q.remove(&mut only);
        assert_eq!(only.uri.to_string(), "/mcp");
    }
}
