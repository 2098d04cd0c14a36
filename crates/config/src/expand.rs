//! `$VAR` expansion in config values, with agentgateway's rules.
//!
//! agentgateway runs the `shellexpand` crate's `full` over the file's text before parsing it.
//! The same rules apply here, to the text of each YAML scalar (keys included) after parsing,
//! so that a value can never change the document's structure and every node keeps its
//! position in the file as written:
//!
//! - `$NAME`: the longest run of letters, digits and `_` after the `$` (a name may start with
//!   a digit, so `$5` names the variable `5`);
//! - `${NAME}`: everything up to the first `}`; `${NAME:-default}` uses `default` (taken as
//!   written, not expanded again) when `NAME` is not set. A variable set to the empty string
//!   is set: the default is not used;
//! - `$$` is a literal `$`; a `$` followed by anything else, or by `{` with no `}` after it,
//!   stays as it is;
//! - a variable that is not set (or not valid UTF-8), with no default, is an error.

/// Where variable values come from: the process environment, or a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment. Names the OS cannot hold (empty, with `=` or NUL) are not set.
pub fn env(name: &str) -> Option<String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    std::env::var(name).ok()
}

/// A scalar after expansion.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub(crate) text: String,
    /// The values of the variables used, to keep them out of error messages.
    pub(crate) values: Vec<String>,
}

/// A reference to a variable that is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unset {
    pub(crate) name: String,
    /// The reference as written (`$NAME`, `${NAME}`).
    pub(crate) reference: String,
}

/// Why a text could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Variables that are not set, in order.
    Unset(Vec<Unset>),
    /// The result would be longer than the limit given.
    TooLong,
}

/// Expands `text`, giving up once the result is longer than `limit` bytes. `Ok(None)`:
/// nothing to expand (no `$`), the text stays as it is.
pub(crate) fn expand(text: &str, lookup: Lookup<'_>, limit: usize) -> Result<Option<Expanded>, Failure> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut values = Vec::new();
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (reference, name, default, next) = match after.chars().next() {
            Some('{') => match after.find('}') {
                Some(close) => {
                    let inner = &after[1..close];
                    // `${:-x}` has no name to default: the whole of `:-x` is the name.
                    let (name, default) = match inner.find(":-") {
                        Some(split) if split > 0 => (&inner[..split], Some(&inner[split + 2..])),
                        _ => (inner, None),
                    };
                    (&rest[dollar..dollar + close + 2], name, default, &after[close + 1..])
                }
                None => {
                    out.push_str("${");
                    rest = &after[1..];
                    continue;
                }
            },
            Some(c) if is_name_char(c) => {
                let len = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
                (&rest[dollar..dollar + 1 + len], &after[..len], None, &after[len..])
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
                continue;
            }
            _ => {
                out.push('$');
                rest = after;
                continue;
            }
        };
        match (lookup(name), default) {
            (Some(value), _) => {
                if out.len().saturating_add(value.len()) > limit {
                    return Err(Failure::TooLong);
                }
                out.push_str(&value);
                values.push(value);
            }
            (None, Some(default)) => out.push_str(default),
            (None, None) => unset.push(Unset { name: name.to_string(), reference: reference.to_string() }),
        }
        rest = next;
    }
    out.push_str(rest);
    if unset.is_empty() { Ok(Some(Expanded { text: out, values })) } else { Err(Failure::Unset(unset)) }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `message` with what came from variables put back as written: an expanded text becomes the
