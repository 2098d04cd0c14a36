//! Operations with the real binary: access log lines, the log level changed at run time,
//! and a graceful shutdown that lets a long call finish.

mod support;

use std::time::{Duration, Instant};

use agw_testkit::client::McpClient;
use agw_testkit::harness::metric;
use serde_json::{Value, json};
use support::{Logs, repo, sigterm, start};

fn token(name: &str) -> String {
    std::fs::read_to_string(repo().join("examples/tutorial").join(name)).unwrap().trim().to_string()
}

/// The tutorial's route in front of `upstream`, JSON logs, admin and metrics on free ports.
fn config(upstream: &str) -> String {
    format!(
        "config:\n  adminAddr: 127.0.0.1:0\n  statsAddr: 127.0.0.1:0\n  readinessAddr: 'off'\n  logging:\n    format: json\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - name: tutorial\n      policies:\n        jwtAuth:\n          issuer: agentgateway.dev\n          audiences: [test.agentgateway.dev]\n          jwks:\n            file: {}\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"echo\"'\n          - 'jwt.sub == \"test-user\" && mcp.tool.name == \"add\"'\n          - 'mcp.tool.name == \"printEnv\" && jwt.nested.key == \"value\"'\n          - 'mcp.tool.name == \"sleep\"'\n      backends:\n      - mcp:\n          targets:\n          - name: mcp\n            mcp:\n              host: {upstream}\n",
        repo().join("examples/tutorial/pub-key").display()
    )
}

/// The address after `prefix` in a start-up line (`http://127.0.0.1:PORT/...`).
fn logged_port(logs: &Logs, prefix: &str) -> u16 {
    let lines = logs.wait_for(prefix);
    let line = lines.iter().find(|l| l.contains(prefix)).unwrap();
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

fn access_lines(logs: &Logs) -> Vec<Value> {
    logs.lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect()
}

async fn http(method: &str, url: &str, origin: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    agw_testkit::client::http(method, url, &headers, "").await.unwrap()
}

#[test]
fn access_log_lines_name_the_call_never_the_token_and_the_level_changes_at_run_time() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream =
        rt.block_on(agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default())).unwrap();
    let (mut child, logs) = start(&["--config", &config(&upstream.url("/mcp"))]);
    let port = logged_port(&logs, "Listening on 0.0.0.0:");
    let admin = logged_port(&logs, "Admin UI available at http://127.0.0.1:");
    let token = token("example1.key");
    let url = format!("http://127.0.0.1:{port}/mcp?probe=1");

    rt.block_on(async {
        let mut c = McpClient::new(&url).with_header("authorization", &format!("Bearer {token}"));
        c.initialize().await.unwrap();
        assert!(c.call_tool("echo", json!({"message": "hi"})).await.unwrap().get("result").is_some());

        // Quieter: `access` lines are info, so none for the next call.
        let logging = format!("http://127.0.0.1:{admin}/logging");
        let (status, _) = http("POST", &format!("{logging}?level=evil"), Some("http://attacker.example")).await;
        assert_eq!(status, 403, "a page on another origin cannot change the level");
        let (status, body) = http("POST", &format!("{logging}?level=not%20a%20filter%5B"), None).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = http("POST", &format!("{logging}?level=warn"), None).await;
        assert_eq!((status, body.trim()), (200, "warn"));
        assert_eq!(http("GET", &logging, None).await.1.trim(), "warn");
        assert!(c.call_tool("add", json!({"a": 1, "b": 2})).await.unwrap().get("result").is_some());
        let (status, _) = http("POST", &format!("{logging}?level=info"), None).await;
        assert_eq!(status, 200);
        assert!(c.call_tool("printEnv", json!({})).await.unwrap().get("result").is_some());
    });
    logs.wait_for("\"mcp.tool\":\"printEnv\"");
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let access = access_lines(&logs);
    let echo = access.iter().find(|v| v["mcp.tool"] == "echo").unwrap_or_else(|| panic!("{access:#?}"));
    assert_eq!(echo["route"], "tutorial");
    assert_eq!(echo["http.method"], "POST");
    assert_eq!(echo["http.path"], "/mcp", "the path, never the query");
    assert_eq!(echo["http.status"], 200);
    assert_eq!(echo["mcp.method"], "tools/call");
    assert_eq!(echo["mcp.target"], "mcp");
    assert_eq!(echo["jwt.sub"], "test-user");
    assert!(echo["duration_ms"].as_f64().is_some(), "{echo}");
    assert!(access.iter().any(|v| v["mcp.method"] == "initialize"), "{access:#?}");
    assert!(!access.iter().any(|v| v["mcp.tool"] == "add"), "logged while the level was warn: {access:#?}");
    let all = logs.lines().join("\n");
    for part in token.split('.') {
        assert!(!all.contains(part), "the token leaked into the log");
    }
}

/// The binary in front of a reference upstream, with its MCP URL and metrics port.
struct Running {
    _upstream: agw_testkit::serve::Server,
    child: std::process::Child,
    logs: Logs,
    url: String,
    stats: u16,
}

