//! A local OTLP trace receiver (gRPC or HTTP/protobuf) that decodes what it gets with the
//! OpenTelemetry project's own protobuf types, for trace tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use agw_mcp::body;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::serve::{self, Server};

/// What one export request carried, with where it came.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: String,
    pub headers: http::HeaderMap,
    pub request: ExportTraceServiceRequest,
}

pub struct Receiver {
    pub server: Server,
    got: Arc<Mutex<Vec<Received>>>,
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
}

impl Receiver {
    /// Accepts both OTLP/gRPC (HTTP/2, framed) and OTLP/HTTP (protobuf) on one port.
    pub async fn start() -> std::io::Result<Receiver> {
        let got = Arc::new(Mutex::new(Vec::new()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let log_sink = logs.clone();
        let server = serve::app("127.0.0.1:0".parse::<SocketAddr>().expect("address"), move |req| {
            let sink = sink.clone();
            let log_sink = log_sink.clone();
            async move {
                let path = req.uri().path().to_string();
                let headers = req.headers().clone();
                let content_type =
                    req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let bytes = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                let grpc = content_type.starts_with("application/grpc");
                // gRPC: 1 byte "compressed", 4 bytes length, then the message.
                let message = if grpc && bytes.len() >= 5 { bytes.slice(5..) } else { bytes };
                let ok = if path.contains("logs") {
                    let decoded = ExportLogsServiceRequest::decode(message);
                    let ok = decoded.is_ok();
                    if let Ok(request) = decoded {
                        log_sink.lock().expect("lock").push(request);
                    }
                    ok
                } else {
                    let decoded = ExportTraceServiceRequest::decode(message);
                    let ok = decoded.is_ok();
                    if let Ok(request) = decoded {
                        let content_type = content_type.clone();
                        sink.lock().expect("lock").push(Received { path, content_type, headers, request });
                    }
                    ok
                };
                let mut r = Response::new(body::empty());
                if grpc {
                    // A trailers-only answer: the status travels in the headers.
                    r.headers_mut().insert("content-type", "application/grpc".parse().expect("header"));
                    r.headers_mut().insert("grpc-status", if ok { "0" } else { "3" }.parse().expect("header"));
                } else if !ok {
                    *r.status_mut() = StatusCode::BAD_REQUEST;
                }
                r
            }
        })
        .await?;
        Ok(Receiver { server, got, logs })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.logs
            .lock()
            .expect("lock")
            .clone()
            .into_iter()
            .flat_map(|r| r.resource_logs)
            .flat_map(|rl| rl.scope_logs)
            .flat_map(|sl| sl.log_records)
            .collect()
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.received()
            .into_iter()
            .flat_map(|r| r.request.resource_spans)
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .collect()
    }
}

/// A string or integer attribute of a span, as text.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    attr_of(&span.attributes, key)
}

/// An attribute of a log record, as text.
pub fn log_attr(record: &LogRecord, key: &str) -> Option<String> {
    attr_of(&record.attributes, key)
}

fn attr_of(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> Option<String> {
    let v = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(n) => n.to_string(),
        other => format!("{other:?}"),
    })
}

/// Lower-case hex of an id.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
