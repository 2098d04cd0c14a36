//! A stdio child's stderr, in the gateway's log.
//!
//! The child is not trusted with the log: a line is cut at [`MAX_LINE`] bytes (a child
//! writing a gigabyte without a newline must not take a gigabyte of memory), and control
//! characters are escaped, so that a `\r`, a newline or a terminal escape sequence cannot
//! forge, hide or rewrite log lines.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tracing::info;

/// The most of one stderr line that is logged; the rest of the line is skipped.
pub(crate) const MAX_LINE: usize = 4 << 10;

/// Logs every line of `stderr` until it ends.
pub(super) async fn log_lines(target: String, stderr: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Ok(Some(cut)) = next_line(&mut reader, &mut line, MAX_LINE).await {
        let text = escape(&line);
        if cut {
            info!(target = %target, "stderr: {text} [line cut at {MAX_LINE} bytes]");
        } else {
            info!(target = %target, "stderr: {text}");
        }
    }
}

/// Reads the next line into `out` (without its `\n` or `\r\n`), keeping at most `max` bytes of
/// it. `Some(true)` when the line was longer and cut, `None` at the end of the input.
pub(crate) async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    out.clear();
    let (mut cut, mut read_any) = (false, false);
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(read_any.then_some(cut));
        }
        read_any = true;
        let (len, ended) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        let room = max - out.len();
        out.extend_from_slice(&buf[..len.min(room)]);
        cut |= len > room;
        reader.consume(len + usize::from(ended));
        if ended {
            if !cut && out.last() == Some(&b'\r') {
                out.pop();
            }
            return Ok(Some(cut));
        }
    }
}

/// `bytes` as text fit for one log line: not UTF-8 is replaced, and every control character
/// (and the Unicode line separators and bidirectional overrides, which can hide text) is
/// written as an escape: `\r`, `\n`, `\t`, `\x1b`, `\u{202e}`.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c if matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut reader = BufReader::with_capacity(7, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some(cut) = next_line(&mut reader, &mut line, max).await.unwrap() {
            out.push((escape(&line), cut));
        }
        out
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_the_rest_skipped() {
        let mut input = b"short\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend_from_slice(b"\nnext\nlast without newline");
        let got = lines(&input, 16).await;
        assert_eq!(
            got,
            [
                ("short".to_string(), false),
                ("x".repeat(16), true),
                ("next".to_string(), false),
                ("last without newl".chars().take(16).collect(), true),
            ]
        );
    }

    #[tokio::test]
    async fn control_characters_cannot_forge_lines() {
        let got = lines(b"ok\rINFO forged\n\x1b[2Jcleared\tand \xe2\x80\xaereversed \xff\n", 4096).await;
        assert_eq!(got[0].0, "ok\\rINFO forged");
        assert_eq!(got[1].0, "\\x1b[2Jcleared\\tand \\u{202e}reversed \u{fffd}");
        assert_eq!(escape("\u{9b}31m\u{2028}\0".as_bytes()), "\\u{9b}31m\\u{2028}\\x00");
    }
}
