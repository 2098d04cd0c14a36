//! Incremental Server-Sent Events framing (WHATWG HTML §9.2), keeping each event's exact bytes.
//!
//! The relay inspects events (to see which requests have been answered, or to rewrite a
//! list) but forwards the original bytes whenever nothing in them has to change.
//!
//! Memory: an upstream may send events up to the limit (32 MiB by default), so an event is
//! held once. Lines are not copied: the decoder notes where the current event's fields are
//! and builds the event when its blank line arrives, as slices of the buffer. The buffer's
//! capacity grows by half again at a time and never past the limit plus the chunk being fed
//! (no doubling), and an event is refused as soon as the part of it buffered exceeds the
//! limit. What is still copied, each at most the event's size: `event` and `id` values (short
//! in practice); the `data` of an event with several `data:` lines (joined with `\n` into one
//! string, so such an event can take up to twice its size while it is read); and `data` that
//! is not UTF-8, which is replaced lossily (U+FFFD) as the standard says, so that a relay
//! still sees the rest of the event and forwards its raw bytes unchanged.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// One complete event: the bytes it arrived as and its parsed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Exactly the bytes of the event, including the blank line that ended it.
    pub raw: Bytes,
    pub event: Option<String>,
    pub id: Option<String>,
    data: Data,
    pub retry: Option<u64>,
}

/// Where an event's `data` is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    /// One `data:` line (or none: an empty range): its value in `raw`, checked to be UTF-8.
    InRaw(Range<usize>),
    /// Several `data:` lines joined, or a value that was not UTF-8.
    Copied(String),
}

impl Event {
    /// The `data` lines joined with `\n`; empty for comment-only and priming events.
    pub fn data(&self) -> &str {
        match &self.data {
            // Checked when the event was built, so this never falls back.
            Data::InRaw(range) => std::str::from_utf8(&self.raw[range.clone()]).unwrap_or_default(),
            Data::Copied(text) => text,
        }
    }

    fn has_data(&self) -> bool {
        match &self.data {
            Data::InRaw(range) => !range.is_empty(),
            Data::Copied(text) => !text.is_empty(),
        }
    }

    /// Whether this event carries a JSON-RPC message (a `message` event with data).
    pub fn is_message(&self) -> bool {
        self.has_data() && self.event.as_deref().is_none_or(|e| e == "message")
    }

