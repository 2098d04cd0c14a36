//! What must not reach a log line, an error message or `/config_dump`: credentials that ride
//! in URLs (userinfo, query strings, fragments), stdio arguments, environment and header
//! values. Environment, header and key values are [`Secret`](crate::model::common::Secret)s
//! and never serialise; URLs and stdio arguments are plain strings in the model (they are
//! needed as they are), so they pass through here on their way out.

use serde_json::Value;

use crate::Config;
pub use crate::model::common::REDACTED;

/// `text` (a URL, or a `host[:port][/path]` without a scheme) with its userinfo, query and
/// fragment replaced: `http://user:pw@host/p?token=x` → `http://<redacted>@host/p?<redacted>`.
/// Scheme, host, port and path stay, which is what an operator needs to tell upstreams apart.
pub fn url(text: &str) -> String {
    let after_scheme = scheme_end(text).unwrap_or(0);
    let (head, rest) = text.split_at(after_scheme);
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_len);
    let mut out = String::with_capacity(text.len());
    out.push_str(head);
    match authority.rfind('@') {
        Some(at) => {
            out.push_str(REDACTED);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let path_len = tail.find(['?', '#']).unwrap_or(tail.len());
    out.push_str(&tail[..path_len]);
    let mut extra = &tail[path_len..];
    if let Some(query) = extra.strip_prefix('?') {
        let end = query.find('#').unwrap_or(query.len());
        out.push('?');
        if end > 0 {
            out.push_str(REDACTED);
        }
        extra = &query[end..];
    }
    if let Some(fragment) = extra.strip_prefix('#') {
        out.push('#');
        if !fragment.is_empty() {
            out.push_str(REDACTED);
        }
    }
    out
}

/// Where the authority starts, when `text` begins with a scheme and `://`.
fn scheme_end(text: &str) -> Option<usize> {
    let colon = text.find("://")?;
    let scheme = &text[..colon];
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(colon + 3)
}

/// The config as `/config_dump` shows it: secrets (already), URLs and stdio arguments
/// redacted. URLs are found by shape (a string that starts with `scheme://`) and under the
/// keys that hold an upstream's address (`host`, `url`, `otlpEndpoint`), wherever they are,
/// so that fields added later are covered too.
pub fn dump(config: &Config) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    redact_value(&mut value, None);
    value
}

fn redact_value(value: &mut Value, key: Option<&str>) {
    match value {
        Value::String(s) if matches!(key, Some("host" | "url" | "otlpEndpoint")) || scheme_end(s).is_some() => {
            *s = url(s);
        }
        // stdio `args`: tokens and passwords are often passed as arguments.
        Value::Array(items) if key == Some("args") => {
            for item in items {
                *item = Value::String(REDACTED.into());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact_value(i, None)),
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact_value(v, Some(k))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_query_and_fragment() {
        for (text, want) in [
            ("http://user:pass@host:8080/p?token=x#frag", "http://<redacted>@host:8080/p?<redacted>#<redacted>"),
            ("https://host/mcp", "https://host/mcp"),
            ("https://host?key=1", "https://host?<redacted>"),
            ("http://a@b@host/x@y", "http://<redacted>@host/x@y"),
            ("user:pw@localhost:3000/mcp?q", "<redacted>@localhost:3000/mcp?<redacted>"),
            ("localhost:3000", "localhost:3000"),
            ("http://host/?", "http://host/?"),
            ("", ""),
        ] {
            assert_eq!(url(text), want, "{text}");
        }
    }

    #[test]
    fn dumps_hide_urls_args_and_secrets() {
        let yaml = r#"
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        requestHeaderModifier:
          set: {authorization: hdr-secret}
      backends:
      - mcp:
          targets:
          - name: a
            mcp: {host: "http://localhost:3001/mcp?token=q-secret"}
          - name: b
            stdio: {cmd: server, args: ["--token", "arg-secret"], env: {KEY: env-secret}}
"#;
        let loaded = crate::load_str("t.yaml", yaml).unwrap();
        let text = dump(&loaded.config).to_string();
        for secret in ["hdr-secret", "q-secret", "arg-secret", "env-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("http://localhost:3001/mcp?<redacted>"), "{text}");
        assert!(text.contains(r#""cmd":"server""#), "{text}");
    }
}
