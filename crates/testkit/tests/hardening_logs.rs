//! Hardening, end to end: what reaches the log and `/config_dump` (credentials redacted, a
//! stdio child's stderr escaped and cut), and DNS rebinding protection over HTTP/2.
//!
//! The gateway runs in this process, so its log is captured by a subscriber writing to a
//! buffer. Tests run in parallel and share it: each looks for markers of its own.

use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use agw_testkit::client::McpClient;
use agw_testkit::harness::{Gateway, mcp_route};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXAMPLE_SERVER: &str = env!("CARGO_BIN_EXE_mcp-example-server");

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

/// The log so far (installing the capture on first use).
fn log() -> String {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
    });
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Waits (at most 20 s) until the log has a line containing `needle`; returns the log.
async fn logged(needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = log();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "`{needle}` never logged:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A YAML single-quoted string.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A child that writes a `\r`-forged line, a terminal escape and a 100 KB line to stderr,
/// then becomes an MCP server: what it wrote is logged escaped and cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_stderr_is_escaped_and_cut() {
    log();
    let script = format!(
        "printf 'stderr-forge\\rINFO forged-line\\n' >&2; printf '\\033[2Jstderr-ansi\\n' >&2; \
         head -c 100000 /dev/zero | tr '\\0' x >&2; printf '\\nstderr-after-long\\n' >&2; exec {EXAMPLE_SERVER} --stdio"
    );
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: noisy\n            stdio:\n              cmd: sh\n              args: ['-c', {}]\n",
        quoted(&script)
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let text = logged("stderr-after-long").await;
    assert!(!text.contains('\r') && !text.contains('\u{1b}'), "raw control characters in the log");
    let line = |needle: &str| text.lines().find(|l| l.contains(needle)).unwrap_or_default().to_string();
    assert!(line("stderr-forge").contains("stderr-forge\\rINFO forged-line"), "{}", line("stderr-forge"));
    assert!(line("stderr-ansi").contains("\\x1b[2Jstderr-ansi"), "{}", line("stderr-ansi"));
    let long = line("xxxxxxxxxxxxxxxx");
    assert_eq!(long.matches('x').count(), 4096, "the long line is cut at 4 KiB");
    assert!(long.contains("[line cut at 4096 bytes]"), "{long}");
    assert!(line("stderr-after-long").contains("stderr: stderr-after-long"), "the rest of the long line was skipped");
    gw.stop().await;
}

/// A legacy SSE upstream that answers 404: the log line says so, without the URL's query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_upstream_errors_do_not_log_the_query() {
    log();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ =
                    socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: legacy\n            sse:\n              host: http://127.0.0.1:{port}/sse?token=sse-query-planted\n"
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    let _ = c.initialize().await;
    let text = logged(&format!("GET http://127.0.0.1:{port}/sse?<redacted> answered HTTP 404")).await;
    assert!(!text.contains("sse-query-planted"), "the query reached the log:\n{text}");
    gw.stop().await;
}

/// Planted credentials in every kind of place: none is in `/config_dump`, nor in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_dump_and_log_redact_credentials() {
    log();
    let yaml = "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  tracing:\n    otlpEndpoint: http://otlp-user:otlp-pass-planted@127.0.0.1:1\n\
binds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        jwtAuth:\n          mode: optional\n          issuer: planted.example\n          audiences: [planted]\n          jwks:\n            url: http://jwks-user:jwks-pass-planted@127.0.0.1:1/keys?key=jwks-query-planted\n        requestHeaderModifier:\n          set:\n            x-api-key: header-value-planted\n      backends:\n      - mcp:\n          targets:\n          - name: http\n            mcp:\n              host: http://127.0.0.1:1/mcp?token=mcp-query-planted\n          - name: child\n            stdio:\n              cmd: sh\n              args: ['-c', 'exit 0', 'stdio-arg-planted']\n              env:\n                TOKEN: stdio-env-planted\n";
    let gw = Gateway::start(yaml).await.unwrap();
    let admin = gw.admin.unwrap();
    let (status, dump) =
        agw_testkit::client::http("GET", &format!("http://{admin}/config_dump"), &[], "").await.unwrap();
    assert_eq!(status, 200);
    let planted = [
        "otlp-pass-planted",
        "jwks-pass-planted",
        "jwks-query-planted",
        "header-value-planted",
        "mcp-query-planted",
        "stdio-arg-planted",
        "stdio-env-planted",
    ];
    for secret in planted {
        assert!(!dump.contains(secret), "{secret} in /config_dump:\n{dump}");
    }
    for shown in [
        "http://<redacted>@127.0.0.1:1",
        "http://<redacted>@127.0.0.1:1/keys?<redacted>",
        "http://127.0.0.1:1/mcp?<redacted>",
        "\"cmd\": \"sh\"",
    ] {
        assert!(dump.contains(shown), "{shown} not in /config_dump:\n{dump}");
    }
    // The JWKS fetch fails (nothing listens on port 1) and names its URL; so does the exporter.
    let text = logged("http://<redacted>@127.0.0.1:1/keys?<redacted>").await;
    let text = if text.contains("Traces exported to") { text } else { logged("Traces exported to").await };
    for secret in planted {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    gw.stop().await;
}