    /// Encodes a new `message` event carrying `data` (which must not contain newlines;
    /// serialised JSON never does).
    pub fn encode_message(data: &[u8], id: Option<&str>) -> Bytes {
        let mut out = BytesMut::with_capacity(data.len() + 32);
        out.extend_from_slice(b"event: message\n");
        if let Some(id) = id {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\n\n");
        out.freeze()
    }
}

/// An event was larger than the configured limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server-sent event larger than {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

/// Splits a byte stream into events. Feed chunks as they arrive; take events as they complete.
#[derive(Debug)]
pub struct Decoder {
    buf: Buffer,
    /// Where scanning for the next line ending resumes within `buf`.
    scan: usize,
    /// Start of the current (unfinished) line within `buf`.
    line_start: usize,
    /// A `\r` ended the previous chunk; a `\n` at the start of the next one belongs to it.
    pending_cr: bool,
    limit: usize,
    first: bool,
    fields: Fields,
}

/// The fields of the event being read, as positions in the buffer (which starts where the
/// event does); the event is built from them when it ends.
#[derive(Debug, Default)]
struct Fields {
    event: Option<Range<usize>>,
    id: Option<Range<usize>>,
    /// The value of the first `data:` line; later ones are found again when the event ends.
    data: Option<Range<usize>>,
    data_lines: usize,
    retry: Option<u64>,
}

/// The bytes of the unfinished event, and whatever came after it in the last chunk.
#[derive(Debug)]
enum Buffer {
    /// Being appended to.
    Filling(Vec<u8>),
    /// An event ended in it: frozen, so that events are slices of it, not copies. The next
    /// `feed` moves what is left (the start of the next event, all from the last chunk) into
    /// a new `Filling` buffer.
    Frozen(Bytes),
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            buf: Buffer::Filling(Vec::new()),
            scan: 0,
            line_start: 0,
            pending_cr: false,
            limit,
            first: true,
            fields: Fields::default(),
        }
    }

    /// Adds bytes from the stream. Take every complete event (`next_event` until `None`)
    /// before feeding more: that is what keeps the buffer within the limit plus one chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.append(chunk, self.limit);
    }

    /// Bytes buffered that do not yet form a complete event.
    pub fn buffered(&self) -> usize {
        self.buf.bytes().len()
    }

    /// The next complete event, if one is buffered.
    pub fn next_event(&mut self) -> Result<Option<Event>, TooLarge> {
        loop {
            let buf = self.buf.bytes();
            if self.pending_cr && self.scan < buf.len() {
                self.pending_cr = false;
                if buf[self.scan] == b'\n' {
                    self.scan += 1;
                    self.line_start = self.scan;
                }
            }
            let Some(rel) = buf[self.scan..].iter().position(|b| *b == b'\n' || *b == b'\r') else {
                self.scan = buf.len();
                // The buffer starts where the unfinished event does: refuse it as soon as
                // it is too large, not when (if ever) it ends.
                if buf.len() > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                return Ok(None);
            };
            let end = self.scan + rel;
            let mut next = end + 1;
            if buf[end] == b'\r' {
                if next < buf.len() {
                    if buf[next] == b'\n' {
                        next += 1;
                    }
                } else {
                    self.pending_cr = true;
                }
            }
            let line_start = self.line_start;
            self.scan = next;
            self.line_start = next;
            if line_start == end {
                let raw = self.buf.split_to(next);
                self.scan = 0;
                self.line_start = 0;
                let fields = std::mem::take(&mut self.fields);
                if raw.len() > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                if fields.is_empty() && is_blank(&raw) {
                    // Stray blank lines between events: forward nothing for them. (Comment-only
                    // events, the usual keep-alives, are forwarded so idle streams stay open.)
                    continue;
                }
                return Ok(Some(fields.build(raw)));
            }
            self.field(line_start, end);
            if end > self.limit {
                return Err(TooLarge { limit: self.limit });
            }
        }
    }

    /// Notes the field on the line `start..end` of the buffer.
    fn field(&mut self, mut start: usize, end: usize) {
        let buf = self.buf.bytes();
        if self.first {
            self.first = false;
            if buf[start..end].starts_with(b"\xEF\xBB\xBF") {
                start += 3;
            }
        }
        let Some((name, at)) = split_field(&buf[start..end]) else { return };
        let value = start + at..end;
        match name {
            b"event" => self.fields.event = Some(value),
            b"data" => {
                if self.fields.data_lines == 0 {
                    self.fields.data = Some(value);
                }
                self.fields.data_lines += 1;
            }
            b"id" if !buf[value.clone()].contains(&0) => self.fields.id = Some(value),
            // Not a number (not UTF-8 included): no retry, as a bad value always meant.
            b"retry" => self.fields.retry = std::str::from_utf8(&buf[value]).ok().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
}

impl Fields {
    fn is_empty(&self) -> bool {
        self.data_lines == 0 && self.id.is_none() && self.retry.is_none() && self.event.is_none()
    }

    /// The event whose bytes are `raw`; the positions are within it.
    fn build(self, raw: Bytes) -> Event {
        let text = |range: Option<Range<usize>>| range.map(|r| String::from_utf8_lossy(&raw[r]).into_owned());
        let (event, id) = (text(self.event), text(self.id));
        let data = match self.data {
            None => Data::InRaw(0..0),
            Some(first) if self.data_lines == 1 && std::str::from_utf8(&raw[first.clone()]).is_ok() => {
                Data::InRaw(first)
            }
            Some(first) => Data::Copied(join_data(&raw, first)),
        };
        Event { raw, event, id, data, retry: self.retry }
    }
}

/// The values of every `data:` line of the event `raw`, the first of which is at `first`,
/// joined with `\n` into one string of exactly their size.
fn join_data(raw: &[u8], first: Range<usize>) -> String {
    let rest = &raw[first.end..];
    let mut len = first.len();
    data_values(rest, |v| len += 1 + v.len());
    let mut joined = Vec::with_capacity(len);
    joined.extend_from_slice(&raw[first]);
    data_values(rest, |v| {
        joined.push(b'\n');
        joined.extend_from_slice(v);
    });
    // Lines are joined before the lossy check: a `\n` never continues a UTF-8 sequence,
    // so this replaces exactly what checking each line would.
    String::from_utf8(joined).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Calls `f` with the value of every `data:` line in `bytes` (whole lines of one event).
fn data_values(mut bytes: &[u8], mut f: impl FnMut(&[u8])) {
    while let Some(i) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
        if let Some((b"data", at)) = split_field(&bytes[..i]) {
            f(&bytes[at..i]);
        }
        let crlf = bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n');
        bytes = &bytes[i + 1 + usize::from(crlf)..];
    }
}

/// A line's field name and where its value starts (after `:` and one space); `None` for a
/// comment or an empty line.
fn split_field(line: &[u8]) -> Option<(&[u8], usize)> {
    if line.is_empty() || line[0] == b':' {
        return None;
    }
    Some(match line.iter().position(|b| *b == b':') {
        Some(i) => (&line[..i], if line.get(i + 1) == Some(&b' ') { i + 2 } else { i + 1 }),
        None => (line, line.len()),
    })
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Filling(v) => v,
            Buffer::Frozen(b) => b,
        }
    }

    /// Appends `chunk`. Capacity grows by half again at a time, capped at the limit plus
    /// this chunk: a buffer holds at most one event (refused past the limit) and the chunk
    /// that completes it.
    fn append(&mut self, chunk: &[u8], limit: usize) {
        let mut v = match std::mem::replace(self, Buffer::Filling(Vec::new())) {
            Buffer::Filling(v) => v,
            Buffer::Frozen(rest) => {
                let mut v = Vec::with_capacity(rest.len() + chunk.len());
                v.extend_from_slice(&rest);
                v
            }
        };
        crate::grow::reserve(&mut v, chunk.len(), limit.saturating_add(chunk.len()));
        v.extend_from_slice(chunk);
        *self = Buffer::Filling(v);
    }

    /// Takes the first `at` bytes, without copying them.
    fn split_to(&mut self, at: usize) -> Bytes {
        let mut frozen = match std::mem::replace(self, Buffer::Frozen(Bytes::new())) {
            Buffer::Filling(v) => Bytes::from(v),
            Buffer::Frozen(b) => b,
        };
        let head = frozen.split_to(at);
        *self = Buffer::Frozen(frozen);
        head
    }
}

