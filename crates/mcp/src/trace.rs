//! OpenTelemetry traces: one span per client request (kind server) and one child span per
//! upstream call (kind client), exported over OTLP (gRPC or HTTP/protobuf) in batches.
//!
//! The trace context is W3C `traceparent`: a client's is continued, and each upstream request
//! carries the gateway's child span. Spans go to the exporter through a bounded queue; when
//! the collector is slow or down, spans are dropped (counted in the log), never waited for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use bytes::Bytes;
use http::HeaderMap;
use http::header::HeaderValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use prost::Message;

use crate::otlp::{Exporter, Signal};

pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Where a span sits in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    while b.iter().all(|x| *x == 0) {
        OsRng.fill_bytes(&mut b);
    }
    b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    (!out.iter().all(|b| *b == 0)).then_some(out)
}

impl SpanContext {
    /// A span continuing the client's trace (its `traceparent`), or starting a new one.
    /// Returns the new span's context and its parent span id, if any. (Tests; requests go
    /// through the telemetry policy's sampling.)
    #[cfg(test)]
    pub fn server(headers: &HeaderMap) -> (SpanContext, Option<[u8; 8]>) {
        SpanContext::server_under(SpanContext::client(headers).map(|(p, _)| p))
    }

    /// The client's span (a valid `traceparent`) and whether it is sampled (flag `01`).
    pub fn client(headers: &HeaderMap) -> Option<(SpanContext, bool)> {
        let v = headers.get(TRACEPARENT)?.to_str().ok()?;
        let ctx = parse_traceparent(v)?;
        let flags = v.trim().split('-').nth(3).and_then(|f| u8::from_str_radix(f, 16).ok()).unwrap_or(0);
        Some((ctx, flags & 1 == 1))
    }

    /// A server span under `parent` (the client's), or starting a new trace.
    pub fn server_under(parent: Option<SpanContext>) -> (SpanContext, Option<[u8; 8]>) {
        match parent {
            Some(p) => (SpanContext { trace_id: p.trace_id, span_id: random() }, Some(p.span_id)),
            None => (SpanContext { trace_id: random(), span_id: random() }, None),
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> SpanContext {
        SpanContext { trace_id: self.trace_id, span_id: random() }
    }

    /// `traceparent` naming this span (sampled).
    pub fn traceparent(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id)))
            .expect("hex is a valid header value")
    }
}

/// W3C trace context, version 00 (and later versions read the same way, per the spec).
fn parse_traceparent(v: &str) -> Option<SpanContext> {
    let mut parts = v.trim().split('-');
    let version = parts.next()?;
    if version.len() != 2 || version == "ff" {
        return None;
    }
    let trace_id = unhex::<16>(parts.next()?)?;
    let span_id = unhex::<8>(parts.next()?)?;
    let flags = parts.next()?;
    if flags.len() != 2 || (version == "00" && parts.next().is_some()) {
        return None;
    }
    Some(SpanContext { trace_id, span_id })
}

/// Server (a client's request) or client (a call upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
}

/// A finished span.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub name: String,
    pub kind: Kind,
    pub context: SpanContext,
    pub parent: Option<[u8; 8]>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(std::borrow::Cow<'static, str>, Attr)>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Attr {
    Str(String),
    Int(i64),
}

impl From<&str> for Attr {
    fn from(s: &str) -> Attr {
        Attr::Str(s.to_string())
    }
}

impl From<String> for Attr {
    fn from(s: String) -> Attr {
        Attr::Str(s)
    }
}

impl From<i64> for Attr {
    fn from(n: i64) -> Attr {
        Attr::Int(n)
    }
}

/// A uniform number in [0, 1), for sampling ratios.
pub fn random_unit() -> f64 {
    // 53 random bits: every double in [0, 1) with that spacing is equally likely.
    (OsRng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `TraceService/Export` over HTTP/2 (the collector's port 4317).
    #[default]
    Grpc,
    /// `POST /v1/traces` with a protobuf body (port 4318).
    Http,
}

/// Hands spans to the exporter task. Cheap to clone.
#[derive(Clone)]
pub struct Tracer(Exporter<SpanData>);

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer")
    }
}

impl Tracer {
    /// Starts the exporter (on the current runtime) for `endpoint` (`http://` or `https://`,
    /// verified against the system's roots), sending `headers` with every export. Returns the
    /// tracer and the exporter task, which ends (after a last export) when every tracer is
    /// dropped.
    pub fn start(
        endpoint: &str,
        protocol: Protocol,
        http_path: Option<&str>,
        headers: HeaderMap,
    ) -> Result<(Tracer, tokio::task::JoinHandle<()>), String> {
        let signal = Signal {
            name: "trace",
            grpc_path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            http_path: "/v1/traces",
        };
        let (exporter, task) = Exporter::start(endpoint, (protocol, http_path), headers, signal, encode)?;
        Ok((Tracer(exporter), task))
    }

    /// Queues a finished span; dropped if the queue is full.
    pub fn record(&self, span: SpanData) {
        self.0.record(span);
    }

    /// Exports every span queued so far (shutdown), waiting at most `limit`.
    pub async fn flush(&self, limit: Duration) {
        self.0.flush(limit).await;
    }
}

pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn encode(spans: Vec<SpanData>) -> Bytes {
    let spans = spans
        .into_iter()
        .map(|s| Span {
            trace_id: s.context.trace_id.to_vec(),
            span_id: s.context.span_id.to_vec(),
            parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: s.name,
            kind: match s.kind {
                Kind::Server => span::SpanKind::Server as i32,
                Kind::Client => span::SpanKind::Client as i32,
            },
            start_time_unix_nano: nanos(s.start),
            end_time_unix_nano: nanos(s.end),
            attributes: s
                .attributes
                .into_iter()
                .map(|(k, v)| {
                    kv(
                        &k,
                        match v {
                            Attr::Str(s) => any_value::Value::StringValue(s),
                            Attr::Int(n) => any_value::Value::IntValue(n),
                        },
                    )
                })
                .collect(),
            status: Some(match s.error {
                Some(message) => Status { code: status::StatusCode::Error as i32, message },
                None => Status { code: status::StatusCode::Unset as i32, message: String::new() },
            }),
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", any_value::Value::StringValue("agentgateway".into())),
                    kv("service.version", any_value::Value::StringValue(env!("CARGO_PKG_VERSION").into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "agentgateway".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(request.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_strictly_and_continued() {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        let (ctx, parent) = SpanContext::server(&h);
        assert_eq!(hex(&ctx.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(parent.map(|p| hex(&p)), Some("b7ad6b7169203331".to_string()));
        assert_ne!(hex(&ctx.span_id), "b7ad6b7169203331");
        let child = ctx.child();
        assert_eq!(child.trace_id, ctx.trace_id);
        let tp = child.traceparent();
        assert_eq!(parse_traceparent(tp.to_str().unwrap()), Some(child));
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "garbage",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        h.insert(TRACEPARENT, HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"));
        assert_eq!(SpanContext::client(&h).map(|(_, sampled)| sampled), Some(false));
        h.insert(TRACEPARENT, HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"));
        assert_eq!(SpanContext::client(&h).map(|(_, sampled)| sampled), Some(true));
        let (fresh, none) = SpanContext::server(&HeaderMap::new());
        assert!(none.is_none() && fresh.trace_id.iter().any(|b| *b != 0));
    }
}