/// `dnsRebindingProtection` over HTTP/2 (h2c, prior knowledge): the host is `:authority`.
#[tokio::test]
async fn dns_rebinding_protection_reads_the_http2_authority() {
    let upstream = agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let yaml = mcp_route(&upstream.url("/mcp"), "")
        .replace("      - mcp:\n", "      - mcp:\n          dnsRebindingProtection: true\n");
    let gw = Gateway::start(&yaml).await.unwrap();
    let port = gw.addr.port();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for (authority, want) in
        [(format!("localhost:{port}"), 200), (format!("127.0.0.1:{port}"), 200), ("evil.example.com".into(), 403)]
    {
        let req = http::Request::post(format!("http://{authority}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(Bytes::from(init.to_string())))
            .unwrap();
        assert!(req.headers().get("host").is_none(), "HTTP/2: no Host header, only :authority");
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, want, "{authority}: {}", String::from_utf8_lossy(&body));
        if want == 200 {
            assert!(String::from_utf8_lossy(&body).contains("\"result\""), "{authority}: initialize answered");
        }
    }
    gw.stop().await;
}

/// `mcpAuthentication.clientSecret` (entra) and the token requests the gateway proxies: in
/// neither the log (even at debug, even when the call to the provider fails) nor `/config_dump`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_client_secret_and_token_requests_are_not_logged() {
    log();
    let dead = agw_testkit::node::free_port().await;
    let yaml = format!(
        "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 'off'\n  statsAddr: 'off'\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - matches:\n      - path:\n          pathPrefix: /entra-log\n      policies:\n        mcpAuthentication:\n          issuer: http://127.0.0.1:{dead}/tenant-log/v2.0\n          jwks: '{{\"keys\":[{{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\",\"kid\":\"k\"}}]}}'\n          provider:\n            entra: {{}}\n          clientId: app-log\n          clientSecret: entra-secret-planted\n      backends:\n      - host: 127.0.0.1:1\n"
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let token = gw.url("/.well-known/oauth-authorization-server/entra-log/token");
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"grant_type=authorization_code&client_id=app-log&code=code-planted")))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 502, "nothing listens where the provider should be");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = logged("authorization server endpoint failed").await;
    for secret in ["entra-secret-planted", "code-planted"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
        assert!(!String::from_utf8_lossy(&body).contains(secret));
    }
    let admin = gw.admin.unwrap();
    let (_, dump) = agw_testkit::client::http("GET", &format!("http://{admin}/config_dump"), &[], "").await.unwrap();
    assert!(dump.contains("app-log") && !dump.contains("entra-secret-planted"), "{dump}");
    gw.stop().await;
}

/// An upstream whose certificate `backendTLS` does not trust: the client is told the target is
/// unreachable, the log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_refusals_are_logged_with_their_reason() {
    log();
    let tls = agw_testkit::tls::server_config("upstream", None);
    let up =
        agw_testkit::reference::serve_tls("127.0.0.1:0".parse().unwrap(), Default::default(), Some(tls)).await.unwrap();
    let extra = format!("      policies:\n        backendTLS: {{root: {}}}\n", agw_testkit::tls::path("other-ca.pem"));
    let gw = Gateway::start(&mcp_route(&up.url("/mcp"), &extra)).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    let err = c.initialize().await.unwrap_err().to_string();
    assert!(err.contains("is unreachable") && !err.contains("UnknownIssuer"), "{err}");
    logged("invalid peer certificate: UnknownIssuer").await;
}
