//! `remoteRateLimit` on an MCP route, in-process: the test kit's rate-limit service (Envoy's
//! protocol, counters in a real Redis). Descriptors that read `mcp` count each JSON-RPC
//! request, and a refusal is a JSON-RPC error the agent can read. (Two gateway processes
//! sharing one limit: crates/agentgateway/tests/global_ratelimit.rs.)

use agw_gateway::envoy::ratelimit::unit;
use agw_testkit::client::McpClient;
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::recorder::Recorder;
use agw_testkit::rls::{Limit, RedisServer, Rls};
use http::StatusCode;
use serde_json::{Value, json};

const QUIET: &str = "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n";

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

fn limited(resp: &Value) -> Option<&Value> {
    resp.get("error").filter(|e| e["code"] == -32029)
}

#[tokio::test]
async fn a_per_tool_remote_limit_counts_each_request_and_answers_with_a_jsonrpc_error() {
    let redis = RedisServer::start().await.unwrap();
    let rls =
        Rls::start("127.0.0.1:0".parse().unwrap(), redis.addr, Limit { requests_per_unit: 1000, unit: unit::HOUR })
            .await
            .unwrap();
    let upstream = Recorder::start().await.unwrap();
    // The conditional form: POSTs are counted per tool, two per hour (the override), anything
    // else by a fallback entry the service's default limit never refuses.
    let policies = format!(
        "      policies:\n        remoteRateLimit:\n          conditional:\n          - condition: request.method == 'POST'\n            host: {rls}\n            domain: tools\n            descriptors:\n            - entries:\n              - key: tool\n                value: mcp.tool.name\n              limitOverride: \"{{'unit': 'hour', 'requestsPerUnit': 2}}\"\n          - host: {rls}\n            domain: other\n            descriptors:\n            - entries:\n              - key: any\n                value: \"'x'\"\n",
        rls = rls.host()
    );
    let gw = Gateway::start(&format!("{QUIET}{}", mcp_route(&upstream.url(), &policies))).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    assert_eq!(rls.calls(), 0, "initialize names no tool: nothing to count, the service is not asked");

    for id in 1..=2 {
        let ok = c.post(&call(id, "echo")).await.unwrap();
        assert_eq!(ok.status, StatusCode::OK);
        assert!(limited(&ok.messages[0]).is_none(), "{:?}", ok.messages);
        assert_eq!(ok.header("x-ratelimit-remaining"), Some(if id == 1 { "1" } else { "0" }));
    }
    let over = c.post(&call(3, "echo")).await.unwrap();
    assert_eq!(over.status, StatusCode::OK, "an agent reads a JSON-RPC error; a 429 would be a transport failure");
    let e = limited(&over.messages[0]).expect("a rate-limit error");
    assert_eq!(over.messages[0]["id"], 3);
    assert_eq!(e["data"]["limit"], "remoteRateLimit.conditional[0]");
    let retry = e["data"]["retryAfterSeconds"].as_u64().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");

    // Another tool has its own window; a batch counts each request it holds.
    assert!(limited(&c.post(&call(4, "add")).await.unwrap().messages[0]).is_none());
    let batch = c.post(&json!([call(5, "add"), call(6, "add")])).await.unwrap();
    assert_eq!(batch.messages.len(), 2);
    assert!(batch.messages.iter().all(|m| limited(m).is_some()), "{:?}", batch.messages);

    // Not a POST: the fallback entry applies.
    let before = rls.calls();
    let _ = agw_testkit::client::http("GET", &gw.url("/mcp"), &[], "").await.unwrap();
    assert_eq!(rls.calls(), before + 1);
    gw.stop().await;
}

#[tokio::test]
async fn the_service_unreachable_fails_closed_by_default() {
    let upstream = Recorder::start().await.unwrap();
    // A port nothing listens on.
    let port = agw_testkit::node::free_port().await;
    let policies = format!(
        "      policies:\n        remoteRateLimit:\n          host: 127.0.0.1:{port}\n          domain: d\n          descriptors:\n          - entries:\n            - key: k\n              value: request.path\n"
    );
    let gw = Gateway::start(&format!("{QUIET}{}", mcp_route(&upstream.url(), &policies))).await.unwrap();
    let (status, body) = agw_testkit::client::http("POST", &gw.url("/mcp"), &[], "{}").await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("rate-limit service"), "{body}");
    assert!(upstream.seen().is_empty());
    gw.stop().await;
}
