//! The Grafana dashboard (deploy/grafana/agentgateway.json) queries only what the gateway
//! exports: after a scripted session that makes every kind of event the dashboard shows, each
//! metric named in its PromQL has series in `/metrics`, and each label it groups by is on them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agw_testkit::client::McpClient;
use agw_testkit::harness::{Gateway, with_free_ports};
use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path).canonicalize().unwrap()
}

fn token(name: &str) -> String {
    std::fs::read_to_string(repo("examples/tutorial").join(name)).unwrap().trim().to_string()
}

/// The tutorial's route with a short header time-out (so that an idle connection is closed
/// and counted) in front of `upstream`, with tool pinning from `pins`; and an `a2a` route
/// (`/agent/`) to the same server.
fn config(upstream: &str, pins: &std::path::Path) -> String {
    let tutorial = std::fs::read_to_string(repo("examples/tutorial/config.yaml")).unwrap();
    let host = upstream.trim_start_matches("http://").trim_end_matches("/mcp");
    let a2a = format!(
        "  - routes:\n    - name: agent\n      matches:\n      - path: {{pathPrefix: /agent/}}\n      policies:\n        a2a: {{}}\n      backends:\n      - host: {host}\n"
    );
    let text = tutorial
        .replacen("  - routes:\n", &a2a, 1)
        .replace("- port: 3000", "- port: 0")
        .replace("http://localhost:3001/mcp", upstream)
        .replace("file: ./pub-key", &format!("file: {}", repo("examples/tutorial/pub-key").display()))
        .replace(
            "      - mcp:\n",
            &format!("      - mcp:\n          toolPinning:\n            file: {}\n", pins.display()),
        );
    with_free_ports(&format!("frontendPolicies:\n  http:\n    requestHeaderTimeout: 200ms\n{text}"))
}

/// Every PromQL expression of the dashboard: panel targets and template variable queries.
fn expressions(dashboard: &Value, out: &mut Vec<String>) {
    match dashboard {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => expressions(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression (ours all start with `agentgateway_`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.match_indices("agentgateway_")
        .map(|(at, _)| {
            expr[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect()
        })
        .collect()
}

/// The labels of every `by (…)` clause.
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    expr.match_indices("by (")
        .flat_map(|(at, m)| {
            let rest = &expr[at + m.len()..];
            rest[..rest.find(')').unwrap()].split(',').map(|l| l.trim().to_string()).collect::<Vec<_>>()
        })
        .collect()
}

/// Sample lines of `name` (not its `# HELP`/`# TYPE` lines).
fn samples<'t>(text: &'t str, name: &str) -> Vec<&'t str> {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .collect()
}

async fn eventually(what: &str, gw: &Gateway, series: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while samples(&gw.metrics().await.unwrap(), series).is_empty() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let upstream = agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("agw-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    // Every tool pinned but `sleep` (which the tutorial's callers cannot see anyway): its
    // listing is a pin rejection.
    let target = agw_gateway::pin::url_target("mcp", &upstream.url("/mcp")).unwrap();
    let mut pins = agw_gateway::pin::pin(&[target]).await.unwrap();
    pins.targets.get_mut("mcp").unwrap().remove("sleep").unwrap();
    let pin_file = dir.join("pins.json");
    std::fs::write(&pin_file, pins.to_text()).unwrap();
    std::fs::write(&path, config(&upstream.url("/mcp"), &pin_file)).unwrap();
    let gw = Gateway::start_file(&path).await.unwrap();
    let url = gw.url("/mcp");

    // The tutorial: a list, an allowed call, a denied call, a token that is not one.
    let bearer = |name| format!("Bearer {}", token(name));
    let mut first = McpClient::new(&url).with_header("authorization", &bearer("example1.key"));
    first.initialize().await.unwrap();
    assert_eq!(first.tool_names().await.unwrap().len(), 3);
    assert!(first.call_tool("add", json!({"a": 1, "b": 2})).await.unwrap().get("result").is_some());
    let mut second = McpClient::new(&url).with_header("authorization", &bearer("example2.key"));
    second.initialize().await.unwrap();
    assert!(second.call_tool("printEnv", json!({})).await.unwrap().get("error").is_some());
    let forged = McpClient::new(&url).with_header("authorization", "Bearer not.a.token");
    assert_eq!(forged.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.unwrap().status, 401);
    // An anonymous caller presenting a token holder's session id: refused (reason `owner`).
    // (Both tutorial tokens have the same subject, so they share sessions.)
    let borrowed = McpClient::new(&url).with_session(first.session.as_deref().unwrap());
    assert_eq!(borrowed.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})).await.unwrap().status, 404);
    // A connection that never sends a request head: closed after the header time-out.
    let idle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    eventually("an idle connection closed", &gw, "agentgateway_connections_closed_total").await;
    drop(idle);
    // An A2A call (the server is no agent: whatever it answers, the call is counted).
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m"}}}"#;
    agw_testkit::client::http("POST", &gw.url("/agent/"), &[("content-type", "application/json")], call).await.unwrap();
    // A reload of the config file.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("# reloaded\n");
    std::fs::write(&path, text).unwrap();
    eventually("a reload", &gw, "agentgateway_config_reloads_total").await;

    let metrics = gw.metrics().await.unwrap();
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("deploy/grafana/agentgateway.json")).unwrap()).unwrap();
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "the dashboard's queries: {exprs:#?}");
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "a query with none of our metrics: {expr}");
        for name in &names {
            assert!(!samples(&metrics, name).is_empty(), "{name} (in `{expr}`) is not in /metrics:\n{metrics}");
        }
        // Labels added by Prometheus (`instance`, `job`) and histogram buckets (`le`) aside,
        // every label grouped by is on a series of a metric in the same query.
        for label in grouping_labels(expr).iter().filter(|l| !["le", "instance", "job"].contains(&l.as_str())) {
            let on_a_series =
                names.iter().any(|n| samples(&metrics, n).iter().any(|s| s.contains(&format!("{label}=\""))));
            assert!(on_a_series, "label {label} (in `{expr}`) is on no series of {names:?}");
        }
        queried.extend(names);
    }
    // Everything docs/operations.md lists is on the dashboard (histograms through their series).
    let documented = std::fs::read_to_string(repo("docs/operations.md")).unwrap();
    for name in metric_names(&documented) {
        let shown = queried.iter().any(|q| {
            q == &name || q.strip_prefix(name.as_str()).is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        });
        assert!(shown || name == "agentgateway_", "{name} is documented but not on the dashboard");
    }
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
