//! Telemetry policy end to end: access-log CEL fields, filter and removed fields; trace
//! sampling (random and the client's), CEL span attributes and collector headers, checked on
//! what a local OTLP receiver gets.
//!
//! The gateway runs in this process, so its log is captured by a subscriber writing to a
//! buffer; tests share it and look for markers of their own.

use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use agw_testkit::client::McpClient;
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::otlp::{Receiver, attr, hex};
use agw_testkit::recorder::Recorder;

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> String {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt().with_writer(|| Capture).with_ansi(false).try_init();
    });
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// The access-log line holding `needle`, waiting for it at most 20 s.
async fn access_line(needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = log().lines().find(|l| l.contains("access") && l.contains(needle)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no access line with `{needle}`:\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const QUIET: &str = "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n";

#[tokio::test]
async fn access_log_adds_cel_fields_filters_and_removes() {
    log();
    let upstream = Recorder::start().await.unwrap();
    let yaml = format!(
        "{QUIET}frontendPolicies:
  accessLog:
    filter: \"!request.headers['x-marker'].startsWith('skip')\"
    add:
      marker: request.headers['x-marker']
      code: response.code
      method: mcp.method
      missing: jwt.sub
      token: request.headers['authorization']
    remove: [peer, http.path]
{}",
        mcp_route(&upstream.url(), "")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut skipped = McpClient::new(gw.url("/mcp")).with_header("x-marker", "skip-a1b2");
    skipped.initialize().await.unwrap();
    let mut kept = McpClient::new(gw.url("/mcp"))
        .with_header("x-marker", "keep-c3d4")
        .with_header("authorization", "Bearer planted-telemetry-token");
    kept.initialize().await.unwrap();
    let line = access_line("keep-c3d4").await;
    assert!(
        line.contains(r#"fields="{\"code\":200,\"marker\":\"keep-c3d4\",\"method\":\"initialize\"}""#)
            || line.contains(r#"fields={"code":200,"marker":"keep-c3d4","method":"initialize"}"#),
        "{line}"
    );
    assert!(!line.contains("peer="), "removed: {line}");
    assert!(!log().contains("planted-telemetry-token"), "credentials are not visible to expressions");
    assert!(!line.contains("http.path="), "removed: {line}");
    assert!(line.contains("http.status=200"), "kept: {line}");
    // Lines are written in answer order: the skipped request came first and is not there.
    assert!(!log().contains("skip-a1b2"), "filtered out:\n{}", log());
    gw.stop().await;
}

/// Starts a gateway tracing to a fresh receiver with `tracing` (YAML under `config.tracing`
/// or as `frontendPolicies.tracing` when it starts with `frontend:`), sends one `initialize`
/// with `traceparent` (if any), and returns the server spans received.
async fn server_spans(tracing: &str, traceparent: Option<&str>) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let collector = Receiver::start().await.unwrap();
    let upstream = Recorder::start().await.unwrap();
    let endpoint = collector.endpoint();
    let block = match tracing.strip_prefix("frontend:") {
        Some(rest) => format!(
            "{QUIET}frontendPolicies:\n  tracing:\n    host: {}\n{rest}",
            endpoint.trim_start_matches("http://")
        ),
        None => format!("{QUIET}  tracing:\n    otlpEndpoint: {endpoint}\n{tracing}"),
    };
    let gw = Gateway::start(&format!("{block}{}", mcp_route(&upstream.url(), ""))).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp")).with_header("x-caller", "agent-7");
    if let Some(tp) = traceparent {
        c = c.with_header("traceparent", tp);
    }
    c.initialize().await.unwrap();
    gw.stop().await; // flushes the exporter
    initialize_spans(&collector)
}

/// The server spans of `initialize` requests (a client's `initialize()` also sends
/// `notifications/initialized`, a request of its own).
fn initialize_spans(collector: &Receiver) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    collector
        .spans()
        .into_iter()
        .filter(|s| s.kind == 2 && attr(s, "mcp.method.name").as_deref() == Some("initialize"))
        .collect()
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn random_sampling_decides_for_requests_without_a_trace() {
    assert!(server_spans("", None).await.is_empty(), "randomSampling defaults to false");
    assert!(server_spans("    randomSampling: false\n", None).await.is_empty());
    assert!(server_spans("    randomSampling: 0.0\n", None).await.is_empty());
    assert_eq!(server_spans("    randomSampling: true\n", None).await.len(), 1);
    assert_eq!(server_spans("    randomSampling: 1.0\n", None).await.len(), 1);
    assert_eq!(server_spans("    randomSampling: \"request.headers['x-caller'] == 'agent-7'\"\n", None).await.len(), 1);
    assert!(server_spans("    randomSampling: \"request.headers['x-caller'] == 'other'\"\n", None).await.is_empty());
}

#[tokio::test]
async fn the_clients_sampled_flag_and_client_sampling_decide_for_traced_requests() {
    let sampled = format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-01");
    let unsampled = format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-00");
    let spans = server_spans("", Some(&sampled)).await;
    assert_eq!(spans.len(), 1, "clientSampling defaults to true");
    assert_eq!(hex(&spans[0].trace_id), CLIENT_TRACE);
    assert!(server_spans("    randomSampling: true\n", Some(&unsampled)).await.is_empty(), "the client said no");
    assert!(server_spans("    clientSampling: false\n", Some(&sampled)).await.is_empty());
}

#[tokio::test]
async fn span_fields_are_added_and_removed_and_headers_reach_the_collector() {
    let collector = Receiver::start().await.unwrap();
    let upstream = Recorder::start().await.unwrap();
    let yaml = format!(
        "{QUIET}  tracing:
    otlpEndpoint: {}
    otlpProtocol: http
    randomSampling: true
    headers:
      x-collector-key: planted-collector-key
    fields:
      add:
        caller: request.headers['x-caller']
        status: response.code
      remove: [client.address]
{}",
        collector.endpoint(),
        mcp_route(&upstream.url(), "")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp")).with_header("x-caller", "agent-7");
    c.initialize().await.unwrap();
    gw.stop().await;
    let spans = initialize_spans(&collector);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(attr(&spans[0], "caller").as_deref(), Some("agent-7"));
    assert_eq!(attr(&spans[0], "status").as_deref(), Some("200"));
    assert_eq!(attr(&spans[0], "client.address"), None, "removed");
    assert_eq!(attr(&spans[0], "mcp.method.name").as_deref(), Some("initialize"), "kept");
    let received = collector.received();
    assert_eq!(received[0].headers.get("x-collector-key").and_then(|v| v.to_str().ok()), Some("planted-collector-key"));
}

#[tokio::test]
async fn frontend_tracing_exports_with_its_attributes_and_filter() {
    let spans = server_spans(
        "frontend:    randomSampling: true\n    attributes:\n      caller: request.headers['x-caller']\n",
        None,
    )
    .await;
    assert_eq!(spans.len(), 1);
    assert_eq!(attr(&spans[0], "caller").as_deref(), Some("agent-7"));
    let filtered =
        server_spans("frontend:    randomSampling: true\n    filter: \"response.code == 500\"\n", None).await;
    assert!(filtered.is_empty(), "the filter keeps only 500s");
}

#[tokio::test]
async fn access_log_records_are_exported_over_otlp_with_their_own_filter_and_fields() {
    use agw_testkit::otlp::log_attr;
    let collector = Receiver::start().await.unwrap();
    let upstream = Recorder::start().await.unwrap();
    let yaml = format!(
        "{QUIET}frontendPolicies:
  accessLog:
    add:
      marker: request.headers['x-marker']
    otlp:
      host: {}
      filter: mcp.method == 'initialize'
      fields:
        add:
          caller: request.headers['x-caller']
        remove: [peer]
{}",
        collector.endpoint().trim_start_matches("http://"),
        mcp_route(&upstream.url(), "")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp")).with_header("x-caller", "agent-9").with_header("x-marker", "m-1");
    c.initialize().await.unwrap(); // `initialize`, then `notifications/initialized`
    gw.stop().await; // flushes the exporter
    let logs = collector.logs();
    assert_eq!(logs.len(), 1, "only initialize passes the OTLP filter: {logs:#?}");
    let r = &logs[0];
    assert_eq!(log_attr(r, "mcp.method").as_deref(), Some("initialize"));
    assert_eq!(log_attr(r, "http.status").as_deref(), Some("200"));
    assert_eq!(log_attr(r, "caller").as_deref(), Some("agent-9"), "the OTLP fields");
    assert_eq!(log_attr(r, "marker"), None, "not the access log's fields when it has its own");
    assert_eq!(log_attr(r, "peer"), None, "removed");
    assert!(log_attr(r, "route").is_some());
}

#[tokio::test]
async fn telemetry_cel_is_compiled_at_load_with_located_errors() {
    let upstream = Recorder::start().await.unwrap();
    let yaml = format!(
        "{QUIET}frontendPolicies:\n  accessLog:\n    filter: 'response.code >'\n    add:\n      user: req.headers['user-agent']\n  tracing:\n    host: localhost:4317\n    randomSampling: 'request.path =='\n{}",
        mcp_route(&upstream.url(), "")
    );
    let err = Gateway::start(&yaml).await.err().expect("bad CEL is refused at load").to_string();
    assert!(err.contains("frontendPolicies.accessLog.filter: invalid CEL"), "{err}");
    assert!(err.contains("frontendPolicies.accessLog.add.user: unknown variable `req`"), "{err}");
    assert!(err.contains("frontendPolicies.tracing.randomSampling: invalid CEL"), "{err}");
    assert!(err.contains("test.yaml:9:7: frontendPolicies.accessLog.add.user"), "located: {err}");
}

#[tokio::test]
async fn the_deprecated_config_logging_filter_and_fields_work_as_access_log() {
    log();
    let upstream = Recorder::start().await.unwrap();
    let yaml = format!(
        "{QUIET}  logging:\n    filter: \"request.headers['x-old'] == 'yes-e5f6'\"\n    fields:\n      add:\n        old: request.headers['x-old']\n      remove: [route]\n{}",
        mcp_route(&upstream.url(), "")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut skipped = McpClient::new(gw.url("/mcp")).with_header("x-old", "no-e5f6");
    skipped.initialize().await.unwrap();
    let mut kept = McpClient::new(gw.url("/mcp")).with_header("x-old", "yes-e5f6");
    kept.initialize().await.unwrap();
    let line = access_line("yes-e5f6").await;
    assert!(line.contains("old") && !line.contains("route="), "{line}");
    assert!(!log().contains("no-e5f6"), "filtered out");
    gw.stop().await;
}