/// text as written (`$NAME`), and any value still in it (quoted differently, or part of a
/// longer text) becomes `<redacted>`. Texts and values shorter than four characters are left
/// alone: they cannot hide much, and replacing every `1` or `on` would garble the message.
/// One pass, longest match first, so that nothing put in is replaced again.
pub(crate) fn redact_message(message: &str, expansions: &[(&str, &Expanded)]) -> String {
    let mut swaps: Vec<(String, &str)> = Vec::new();
    for (original, e) in expansions {
        swaps.push((e.text.clone(), original));
        swaps.push((escaped(&e.text), original));
        for v in &e.values {
            swaps.push((v.clone(), crate::redact::REDACTED));
            swaps.push((escaped(v), crate::redact::REDACTED));
        }
    }
    swaps.retain(|(from, _)| from.chars().count() >= 4);
    swaps.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        match swaps.iter().find(|(from, _)| rest.starts_with(from.as_str())) {
            Some((from, to)) => {
                out.push_str(to);
                rest = &rest[from.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// How serde and `{:?}` quote a string, without the quotes.
fn escaped(s: &str) -> String {
    let debug = format!("{s:?}");
    debug[1..debug.len() - 1].to_string()
}

impl std::fmt::Debug for Expanded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Expanded { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            "KEY" => Some("s3cr3t-value".into()),
            "été" => Some("summer".into()),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        match expand(text, &vars, usize::MAX) {
            Ok(Some(e)) => e.text,
            Ok(None) => text.to_string(),
            Err(u) => panic!("{text}: unset {u:?}"),
        }
    }

    fn unset(text: &str) -> Vec<(String, String)> {
        match expand(text, &vars, usize::MAX) {
            Err(Failure::Unset(u)) => u.into_iter().map(|u| (u.name, u.reference)).collect(),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn the_forms_agentgateway_expands() {
        assert_eq!(ok("https://$HOST/keys"), "https://example.com/keys");
        assert_eq!(ok("${HOST}x"), "example.comx");
        assert_eq!(ok("$HOST.$HOST"), "example.com.example.com");
        assert_eq!(ok("${MISSING:-fallback}"), "fallback");
        assert_eq!(ok("${HOST:-fallback}"), "example.com");
        assert_eq!(ok("${MISSING:-}"), "");
        // Set to the empty string is set: no default.
        assert_eq!(ok("[${EMPTY:-fallback}]"), "[]");
        // The default is taken as written.
        assert_eq!(ok("${MISSING:-$HOST}"), "$HOST");
        assert_eq!(ok("${MISSING:-a:-b}"), "a:-b");
        assert_eq!(ok("$été"), "summer");
    }

    #[test]
    fn what_stays_as_written() {
        assert_eq!(ok("no dollar"), "no dollar");
        assert_eq!(ok("$$HOST"), "$HOST");
        assert_eq!(ok("a$$$HOST"), "a$example.com");
        assert_eq!(ok("cost: 5$"), "cost: 5$");
        assert_eq!(ok("$-x $. $/"), "$-x $. $/");
        assert_eq!(ok("${HOST"), "${HOST");
        assert_eq!(ok("${$HOST"), "${example.com");
        assert_eq!(expand("plain", &vars, usize::MAX), Ok(None));
        assert_eq!(expand("$HOST$HOST", &vars, 15), Err(Failure::TooLong));
    }

    #[test]
    fn unset_variables_are_errors() {
        assert_eq!(unset("$GATEWAY_API_KEY"), [("GATEWAY_API_KEY".into(), "$GATEWAY_API_KEY".into())]);
        assert_eq!(unset("https://${DOMAIN}/x"), [("DOMAIN".into(), "${DOMAIN}".into())]);
        assert_eq!(unset("$A and $B"), [("A".into(), "$A".into()), ("B".into(), "$B".into())]);
        // As in agentgateway: `$5` names a variable, and `${}` or `${:-x}` name odd ones.
        assert_eq!(unset("$5"), [("5".into(), "$5".into())]);
        assert_eq!(unset("${}"), [(String::new(), "${}".into())]);
        assert_eq!(unset("${:-x}"), [(":-x".into(), "${:-x}".into())]);
    }

    #[test]
    fn the_environment_lookup_refuses_names_the_os_cannot_hold() {
        assert_eq!(env(""), None);
        assert_eq!(env("A=B"), None);
        assert_eq!(env("A\0B"), None);
        assert!(env("PATH").is_some());
    }

    #[test]
    fn messages_show_what_was_written_not_the_value() {
        let e = expand("Bearer $KEY", &vars, usize::MAX).unwrap().unwrap();
        let msg = format!("wrong type: found string {:?}; the key `s3cr3t-value` is bad", e.text);
        let shown = redact_message(&msg, &[("Bearer $KEY", &e)]);
        assert_eq!(shown, "wrong type: found string \"Bearer $KEY\"; the key `<redacted>` is bad");
        // Short values are left alone rather than replaced inside other words and numbers.
        let short = Expanded { text: "0".into(), values: vec!["0".into()] };
        assert_eq!(redact_message("between 1 and 1024", &[("$W", &short)]), "between 1 and 1024");
        // Escaped the way serde quotes strings.
        let quoted = Expanded { text: "a\"b\\c".into(), values: vec!["a\"b\\c".into()] };
        assert_eq!(redact_message(r#"found string "a\"b\\c""#, &[("$Q", &quoted)]), r#"found string "$Q""#);
    }
}