fn is_blank(raw: &[u8]) -> bool {
    raw.iter().all(|b| *b == b'\n' || *b == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<Event> {
        let mut d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for chunk in input {
            d.feed(chunk);
            while let Some(ev) = d.next_event().unwrap() {
                out.push(ev);
            }
        }
        out
    }

    #[test]
    fn parses_fields_and_keeps_raw_bytes() {
        let evs = all(&[b"event: message\nid: 7\ndata: {\"a\":1}\n\n"]);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event.as_deref(), Some("message"));
        assert_eq!(evs[0].id.as_deref(), Some("7"));
        assert_eq!(evs[0].data(), "{\"a\":1}");
        assert_eq!(&evs[0].raw[..], b"event: message\nid: 7\ndata: {\"a\":1}\n\n");
        assert!(evs[0].is_message());
    }

    #[test]
    fn handles_every_line_ending_and_split_points() {
        let text = b"data: a\r\ndata: b\r\rdata:c\n\n: keepalive\n\nid: 1\nretry: 500\ndata: \n\n";
        for split in 0..text.len() {
            let evs = all(&[&text[..split], &text[split..]]);
            assert_eq!(evs.len(), 4, "split at {split}");
            assert_eq!(evs[0].data(), "a\nb");
            assert_eq!(evs[1].data(), "c");
            assert!(!evs[2].is_message(), "comment event");
            assert_eq!(evs[3].id.as_deref(), Some("1"));
            assert_eq!(evs[3].retry, Some(500));
            assert!(!evs[3].is_message(), "priming event has no data");
            let joined: Vec<u8> = evs.iter().flat_map(|e| e.raw.to_vec()).collect();
            assert_eq!(joined, text.to_vec(), "split at {split}");
        }
    }

    #[test]
    fn enforces_the_size_limit() {
        let mut d = Decoder::new(16);
        d.feed(b"data: 0123456789abcdef");
        assert_eq!(d.next_event(), Err(TooLarge { limit: 16 }));
        let mut d = Decoder::new(16);
        d.feed(b"data: 01234\ndata: 56789\ndata: abcdef\n");
        assert_eq!(d.next_event(), Err(TooLarge { limit: 16 }));
    }

    #[test]
    fn strips_bom_and_ignores_unknown_fields() {
        let evs = all(&[b"\xEF\xBB\xBFdata: x\nfoo: bar\nevent\n\n"]);
        assert_eq!(evs[0].data(), "x");
        assert_eq!(evs[0].event.as_deref(), Some(""));
        assert!(!evs[0].is_message());
    }

    #[test]
    fn encodes_messages() {
        let raw = Event::encode_message(br#"{"x":1}"#, Some("5"));
        let evs = all(&[&raw]);
        assert_eq!(evs[0].data(), r#"{"x":1}"#);
        assert_eq!(evs[0].id.as_deref(), Some("5"));
    }

    #[test]
    fn one_data_line_is_a_slice_of_the_raw_bytes() {
        let evs = all(&[b"id: 3\ndata: {\"a\":1}\n\n"]);
        let (raw, data) = (evs[0].raw.as_ptr_range(), evs[0].data().as_bytes().as_ptr_range());
        assert!(raw.start <= data.start && data.end <= raw.end, "data is not copied");
    }

    #[test]
    fn joins_data_lines_split_anywhere() {
        let text = b"\xEF\xBB\xBFdata: a\r\n: note\r\ndata\rdata:  b\r\nid: 1\ndata:c\r\n\r\n";
        for split in 0..text.len() {
            let evs = all(&[&text[..split], &text[split..]]);
            assert_eq!(evs.len(), 1, "split at {split}");
            assert_eq!(evs[0].data(), "a\n\n b\nc", "split at {split}");
            // Split inside the final CRLF, the event ends at its `\r`; the `\n` stays buffered.
            let whole = if split == text.len() - 1 { &text[..split] } else { &text[..] };
            assert_eq!(&evs[0].raw[..], whole, "split at {split}");
        }
    }

    #[test]
    fn data_that_is_not_utf8_is_replaced_and_raw_kept() {
        let text = b"data: a\xFFb\n\ndata: \xE2\x82\ndata: c\n\n";
        let evs = all(&[text]);
        assert_eq!(evs[0].data(), "a\u{FFFD}b");
        assert_eq!(evs[1].data(), "\u{FFFD}\nc");
        let joined: Vec<u8> = evs.iter().flat_map(|e| e.raw.to_vec()).collect();
        assert_eq!(joined, text.to_vec());
    }

    #[test]
    fn ids_with_nul_and_bad_retries_are_ignored() {
        let evs = all(&[b"id: 1\nid: a\0b\nretry: 7\nretry: x\ndata: d\n\n"]);
        assert_eq!(evs[0].id.as_deref(), Some("1"));
        assert_eq!(evs[0].retry, None);
    }

    #[test]
    fn the_buffer_grows_to_at_most_the_limit_and_one_chunk() {
        let limit = 100_000;
        let mut d = Decoder::new(limit);
        d.feed(b"data: ");
        let chunk = [b'x'; 1000];
        let mut refused = false;
        for _ in 0..200 {
            d.feed(&chunk);
            let Buffer::Filling(v) = &d.buf else { panic!("no event ended") };
            assert!(v.capacity() <= limit + chunk.len(), "capacity {}", v.capacity());
            if d.next_event().is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
        assert!(d.buffered() <= limit + chunk.len());
    }

    #[test]
    fn many_events_in_one_chunk_and_a_rest() {
        let mut d = Decoder::new(1 << 20);
        d.feed(b"data: 1\n\ndata: 2\n\ndata: 3");
        assert_eq!(d.next_event().unwrap().unwrap().data(), "1");
        assert_eq!(d.next_event().unwrap().unwrap().data(), "2");
        assert_eq!(d.next_event().unwrap(), None);
        d.feed(b"4\n\n");
        let ev = d.next_event().unwrap().unwrap();
        assert_eq!((ev.data(), &ev.raw[..]), ("34", &b"data: 34\n\n"[..]));
        assert_eq!(d.buffered(), 0);
    }
}
