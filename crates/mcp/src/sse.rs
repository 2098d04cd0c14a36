//! Incremental Server-Sent Events framing (WHATWG HTML §9.2), keeping each event's exact bytes.
//!
//! The relay inspects events (to see which requests have been answered, or to rewrite a
//! list) but forwards the original bytes whenever nothing in them has to change.

use bytes::{Bytes, BytesMut};

/// One complete event: the bytes it arrived as and its parsed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Exactly the bytes of the event, including the blank line that ended it.
    pub raw: Bytes,
    pub event: Option<String>,
    pub id: Option<String>,
    /// The `data` lines joined with `\n`; empty for comment-only and priming events.
    pub data: String,
    pub retry: Option<u64>,
}

impl Event {
    /// Whether this event carries a JSON-RPC message (a `message` event with data).
    pub fn is_message(&self) -> bool {
        !self.data.is_empty() && self.event.as_deref().is_none_or(|e| e == "message")
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
    buf: BytesMut,
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

#[derive(Debug, Default)]
struct Fields {
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    retry: Option<u64>,
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            scan: 0,
            line_start: 0,
            pending_cr: false,
            limit,
            first: true,
            fields: Fields::default(),
        }
    }

    /// Adds bytes from the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes buffered that do not yet form a complete event.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, if one is buffered.
    pub fn next_event(&mut self) -> Result<Option<Event>, TooLarge> {
        loop {
            if self.pending_cr && self.scan < self.buf.len() {
                self.pending_cr = false;
                if self.buf[self.scan] == b'\n' {
                    self.scan += 1;
                    self.line_start = self.scan;
                }
            }
            let Some(rel) = self.buf[self.scan..].iter().position(|b| *b == b'\n' || *b == b'\r') else {
                self.scan = self.buf.len();
                if self.buf.len() > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                return Ok(None);
            };
            let end = self.scan + rel;
            let terminator = self.buf[end];
            let mut next = end + 1;
            if terminator == b'\r' {
                if next < self.buf.len() {
                    if self.buf[next] == b'\n' {
                        next += 1;
                    }
                } else {
                    self.pending_cr = true;
                }
            }
            let line = self.buf[self.line_start..end].to_vec();
            self.scan = next;
            self.line_start = next;
            if line.is_empty() {
                let raw = self.buf.split_to(next).freeze();
                self.scan = 0;
                self.line_start = 0;
                let fields = std::mem::take(&mut self.fields);
                if raw.len() > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                let empty = fields.data.is_none() && fields.id.is_none() && fields.retry.is_none();
                if empty && fields.event.is_none() && is_blank(&raw) {
                    // Stray blank lines between events: forward nothing for them. (Comment-only
                    // events, the usual keep-alives, are forwarded so idle streams stay open.)
                    continue;
                }
                return Ok(Some(Event {
                    raw,
                    event: fields.event,
                    id: fields.id,
                    data: fields.data.unwrap_or_default(),
                    retry: fields.retry,
                }));
            }
            self.field(&line);
            if end > self.limit {
                return Err(TooLarge { limit: self.limit });
            }
        }
    }

    fn field(&mut self, mut line: &[u8]) {
        if self.first {
            self.first = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => self.fields.event = Some(value.into_owned()),
            b"data" => match &mut self.fields.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(&value);
                }
                None => self.fields.data = Some(value.into_owned()),
            },
            b"id" if !value.contains('\0') => self.fields.id = Some(value.into_owned()),
            b"retry" => self.fields.retry = value.parse().ok(),
            _ => {}
        }
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
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(&evs[0].raw[..], b"event: message\nid: 7\ndata: {\"a\":1}\n\n");
        assert!(evs[0].is_message());
    }

    #[test]
    fn handles_every_line_ending_and_split_points() {
        let text = b"data: a\r\ndata: b\r\rdata:c\n\n: keepalive\n\nid: 1\nretry: 500\ndata: \n\n";
        for split in 0..text.len() {
            let evs = all(&[&text[..split], &text[split..]]);
            assert_eq!(evs.len(), 4, "split at {split}");
            assert_eq!(evs[0].data, "a\nb");
            assert_eq!(evs[1].data, "c");
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
        assert_eq!(evs[0].data, "x");
        assert_eq!(evs[0].event.as_deref(), Some(""));
        assert!(!evs[0].is_message());
    }

    #[test]
    fn encodes_messages() {
        let raw = Event::encode_message(br#"{"x":1}"#, Some("5"));
        let evs = all(&[&raw]);
        assert_eq!(evs[0].data, r#"{"x":1}"#);
        assert_eq!(evs[0].id.as_deref(), Some("5"));
    }
}