fn run_gateway(rt: &tokio::runtime::Runtime) -> Running {
    let upstream =
        rt.block_on(agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default())).unwrap();
    let (child, logs) = start(&["--config", &config(&upstream.url("/mcp"))]);
    let port = logged_port(&logs, "Listening on 0.0.0.0:");
    let stats = logged_port(&logs, "Metrics on http://127.0.0.1:");
    Running { _upstream: upstream, child, logs, url: format!("http://127.0.0.1:{port}/mcp"), stats }
}

/// Polls `/metrics` (at most 20 s) until `seen` holds for its text.
async fn until_metrics(stats: u16, what: &str, seen: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = http("GET", &format!("http://127.0.0.1:{stats}/metrics"), None).await;
        if seen(&text) {
            return;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn sigterm_lets_a_call_in_flight_finish_then_exits_0() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Running { _upstream, mut child, logs, url, stats } = run_gateway(&rt);
    let token = token("example2.key");

    let answer = rt.block_on(async {
        let mut c = McpClient::new(&url).with_header("authorization", &format!("Bearer {token}"));
        c.initialize().await.unwrap();
        let call = tokio::spawn(async move { c.call_tool("sleep", json!({"ms": 1500})).await });
        // The gateway counts a request when it reads it, before it goes upstream.
        until_metrics(stats, "the call arrives", |text| {
            metric(text, "agentgateway_mcp_requests_total{method=\"tools/call\",target=\"mcp\",tool=\"sleep\"}") == 1.0
        })
        .await;
        sigterm(&child);
        logs.wait_for("stopped accepting connections");
        // New connections are refused while the call drains.
        let refused = McpClient::new(&url).post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await;
        assert!(refused.is_err(), "a new request was accepted during shutdown");
        call.await.unwrap()
    });
    let answer = answer.unwrap();
    assert_eq!(agw_testkit::client::first_text(&answer), Some("Slept 1500 ms"), "{answer}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    logs.wait_for("shutdown complete");
}

#[test]
fn sigterm_ends_open_sse_streams_cleanly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Running { _upstream, mut child, logs, url, stats } = run_gateway(&rt);
    let token = token("example2.key");

    let ended = rt.block_on(async {
        let mut c = McpClient::new(&url).with_header("authorization", &format!("Bearer {token}"));
        c.initialize().await.unwrap();
        // The standalone stream: open until the server ends it.
        let stream = tokio::spawn(async move { c.get_stream(&[], |_| false).await });
        until_metrics(stats, "the stream opens", |text| {
            text.lines().any(|l| l.contains("method=\"GET\",status=\"200\""))
        })
        .await;
        sigterm(&child);
        stream.await.unwrap()
    });
    // `get_stream` fails on a connection cut mid-body; a clean end of stream is Ok.
    let ended = ended.unwrap_or_else(|e| panic!("the stream was cut, not ended: {e:#}"));
    assert_eq!(ended.status, 200);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let lines = logs.wait_for("shutdown complete");
    assert!(!lines.iter().any(|l| l.contains("drain time over")), "the stream held the drain: {lines:#?}");
}

#[test]
fn a_batch_writes_a_bounded_number_of_log_lines() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream =
        rt.block_on(agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default())).unwrap();
    let yaml = config(&upstream.url("/mcp")).replace("    format: json\n", "    format: json\n    audit: all\n");
    let (mut child, logs) = start(&["--config", &yaml]);
    let port = logged_port(&logs, "Listening on 0.0.0.0:");
    let url = format!("http://127.0.0.1:{port}/mcp");
    let status = rt.block_on(async {
        // A 2025-03-26 session may send batches: 16 calls of a tool the rules refuse to an
        // anonymous caller, each an audit decision.
        let c = McpClient::new(&url);
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let ex = c.post(&init).await.unwrap();
        let mut c = c.with_session(ex.header("mcp-session-id").unwrap());
        c.protocol = None;
        let calls: Vec<Value> = (0..16)
            .map(|i| json!({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}))
            .collect();
        let ex = c.post_bytes(serde_json::to_vec(&calls).unwrap(), None).await.unwrap();
        assert_eq!(ex.messages.len(), 16, "every call answered");
        ex.status
    });
    assert_eq!(status, 200);
    logs.wait_for("more authorization decisions in this request");
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let lines: Vec<Value> = logs.lines().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
    let audit: Vec<&Value> = lines.iter().filter(|v| v["target"] == "audit").collect();
    let decisions = audit.iter().filter(|v| v["decision"] == "deny").count();
    assert_eq!(decisions, 8, "at most 8 decision lines per request: {audit:#?}");
    let summary = audit.iter().find(|v| v["decision"] == "summary").expect("a summary line");
    assert_eq!(summary["denied"], 8, "{summary}");
    assert_eq!(access_lines(&logs).len(), 2, "one access line per HTTP request");
}
