//! The `a2a` policy end to end with the official A2A JavaScript SDK (npm `@a2a-js/sdk`): its
//! Express server as the agent (`tests/node/a2a-agent.mjs`) and its client through the gateway
//! (`tests/node/a2a-client.mjs`): the card is fetched with its URLs rewritten to the gateway, a
//! message is sent, a streamed task is followed to completion and fetched again — all through
//! the gateway — and a CEL rule over `a2a.method` refuses one method. Needs the npm peers
//! (`.ci/run` installs them).

use std::time::Duration;

use agw_testkit::harness::{Gateway, metric};
use agw_testkit::node::{self, Process};
use serde_json::Value;

async fn agent() -> (Process, u16) {
    let port = node::free_port().await;
    let script = node::require_installed().join("a2a-agent.mjs");
    let p = Process::spawn("a2a-agent", "node", &[&script.to_string_lossy(), &port.to_string()], &[]);
    node::wait_for_port(port, Duration::from_secs(30)).await;
    (p, port)
}

fn config(agent: u16, policies: &str) -> String {
    format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: agent\n      policies:\n        a2a: {{}}\n{policies}      backends:\n      - host: 127.0.0.1:{agent}\n"
    )
}

async fn client(base: &str, steps: &[&str]) -> Value {
    let mut args = vec![base];
    args.extend(steps);
    let (_, stdout, stderr) = node::run_script("a2a-client.mjs", &args).await;
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_client_discovers_sends_and_streams_through_the_gateway() {
    let (_agent, port) = agent().await;
    let gw = Gateway::start(&config(port, "")).await.unwrap();
    let base = gw.url("");
    let out = client(&base, &["send", "stream", "get"]).await;
    assert!(out.get("fatal").is_none(), "{out}");
    // The card names the gateway, not the agent: every later call goes through it.
    assert_eq!(out["interfaces"], serde_json::json!([format!("{base}/")]), "{out}");
    assert_eq!(out["send"]["state"], "TASK_STATE_COMPLETED", "{out}");
    assert_eq!(out["send"]["artifacts"], serde_json::json!(["echo: hello over a2a"]), "{out}");
    assert_eq!(
        out["stream"]["events"],
        serde_json::json!([
            "task",
            "status:TASK_STATE_WORKING",
            "artifact:echo: streamed",
            "status:TASK_STATE_COMPLETED"
        ]),
        "{out}"
    );
    assert_eq!(out["get"]["state"], "TASK_STATE_COMPLETED", "{out}");
    assert_eq!(out["get"]["id"], out["stream"]["taskId"]);

    // Counted per method (v1.0 names), through the gateway only.
    let m = gw.metrics().await.unwrap();
    for method in ["SendMessage", "SendStreamingMessage", "GetTask"] {
        let series = format!("agentgateway_a2a_calls_total{{route=\"agent\",method=\"{method}\",status=\"200\"}}");
        assert_eq!(metric(&m, &series), 1.0, "{series} in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_over_the_a2a_method_refuses_streaming() {
    let (_agent, port) = agent().await;
    // The card (no call: `a2a` is empty) and every method but streaming.
    let rules = "        authorization:\n          rules:\n          - '!has(a2a.method) || a2a.method != \"SendStreamingMessage\"'\n";
    let gw = Gateway::start(&config(port, rules)).await.unwrap();
    let out = client(&gw.url(""), &["send", "stream"]).await;
    assert!(out.get("fatal").is_none(), "{out}");
    assert_eq!(out["send"]["state"], "TASK_STATE_COMPLETED", "{out}");
    // The SDK reports the 403 as a transport error; the metric below says it was the rule.
    assert!(out["stream"]["error"]["name"].as_str().is_some(), "streaming was not refused: {out}");
    let m = gw.metrics().await.unwrap();
    let series = "agentgateway_a2a_calls_total{route=\"agent\",method=\"SendStreamingMessage\",status=\"403\"}";
    assert_eq!(metric(&m, series), 1.0, "{m}");
}

#[tokio::test]
async fn a2a_needs_a_host_backend() {
    let yaml = "binds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        a2a: {}\n      backends:\n      - mcp:\n          targets:\n          - name: a\n            mcp: {host: 'http://127.0.0.1:1/mcp'}\n";
    let e = Gateway::refused(yaml).await;
    assert!(e.contains("routes[0].policies.a2a: A2A traffic goes to a `host:` backend"), "{e}");
}

/// A2A calls in the access log (exported over OTLP), in the server spans, and the `backend`
/// variable of telemetry expressions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_in_the_access_log_and_the_traces() {
    use agw_testkit::otlp::{Receiver, attr, log_attr};
    let (_agent, port) = agent().await;
    let collector = Receiver::start().await.unwrap();
    let host = collector.endpoint().trim_start_matches("http://").to_string();
    let telemetry = format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\nfrontendPolicies:\n  accessLog:\n    add:\n      proto: backend.protocol\n    otlp:\n      host: {host}\n  tracing:\n    host: {host}\n    randomSampling: 'true'\n"
    );
    let gw = Gateway::start(&format!("{telemetry}{}", config(port, ""))).await.unwrap();
    let out = client(&gw.url(""), &["stream", "get"]).await;
    assert!(out.get("fatal").is_none(), "{out}");
    let task = out["stream"]["taskId"].as_str().unwrap().to_string();
    gw.stop().await; // flushes the exporters
    let logs = collector.logs();
    let get = logs
        .iter()
        .find(|r| log_attr(r, "a2a.method").as_deref() == Some("GetTask"))
        .unwrap_or_else(|| panic!("no GetTask record: {logs:#?}"));
    assert_eq!(log_attr(get, "a2a.task_id").as_deref(), Some(task.as_str()));
    assert_eq!(log_attr(get, "proto").as_deref(), Some("a2a"), "the backend variable");
    assert!(logs.iter().any(|r| log_attr(r, "a2a.method").as_deref() == Some("SendStreamingMessage")));
    let spans = collector.spans();
    let span = spans.iter().find(|s| s.name == "GetTask").unwrap_or_else(|| panic!("no GetTask span: {spans:#?}"));
    assert_eq!(attr(span, "a2a.method").as_deref(), Some("GetTask"));
    assert_eq!(attr(span, "a2a.task.id").as_deref(), Some(task.as_str()));
}
