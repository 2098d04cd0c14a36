//! The SSE decoder (`Decoder::new(limit)`, `feed`, `next_event`): an upstream's event stream,
//! cut into chunks wherever the network cuts it.

use agw_mcp::sse::{Decoder, Event};

/// What one decoding pass saw.
struct Pass {
    events: Vec<Event>,
    /// The decoder refused an event as too large (it stops there).
    too_large: bool,
    /// Bytes still buffered at the end.
    leftover: usize,
}

/// The fields of an event, without its bytes (chunking may move where a skipped line ending
/// is counted, never what the event says).
type Fields = (Option<String>, Option<String>, String, Option<u64>);

fn fields(e: &Event) -> Fields {
    (e.event.clone(), e.id.clone(), e.data().to_string(), e.retry)
}

/// Feeds `input` cut at the lengths `chunks` yields, taking events after every chunk.
fn decode(limit: usize, input: &[u8], mut chunks: impl FnMut() -> usize) -> Pass {
    let mut decoder = Decoder::new(limit);
    let mut events = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let end = (at + chunks().max(1)).min(input.len());
        decoder.feed(&input[at..end]);
        at = end;
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(e.limit, limit);
                    return Pass { events, too_large: true, leftover: decoder.buffered() };
                }
            }
        }
    }
    Pass { events, too_large: false, leftover: decoder.buffered() }
}

fn is_line_break(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// Every event is the input's bytes, in order, with only blank lines skipped between them;
/// what is left buffered is the input's tail; no event exceeds the limit.
fn check_bytes(input: &[u8], limit: usize, pass: &Pass) {
    let mut at = 0;
    for event in &pass.events {
        assert!(!event.raw.is_empty(), "an empty event");
        assert!(event.raw.len() <= limit, "an event of {} bytes passed the limit {limit}", event.raw.len());
        while !input[at..].starts_with(&event.raw) {
            assert!(at < input.len() && is_line_break(input[at]), "event bytes differ from the input at {at}");
            at += 1;
        }
        at += event.raw.len();
        assert!(event.id.as_deref().is_none_or(|id| !id.contains('\0')), "an id with NUL");
    }
    if !pass.too_large {
        let tail = input.len().checked_sub(pass.leftover).expect("more buffered than fed");
        assert!(tail >= at, "buffered bytes overlap an event");
        assert!(input[at..tail].iter().all(|b| is_line_break(*b)), "bytes lost between events");
    }
}

/// Decoding does not depend on chunking: one pass's events are a prefix of the other's, and
/// equal when neither stopped at the limit.
fn check_same(a: &Pass, b: &Pass) {
    let n = a.events.len().min(b.events.len());
    let fa: Vec<Fields> = a.events.iter().map(fields).collect();
    let fb: Vec<Fields> = b.events.iter().map(fields).collect();
    assert_eq!(fa[..n], fb[..n], "chunking changed the events");
    if !a.too_large && !b.too_large {
        assert_eq!(fa.len(), fb.len(), "chunking changed the number of events");
    }
}

/// The events' fields as the standard's line-by-line algorithm reads them (WHATWG HTML
/// §9.2.6), with the decoder's documented choices: a BOM is dropped from the first line that
/// is not blank, an `id` with NUL is ignored, `retry` is whatever parses as a `u64` (else
/// none), and an event is dispatched at a blank line when any line came since the last one
/// (comments too: they are forwarded as keep-alives). Only complete lines count; a final `\r`
/// ends a line.
fn reference(input: &[u8]) -> Vec<Fields> {
    let mut out = Vec::new();
    let (mut event, mut id, mut data, mut retry): (Option<String>, Option<String>, Option<String>, Option<u64>) =
        (None, None, None, None);
    let mut lines_since_dispatch = false;
    let mut first = true;
    let mut rest = input;
    while let Some(end) = rest.iter().position(|b| is_line_break(*b)) {
        let mut line = &rest[..end];
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') { 2 } else { 1 };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if lines_since_dispatch {
                out.push((event.take(), id.take(), data.take().unwrap_or_default(), retry.take()));
            }
            lines_since_dispatch = false;
            continue;
        }
        lines_since_dispatch = true;
        if std::mem::take(&mut first) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.first() == Some(&b':') {
            continue;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (&line[..i], line[i + 1..].strip_prefix(b" ").unwrap_or(&line[i + 1..])),
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match name {
            b"event" => event = Some(value),
            b"data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(&value);
                }
                None => data = Some(value),
            },
            b"id" if !value.contains('\0') => id = Some(value),
            b"retry" => retry = value.parse().ok(),
            _ => {}
        }
    }
    out
}

/// The decoder reads what the reference reads (a prefix of it, if it stopped at the limit).
fn check_reference(input: &[u8], pass: &Pass) {
    let expected = reference(input);
    let got: Vec<Fields> = pass.events.iter().map(fields).collect();
    if pass.too_large {
        assert!(got.len() <= expected.len() && got[..] == expected[..got.len()], "events differ from the reference");
    } else {
        assert_eq!(got, expected, "events differ from the reference");
    }
}

/// A message event survives re-encoding.
fn check_reencode(event: &Event) {
    if !event.is_message() || event.data().contains('\n') {
        return;
    }
    let raw = Event::encode_message(event.data().as_bytes(), event.id.as_deref());
    let again = decode(usize::MAX, &raw, || raw.len());
    assert_eq!(again.events.len(), 1, "re-encoded event");
    let e = &again.events[0];
    assert_eq!((e.event.as_deref(), &e.id, e.data()), (Some("message"), &event.id, event.data()));
    assert_eq!(e.raw, raw);
}

/// Input: byte 0 picks the limit, byte 1 seeds the chunk sizes, the rest is the stream.
///
/// Invariants: see [`check_bytes`], [`check_same`], [`check_reference`] and
/// [`check_reencode`], for the stream fed whole, byte by byte, and in pseudo-random chunks.
pub fn sse(data: &[u8]) {
    let [l, seed, input @ ..] = data else { return };
    let limit = if *l == 255 { 1 << 20 } else { 1 + usize::from(*l) * 3 };
    let whole = decode(limit, input, || input.len());
    let bytewise = decode(limit, input, || 1);
    let mut state = u32::from(*seed) | 0x100;
    let chunked = decode(limit, input, || {
        // xorshift32: chunk sizes 1..=32, the same for the same seed.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 32) as usize + 1
    });
    for pass in [&whole, &bytewise, &chunked] {
        check_bytes(input, limit, pass);
    }
    check_reference(input, &whole);
    check_same(&whole, &bytewise);
    check_same(&whole, &chunked);
    whole.events.iter().for_each(check_reencode);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference model itself, on the decoder's own test stream.
    #[test]
    fn the_reference_reads_every_line_ending() {
        let text = b"data: a\r\ndata: b\r\rdata:c\n\n: keepalive\n\nid: 1\nretry: 500\ndata: \n\n\xEF\xBB\xBFdata: x";
        let events = reference(text);
        let data: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(data, ["a\nb", "c", "", ""]);
        assert_eq!((events[3].1.as_deref(), events[3].3), (Some("1"), Some(500)));
        let whole = decode(1 << 20, text, || text.len());
        check_reference(text, &whole);
        assert_eq!(whole.leftover, b"\xEF\xBB\xBFdata: x".len());
    }
}
