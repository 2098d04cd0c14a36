//! Request-path normalisation, applied before any routing or policy so that every step (route
//! matching, authentication, the reverse proxy, the MCP relay) sees the same path. A path that
//! could be read two ways by the gateway and an upstream is refused rather than guessed at.
//!
//! Follows RFC 3986: §6.2.2 (percent-encoding normalisation) then §5.2.4 (dot segments), plus
//! merging runs of `/` (like Envoy's `merge_slashes`). Encoded `/` and `\` are refused, like
//! Envoy's `path_with_escaped_slashes_action: REJECT_REQUEST`: decoding them would change the
//! segments, keeping them lets upstreams that decode disagree with our routing.

use std::borrow::Cow;

/// Why a request path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("invalid percent-escape")]
    InvalidEscape,
    #[error("encoded `/` or `\\` (%2F, %5C) is not allowed")]
    EncodedSlash,
    #[error("NUL is not allowed")]
    Nul,
    #[error("`\\` is not allowed")]
    Backslash,
}

/// The normalised form of `path` (the path component of a request target, without the query),
/// borrowed when it is already normal.
///
/// `*` (the asterisk form of `OPTIONS *`) is kept as is: it names no resource, so no route
/// prefix can match it by accident.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(path.as_bytes())? {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path.as_bytes())?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

/// Whether nothing needs changing; refuses raw `\` and NUL on the way (the common `/mcp` is
/// one pass over a few bytes, with no allocation).
fn is_normal(bytes: &[u8]) -> Result<bool, PathError> {
    let mut normal = true;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            // An escape that is already in normal form (upper-case hex of a character that
            // must stay encoded) keeps the path borrowed; anything else takes the slow path,
            // which also refuses what must be refused.
            b'%' if !is_normal_escape(bytes.get(i + 1..i + 3)) => normal = false,
            b'/' => {
                let rest = &bytes[i + 1..];
                if rest.starts_with(b"/")
                    || rest == b"."
                    || rest == b".."
                    || rest.starts_with(b"./")
                    || rest.starts_with(b"../")
                {
                    normal = false;
                }
            }
            _ => {}
        }
    }
    Ok(normal)
}

fn is_normal_escape(digits: Option<&[u8]>) -> bool {
    let Some(&[hi, lo]) = digits else { return false };
    let upper = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
    let (Some(h), Some(l)) = (hex(hi), hex(lo)) else { return false };
    let value = h << 4 | l;
    upper(hi) && upper(lo) && !is_unreserved(value) && !matches!(value, b'/' | b'\\' | 0)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// §6.2.2.1–2: unreserved characters decoded, other escapes kept with upper-case hex digits.
fn decode_unreserved(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            b'%' => {
                let (Some(hi), Some(lo)) =
                    (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
                else {
                    return Err(PathError::InvalidEscape);
                };
                let value = hi << 4 | lo;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSlash),
                    0 => return Err(PathError::Nul),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    _ => {
                        out.push('%');
                        out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                        out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
                    }
                }
                i += 3;
            }
            _ => {
                // The path is a `&str`, so a multi-byte character is copied whole, byte by
                // byte; none of its bytes is ASCII.
                let len = utf8_len(b);
                out.push_str(std::str::from_utf8(&bytes[i..i + len]).map_err(|_| PathError::InvalidEscape)?);
                i += len;
            }
        }
    }
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// §5.2.4, with empty segments (`//`) dropped; `..` at the root stays at the root. A path that
/// ended in `/`, `.` or `..` keeps a trailing `/` (`/a/b/..` is `/a/`).
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        for p in
            ["/", "/mcp", "/a/b/c", "/a/b/", "/a.b/c..d/.e", "/a/...", "*", "/caf\u{e9}", "/a%20b", "/a%3Ab", "/%252e"]
        {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(b)) if b == p), "{p}");
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/x/../admin", Ok("/admin")),
            ("/./admin", Ok("/admin")),
            ("//admin", Ok("/admin")),
            ("/admin//x///y", Ok("/admin/x/y")),
            ("/%61dmin", Ok("/admin")),
            ("/adm%69n", Ok("/admin")),
            ("/%2e%2e/admin", Ok("/admin")),
            ("/public/%2E%2E/admin", Ok("/admin")),
            ("/public/.%2e/admin", Ok("/admin")),
            ("/admin/./x", Ok("/admin/x")),
            ("/admin/x/..", Ok("/admin/")),
            ("/admin/.", Ok("/admin/")),
            ("/..", Ok("/")),
            ("/../../a", Ok("/a")),
            ("/a/b/../../..", Ok("/")),
            ("/a%7e%2D%5f", Ok("/a~-_")),
            ("/a%20b", Ok("/a%20b")),
            ("/a%3a%c3%a9", Ok("/a%3A%C3%A9")),
            ("/a%3Ab", Ok("/a%3Ab")),
            ("/admin%2Fx", Err(PathError::EncodedSlash)),
            ("/admin%2fx", Err(PathError::EncodedSlash)),
            ("/admin%5cx", Err(PathError::EncodedSlash)),
            ("/admin%5Cx", Err(PathError::EncodedSlash)),
            ("/public/..%2Fadmin", Err(PathError::EncodedSlash)),
            ("/a%00", Err(PathError::Nul)),
            ("/a\0", Err(PathError::Nul)),
            ("/a\\b", Err(PathError::Backslash)),
            ("/a%", Err(PathError::InvalidEscape)),
            ("/a%4", Err(PathError::InvalidEscape)),
            ("/a%zz", Err(PathError::InvalidEscape)),
            ("/a%%41", Err(PathError::InvalidEscape)),
            ("admin", Err(PathError::NotAbsolute)),
            ("", Err(PathError::NotAbsolute)),
        ];
        for (input, want) in cases {
            let got = normalize(input);
            assert_eq!(got.as_deref().map_err(Clone::clone), want.clone(), "{input}");
        }
    }

    #[test]
    fn decoding_happens_once() {
        // `%252e` is an encoded `%`, followed by `2e`: not a dot segment.
        assert_eq!(normalize("/%252e%252e/admin").unwrap(), "/%252e%252e/admin");
    }

    #[test]
    fn normal_output_is_a_fixed_point() {
        for p in ["/x/../admin", "/%61//b/./c/..", "/a%3a", "/a/b/.."] {
            let once = normalize(p).unwrap().into_owned();
            assert!(matches!(normalize(&once), Ok(Cow::Borrowed(_))), "{p} -> {once}");
        }
    }
}
