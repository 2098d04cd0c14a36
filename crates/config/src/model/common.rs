//! Value types shared across the config: durations, secrets, file-or-inline sources.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration as StdDuration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the Go way: `"10s"`, `"1m30s"`, `"250ms"`, `"1.5h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub fn get(self) -> StdDuration {
        self.0
    }

    /// Parses Go `time.ParseDuration` syntax (units ns, us/µs, ms, s, m, h; no negatives).
    pub fn parse(text: &str) -> Result<Duration, String> {
        let s = text.trim();
        if s == "0" {
            return Ok(Duration(StdDuration::ZERO));
        }
        if s.is_empty() {
            return Err("empty duration".into());
        }
        if s.starts_with('-') {
            return Err(format!("`{text}`: durations cannot be negative"));
        }
        let mut rest = s.strip_prefix('+').unwrap_or(s);
        let mut total_ns: f64 = 0.0;
        while !rest.is_empty() {
            let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            let (num, after) = rest.split_at(num_len);
            if num.is_empty() || num == "." {
                return Err(format!("`{text}` is not a duration (expected e.g. \"10s\", \"1m30s\", \"250ms\")"));
            }
            let value: f64 = num.parse().map_err(|_| format!("`{text}`: bad number `{num}`"))?;
            let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let scale = match unit {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "" => {
                    return Err(format!("`{text}`: missing unit (one of ns, us, ms, s, m, h)"));
                }
                other => {
                    return Err(format!("`{text}`: unknown unit `{other}` (one of ns, us, ms, s, m, h)"));
                }
            };
            total_ns += value * scale;
            rest = next;
        }
        if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
            return Err(format!("`{text}` is too long a duration"));
        }
        Ok(Duration(StdDuration::from_nanos(total_ns.round() as u64)))
    }
}

impl fmt::Display for Duration {
    /// Go style: `1m30s`, `250ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let total_ms = d.as_millis();
        if d.as_secs() == 0 {
            return if d.subsec_nanos().is_multiple_of(1_000_000) {
                write!(f, "{total_ms}ms")
            } else {
                write!(f, "{}ns", d.as_nanos())
            };
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if h > 0 || m > 0 {
            write!(f, "{m}m")?;
        }
        let frac = d.subsec_nanos();
        if frac == 0 {
            write!(f, "{s}s")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{s}.{}s", digits.trim_end_matches('0'))
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration in Go syntax, e.g. \"10s\", \"1m30s\", \"250ms\".",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$"
        })
    }
}

/// A secret string: read from the config, never written to logs, errors or dumps.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

pub const REDACTED: &str = "<redacted>";

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Either a path (`{file: ./keys.json}`) or the content itself as a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FileOrInline {
    /// The content, inline.
    Inline(String),
    /// A file to read, relative to the working directory.
    File(FileRef),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Path of the file, relative to the gateway's working directory.
    pub file: String,
}

/// Like [`FileOrInline`], plus a URL to fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FileInlineOrRemote {
    /// The content, inline.
    Inline(String),
    /// A file to read, relative to the working directory.
    File(FileRef),
    /// A URL to fetch (and refresh) the content from.
    Remote(UrlRef),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlRef {
    /// The URL to fetch.
    pub url: String,
}

/// A field that agentgateway accepts and this gateway does not implement yet. It is parsed
/// (so the config is recognised) and then rejected with "not supported yet" — a security
/// policy that is silently ignored would be a hole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unsupported(pub serde_json::Value);

impl JsonSchema for Unsupported {
    fn schema_name() -> Cow<'static, str> {
        "Unsupported".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Accepted by agentgateway; not supported yet by this gateway (configuring it is an error)."
        })
    }
}

/// The entries of `items` that are set, for "not supported yet" reporting.
pub fn present<'a>(
    items: impl IntoIterator<Item = (&'static str, &'a Option<Unsupported>)>,
) -> impl Iterator<Item = (&'static str, &'a Unsupported)> {
    items.into_iter().filter_map(|(name, v)| v.as_ref().map(|v| (name, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> StdDuration {
        Duration::parse(s).unwrap().0
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(d("10s"), StdDuration::from_secs(10));
        assert_eq!(d("1m30s"), StdDuration::from_secs(90));
        assert_eq!(d("250ms"), StdDuration::from_millis(250));
        assert_eq!(d("1.5h"), StdDuration::from_secs(5400));
        assert_eq!(d("0"), StdDuration::ZERO);
        assert_eq!(d("1h2m3s4ms"), StdDuration::from_millis(3_723_004));
        assert_eq!(d("3us"), StdDuration::from_micros(3));
        for bad in ["", "10", "-1s", "1d", "s", "1.s.", "10 s", "1x"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_like_go() {
        for (s, want) in [("90s", "1m30s"), ("250ms", "250ms"), ("0s", "0s"), ("2h", "2h0m0s"), ("1.5s", "1.5s")] {
            assert_eq!(Duration::parse(s).unwrap().to_string(), want);
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2");
    }
}
