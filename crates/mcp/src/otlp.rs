//! OTLP export plumbing shared by traces and access-log records: a bounded queue, batches, and
//! one `Export` call per batch over gRPC (HTTP/2) or HTTP/protobuf, to an `http://` or
//! `https://` collector. When the collector is slow or down, items are dropped (one warning per
//! outage), never waited for.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::body::{self, Body};
use crate::trace::Protocol;

/// Items waiting for export; more are dropped.
const QUEUE: usize = 8192;
/// Items per export request.
const BATCH: usize = 512;
/// How long an item may wait for its batch.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What is exported: its name in messages and its collector paths.
pub(crate) struct Signal {
    pub(crate) name: &'static str,
    pub(crate) grpc_path: &'static str,
    pub(crate) http_path: &'static str,
}

enum Msg<T> {
    Item(T),
    /// Export what is queued now, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Hands items to an exporter task. Cheap to clone.
pub struct Exporter<T> {
    tx: mpsc::Sender<Msg<T>>,
    name: &'static str,
}

impl<T> Clone for Exporter<T> {
    fn clone(&self) -> Self {
        Exporter { tx: self.tx.clone(), name: self.name }
    }
}

impl<T: Send + 'static> Exporter<T> {
    /// Starts the exporter task (on the current runtime). `http_path` replaces the signal's
    /// path with `Protocol::Http`. The task ends (after a last export) when every handle is
    /// dropped.
    pub(crate) fn start(
        endpoint: &str,
        (protocol, http_path): (Protocol, Option<&str>),
        headers: HeaderMap,
        signal: Signal,
        encode: fn(Vec<T>) -> Bytes,
    ) -> Result<(Exporter<T>, tokio::task::JoinHandle<()>), String> {
        let base: Uri = endpoint.parse().map_err(|e| format!("not a URL: {e}"))?;
        let scheme = match base.scheme_str() {
            Some(s @ ("http" | "https")) => s,
            _ => return Err("must be an http:// or https:// URL with a host".into()),
        };
        if base.authority().is_none() {
            return Err("must be an http:// or https:// URL with a host".into());
        }
        let prefix = base.path().trim_end_matches('/');
        let (prefix, path) = match (protocol, http_path) {
            (Protocol::Grpc, _) => (prefix, signal.grpc_path),
            (Protocol::Http, Some(p)) => ("", p),
            (Protocol::Http, None) => (prefix, signal.http_path),
        };
        let url: Uri = format!("{scheme}://{}{prefix}{path}", base.authority().map(|a| a.as_str()).unwrap_or_default())
            .parse()
            .map_err(|e| format!("not a URL: {e}"))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(export_loop(rx, Export { url, protocol, headers, name: signal.name }, encode));
        Ok((Exporter { tx, name: signal.name }, task))
    }

    /// Queues an item; dropped if the queue is full.
    pub fn record(&self, item: T) {
        if self.tx.try_send(Msg::Item(item)).is_err() {
            debug!(signal = self.name, "OTLP queue full; dropped");
        }
    }

    /// Exports everything queued so far (shutdown), waiting at most `limit`.
    pub async fn flush(&self, limit: Duration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Bounded as a whole: a full queue in front of a stuck collector must not hold shutdown.
        let _ = tokio::time::timeout(limit, async {
            if self.tx.send(Msg::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        })
        .await;
    }
}

/// Where and how batches go.
struct Export {
    url: Uri,
    protocol: Protocol,
    /// Sent with every export (collector credentials: never logged).
    headers: HeaderMap,
    name: &'static str,
}

async fn export_loop<T>(mut rx: mpsc::Receiver<Msg<T>>, export: Export, encode: fn(Vec<T>) -> Bytes) {
    let client = export_client(export.protocol);
    // The collector's address carries no query, but may carry userinfo.
    let shown = agw_config::redact::url(&export.url.to_string());
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing = false;
    let mut flushed = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        match first {
            Msg::Item(s) => batch.push(s),
            Msg::Flush(done) => flushed.push(done),
        }
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH && flushed.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Msg::Item(s))) => batch.push(s),
                Ok(Some(Msg::Flush(done))) => flushed.push(done),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len();
            let body = encode(std::mem::take(&mut batch));
            match send(&client, &export, body).await {
                Ok(()) => {
                    if failing {
                        warn!(url = %shown, signal = export.name, "OTLP export works again");
                    }
                    failing = false;
                }
                Err(e) => {
                    // Once per outage, not once per batch.
                    if !failing {
                        warn!(url = %shown, signal = export.name, error = %e, items = n, "OTLP export failed; dropping until it works");
                    }
                    failing = true;
                }
            }
        }
        flushed.drain(..).for_each(|d| {
            let _ = d.send(());
        });
    }
}

type ExportClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Body,
>;

fn export_client(protocol: Protocol) -> ExportClient {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(EXPORT_TIMEOUT));
    let tls = crate::upstream::system_roots("an https:// collector").https_or_http();
    let mut builder = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    // gRPC is HTTP/2 only: ALPN `h2` over TLS, prior knowledge in clear text.
    let connector = match protocol {
        Protocol::Grpc => {
            builder.http2_only(true);
            tls.enable_http2().wrap_connector(http)
        }
        Protocol::Http => tls.enable_http1().wrap_connector(http),
    };
    builder.build(connector)
}

async fn send(client: &ExportClient, export: &Export, message: Bytes) -> Result<(), String> {
    let Export { url, protocol, headers, .. } = export;
    let protocol = *protocol;
    let (body, content_type) = match protocol {
        Protocol::Grpc => {
            // gRPC framing: not compressed, 4-byte big-endian length, message.
            let mut framed = BytesMut::with_capacity(5 + message.len());
            framed.put_u8(0);
            framed.put_u32(u32::try_from(message.len()).map_err(|_| "batch too large")?);
            framed.put_slice(&message);
            (framed.freeze(), "application/grpc")
        }
        Protocol::Http => (message, "application/x-protobuf"),
    };
    let mut req = Request::new(body::full(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = url.clone();
    req.headers_mut().extend(headers.clone());
    req.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if protocol == Protocol::Grpc {
        req.headers_mut().insert("te", HeaderValue::from_static("trailers"));
    }
    let resp = tokio::time::timeout(EXPORT_TIMEOUT, client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| crate::upstream::error_chain(&e))?;
    let status = resp.status();
    let header_status = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_string);
    let collected = tokio::time::timeout(EXPORT_TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("collector answered {status}"));
    }
    if protocol == Protocol::Grpc {
        let trailer = collected.trailers().and_then(|t| t.get("grpc-status")).and_then(|v| v.to_str().ok());
        match trailer.map(str::to_string).or(header_status).as_deref() {
            Some("0") => {}
            Some(code) => return Err(format!("gRPC status {code}")),
            None => return Err("no gRPC status".into()),
        }
    }
    Ok(())
}

/// One access-log line as an OTLP log record.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub time: std::time::SystemTime,
    /// The line's message (`request`).
    pub body: String,
    pub attributes: Vec<(String, crate::trace::Attr)>,
    /// The request's trace, when it was traced.
    pub trace: Option<crate::trace::SpanContext>,
}

/// Exports access-log records over OTLP. Cheap to clone.
#[derive(Clone)]
pub struct LogExporter(Exporter<LogRecord>);

impl std::fmt::Debug for LogExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogExporter")
    }
}

impl LogExporter {
    /// Starts the exporter for `endpoint` (as [`crate::trace::Tracer::start`]; the HTTP path
    /// defaults to `/v1/logs`).
    pub fn start(
        endpoint: &str,
        protocol: Protocol,
        http_path: Option<&str>,
    ) -> Result<(LogExporter, tokio::task::JoinHandle<()>), String> {
        let signal = Signal {
            name: "logs",
            grpc_path: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            http_path: "/v1/logs",
        };
        let (exporter, task) = Exporter::start(endpoint, (protocol, http_path), HeaderMap::new(), signal, encode_logs)?;
        Ok((LogExporter(exporter), task))
    }

    pub fn record(&self, record: LogRecord) {
        self.0.record(record);
    }

    pub async fn flush(&self, limit: Duration) {
        self.0.flush(limit).await;
    }
}

fn encode_logs(records: Vec<LogRecord>) -> Bytes {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as Proto, ResourceLogs, ScopeLogs, SeverityNumber};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    use crate::trace::{Attr, kv, nanos};
    let log_records = records
        .into_iter()
        .map(|r| Proto {
            time_unix_nano: nanos(r.time),
            observed_time_unix_nano: nanos(r.time),
            severity_number: SeverityNumber::Info as i32,
            severity_text: "INFO".into(),
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(r.body)) }),
            attributes: r
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
            trace_id: r.trace.map(|t| t.trace_id.to_vec()).unwrap_or_default(),
            span_id: r.trace.map(|t| t.span_id.to_vec()).unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", any_value::Value::StringValue("agentgateway".into())),
                    kv("service.version", any_value::Value::StringValue(env!("CARGO_PKG_VERSION").into())),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope { name: "access".into(), ..Default::default() }),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(request.encode_to_vec())
}
