//! Connection hardening on real loopback sockets: header, idle and body time-outs, the
//! per-worker connection cap, the request-body buffer budget, and size limits. Time-outs are
//! configured short and the tests wait for the event (a close, a status) under a generous
//! outer bound: nothing here asserts on how long something took.

use std::time::Duration;

use agw_testkit::client::{self, McpClient};
use agw_testkit::harness::{Gateway, mcp_route, metric};
use agw_testkit::recorder::Recorder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: only reached when the behaviour under test is missing.
const OUTER: Duration = Duration::from_secs(20);
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

async fn gateway(frontend: &str, upstream: &Recorder, config: &str) -> Gateway {
    let yaml = format!("{config}frontendPolicies:\n{frontend}{}", mcp_route(&upstream.url(), ""));
    Gateway::start(&yaml).await.unwrap()
}

/// Everything the gateway sends until it closes the connection (a reset counts as a close).
async fn until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(OUTER, s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway did not close the connection; got {:?}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `/metrics` until `series` satisfies `ok` (bounded by [`OUTER`]); returns its value.
async fn wait_metric(gw: &Gateway, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let polled = tokio::time::timeout(OUTER, async {
        loop {
            let v = metric(&gw.metrics().await.unwrap(), series);
            if ok(v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    polled.unwrap_or_else(|_| panic!("{series} never reached the expected value"))
}

fn post_head(content_length: usize) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {content_length}\r\n\r\n"
    )
}

async fn readiness(gw: &Gateway) -> u16 {
    let url = format!("http://{}/healthz/ready", gw.readiness.unwrap());
    client::http("GET", &url, &[], "").await.unwrap().0
}

#[tokio::test]
async fn a_silent_connection_and_a_half_sent_head_are_closed() {
    let upstream = Recorder::start().await.unwrap();
    let gw = gateway("  http:\n    requestHeaderTimeout: 300ms\n", &upstream, "").await;

    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(until_closed(&mut silent).await, "", "closed without an answer");

    let mut half = TcpStream::connect(gw.addr).await.unwrap();
    half.write_all(b"POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-le").await.unwrap();
    assert_eq!(until_closed(&mut half).await, "");

    wait_metric(&gw, "agentgateway_connections_closed_total{reason=\"header_timeout\"}", |v| v >= 2.0).await;
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn a_stalled_body_is_cut_with_408_and_never_reaches_the_upstream() {
    let upstream = Recorder::start().await.unwrap();
    let gw = gateway("  http:\n    requestBodyTimeout: 300ms\n", &upstream, "").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(format!("{}{}", post_head(INIT.len()), &INIT[..20]).as_bytes()).await.unwrap();
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(upstream.seen().is_empty(), "the upstream never got the request");
    wait_metric(&gw, "agentgateway_connections_closed_total{reason=\"body_timeout\"}", |v| v >= 1.0).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_request() {
    let upstream = Recorder::start().await.unwrap();
    let gw = gateway("  http:\n    http1IdleTimeout: 300ms\n", &upstream, "").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(format!("{}{INIT}", post_head(INIT.len())).as_bytes()).await.unwrap();
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("recorder"), "the whole answer came before the close: {answer}");
    wait_metric(&gw, "agentgateway_connections_closed_total{reason=\"idle\"}", |v| v >= 1.0).await;
}

#[tokio::test]
async fn two_thousand_idle_connections_do_not_stop_clients_or_readiness() {
    let (soft, _) = agw_gateway::raise_fd_limit().unwrap();
    // Both ends of every connection live in this process.
    if soft < 4_600 {
        eprintln!("skipped: the file descriptor limit ({soft}) is too low for 2,000 loopback connections");
        return;
    }
    let upstream = Recorder::start().await.unwrap();
    let gw =
        gateway("  http:\n    requestHeaderTimeout: 60s\n  tcp:\n    maxConnectionsPerWorker: 5000\n", &upstream, "")
            .await;
    let mut idle = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    wait_metric(&gw, "agentgateway_connections_open", |v| v >= 2_000.0).await;
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    assert_eq!(readiness(&gw).await, 200);
    drop(idle);
    wait_metric(&gw, "agentgateway_connections_open", |v| v < 2_000.0).await;
}

#[tokio::test]
async fn beyond_the_per_worker_cap_connections_are_closed_at_once() {
    let upstream = Recorder::start().await.unwrap();
    let config = "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 127.0.0.1:0\n  statsAddr: 127.0.0.1:0\n  workerThreads: 1\n";
    let gw =
        gateway("  http:\n    requestHeaderTimeout: 60s\n  tcp:\n    maxConnectionsPerWorker: 2\n", &upstream, config)
            .await;
    let held = [TcpStream::connect(gw.addr).await.unwrap(), TcpStream::connect(gw.addr).await.unwrap()];
    wait_metric(&gw, "agentgateway_connections_open", |v| v == 2.0).await;

    let mut extra = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(until_closed(&mut extra).await, "");
    assert!(metric(&gw.metrics().await.unwrap(), "agentgateway_connections_refused_total") >= 1.0);
    assert_eq!(readiness(&gw).await, 200, "the readiness port is not capped");

    drop(held);
    wait_metric(&gw, "agentgateway_connections_open", |v| v == 0.0).await;
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
}

#[tokio::test]
async fn request_bodies_share_a_buffer_budget_and_large_ones_are_refused_at_once() {
    let upstream = Recorder::start().await.unwrap();
    let gw = gateway("  http:\n    maxBufferSize: 500000\n    maxBufferedRequestBytes: 1000000\n", &upstream, "").await;
    let gauge = "agentgateway_request_body_buffered_bytes";

    // Declared over the per-request limit: 413 before any body byte is sent.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(post_head(600_000).as_bytes()).await.unwrap();
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Three bodies of 400 kB, 300 kB sent of each: 900 kB held.
    let part = vec![b' '; 300_000];
    let mut holding = Vec::new();
    for n in 1..=3 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(post_head(400_000).as_bytes()).await.unwrap();
        s.write_all(&part).await.unwrap();
        holding.push(s);
        let held = wait_metric(&gw, gauge, |v| v >= 300_000.0 * f64::from(n)).await;
        assert!(held <= 1_000_000.0, "the gauge stays within the budget: {held}");
    }
    // A fourth would need 400 kB of the 100 kB left: refused at once, nothing held for it.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(post_head(400_000).as_bytes()).await.unwrap();
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let text = gw.metrics().await.unwrap();
    assert!(metric(&text, gauge) <= 1_000_000.0);
    assert!(metric(&text, "agentgateway_requests_over_budget_total") >= 1.0);

    // The first body finishes within the budget and is relayed; its bytes are given back.
    let mut first = holding.remove(0);
    let mut rest = INIT.as_bytes().to_vec();
    rest.resize(100_000, b' ');
    first.write_all(&rest[..]).await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(OUTER, first.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "all 400 kB were read (JSON allows the padding)");
    assert_eq!(upstream.seen().len(), 1, "only the finished body reached the upstream");
    drop(holding);
    wait_metric(&gw, gauge, |v| v == 0.0).await;
}
