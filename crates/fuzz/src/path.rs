//! The request-path normaliser (`agw_gateway::path::normalize`), applied to every request
//! target before routing and policies.

use std::borrow::Cow;

use agw_gateway::path::{PathError, normalize};

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Every escape of `segment` decoded (paths that normalise have only valid escapes).
fn decode(segment: &str) -> Vec<u8> {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (other, ..) => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

/// What a path names, independently of how it is spelled: its segments fully decoded, with
/// empty and `.` segments dropped and `..` removing the one before (never above the root),
/// and whether it ends in a `/` (an ending `/`, `.` or `..`, or nothing left).
fn resolve(path: &str) -> (Vec<Vec<u8>>, bool) {
    let mut kept = Vec::new();
    let mut trailing = false;
    for segment in path.split('/').skip(1).map(decode) {
        trailing = matches!(&segment[..], b"" | b"." | b"..");
        match &segment[..] {
            b"" | b"." => {}
            b".." => {
                kept.pop();
            }
            _ => kept.push(segment),
        }
    }
    let trailing = trailing || kept.is_empty();
    (kept, trailing)
}

/// The escapes of `path` as (position, decoded byte, spelled in upper case).
fn escapes(path: &str) -> impl Iterator<Item = (u8, bool)> + '_ {
    let b = path.as_bytes();
    (0..b.len()).filter(|i| b[*i] == b'%').filter_map(move |i| {
        let (hi, lo) = (*b.get(i + 1)?, *b.get(i + 2)?);
        Some((hex(hi)? << 4 | hex(lo)?, !hi.is_ascii_lowercase() && !lo.is_ascii_lowercase()))
    })
}

fn invalid_escape(path: &str) -> bool {
    let b = path.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'%'
            && !(b.get(i + 1).is_some_and(|d| d.is_ascii_hexdigit())
                && b.get(i + 2).is_some_and(|d| d.is_ascii_hexdigit()))
    })
}

/// Input: a request path.
///
/// Invariants: the output starts with `/`, has no `//`, no `.` or `..` segment, no encoded
/// unreserved character, no lower-case escape, no `\`, NUL or encoded `/`, `\`, NUL; it names
/// what the input names ([`resolve`]); normalising it again borrows it unchanged; a borrowed
/// output is the input. Each refusal has its cause in the input.
pub fn path(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    match normalize(&input) {
        Ok(out) => {
            if let Cow::Borrowed(b) = &out {
                assert_eq!(*b, &*input, "a borrowed output is the input");
            }
            if input == "*" {
                assert_eq!(out, "*");
                return;
            }
            assert!(out.starts_with('/'), "{out:?} is not absolute");
            assert!(!out.contains("//"), "{out:?} has an empty segment");
            assert!(!out.contains(['\\', '\0']), "{out:?} has `\\` or NUL");
            for segment in out.split('/') {
                assert!(segment != "." && segment != "..", "{out:?} has a dot segment");
            }
            for (byte, upper) in escapes(&out) {
                let unreserved = byte.is_ascii_alphanumeric() || b"-._~".contains(&byte);
                assert!(!unreserved, "{out:?} has an encoded unreserved character");
                assert!(!matches!(byte, b'/' | b'\\' | 0), "{out:?} has an encoded `/`, `\\` or NUL");
                assert!(upper, "{out:?} has a lower-case escape");
            }
            assert!(!invalid_escape(&out), "{out:?} has an invalid escape");
            assert_eq!(resolve(&out), resolve(&input), "{input:?} -> {out:?} names something else");
            match normalize(&out) {
                Ok(Cow::Borrowed(again)) => assert_eq!(again, &*out),
                other => panic!("{input:?} -> {out:?} -> {other:?}: not a fixed point"),
            }
        }
        Err(e) => {
            let lower = input.to_ascii_lowercase();
            let cause = match e {
                PathError::NotAbsolute => !input.starts_with('/'),
                PathError::InvalidEscape => invalid_escape(&input),
                PathError::EncodedSlash => lower.contains("%2f") || lower.contains("%5c"),
                PathError::Nul => input.contains('\0') || input.contains("%00"),
                PathError::Backslash => input.contains('\\'),
            };
            assert!(cause, "{input:?} refused as {e:?} without its cause");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_reads_what_a_path_names() {
        let named = resolve;
        assert_eq!(named("/a/./b/../c//"), (vec![b"a".to_vec(), b"c".to_vec()], true));
        assert_eq!(named("/%61/%2e%2E/b"), (vec![b"b".to_vec()], false));
        assert_eq!(named("/.."), (vec![], true));
        assert_ne!(named("/a%2fb"), named("/a/b"), "an encoded slash is part of a segment");
    }
}
