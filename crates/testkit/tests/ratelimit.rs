//! `localRateLimit` end to end: a route-wide limit answers 429 with `Retry-After` and rate-limit
//! headers; keyed limits (per caller, per tool) answer MCP requests with a JSON-RPC error at
//! HTTP 200 and count a batch per request. Every fill interval is an hour, so no refill can
//! happen while a test runs (refill itself is tested on tokio's paused clock in the gateway).

use agw_testkit::client::McpClient;
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::jwt::{Alg, TestKey};
use agw_testkit::recorder::Recorder;
use agw_testkit::{node, reference};
use http::StatusCode;
use serde_json::{Value, json};

const QUIET: &str = "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n";

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

/// The rate-limit error of a JSON-RPC response, if that is what it is.
fn limited(resp: &Value) -> Option<&Value> {
    resp.get("error").filter(|e| e["code"] == -32029)
}

#[tokio::test]
async fn a_route_wide_limit_answers_429_with_headers_after_its_burst() {
    let upstream = Recorder::start().await.unwrap();
    // Four HTTP requests: `initialize`, `notifications/initialized` and two calls.
    let policies = "      policies:\n        localRateLimit:\n        - maxTokens: 4\n          tokensPerFill: 1\n          fillInterval: 1h\n";
    let gw = Gateway::start(&format!("{QUIET}{}", mcp_route(&upstream.url(), policies))).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let first = c.post(&call(1, "echo")).await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("ratelimit"), Some("\"local\";r=1;t=3600"));
    assert_eq!(first.header("ratelimit-policy"), Some("\"local\";q=4;w=3600"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(c.post(&call(2, "echo")).await.unwrap().status, StatusCode::OK);
    let over = c.post(&call(3, "echo")).await.unwrap();
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = over.header("retry-after").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    assert_eq!(over.header("ratelimit").map(|h| h.starts_with("\"local\";r=0;t=")), Some(true));
    assert_eq!(over.header("x-ratelimit-limit"), Some("4"));
    assert_eq!(upstream.seen().len(), 4, "the refused request never reached the upstream");
    gw.stop().await;
}

#[tokio::test]
async fn a_per_caller_key_isolates_two_tokens_with_a_jsonrpc_error() {
    let key = TestKey::generate("k1", Alg::ES256);
    let jwks = json!({"keys": [key.jwk(false)]}).to_string();
    let token = |sub: &str| key.token(&json!({"iss": "https://idp.test", "sub": sub, "exp": 4_102_444_800u64}));
    let upstream = Recorder::start().await.unwrap();
    let policies = format!(
        "      policies:\n        jwtAuth:\n          issuer: https://idp.test\n          jwks: '{jwks}'\n        localRateLimit:\n        - maxTokens: 2\n          tokensPerFill: 1\n          fillInterval: 1h\n          key: jwt.sub\n"
    );
    let gw = Gateway::start(&format!("{QUIET}{}", mcp_route(&upstream.url(), &policies))).await.unwrap();
    // Two JSON-RPC requests each: `initialize` and one call (notifications are not counted).
    let mut alice = McpClient::new(gw.url("/mcp")).with_header("authorization", &format!("Bearer {}", token("alice")));
    let mut bob = McpClient::new(gw.url("/mcp")).with_header("authorization", &format!("Bearer {}", token("bob")));
    alice.initialize().await.unwrap();
    bob.initialize().await.unwrap();
    let ok = alice.post(&call(1, "echo")).await.unwrap();
    assert!(limited(ok.response(&json!(1)).unwrap()).is_none());
    let refused = alice.post(&call(2, "echo")).await.unwrap();
    assert_eq!(refused.status, StatusCode::OK, "an agent must be able to read the refusal");
    let error = limited(refused.response(&json!(2)).unwrap()).expect("a rate-limit error");
    assert!(error["message"].as_str().unwrap().contains("localRateLimit[0]"), "{error}");
    assert!(error["message"].as_str().unwrap().contains("retry after"), "{error}");
    assert_eq!(error["data"]["key"], "jwt.sub");
    assert_eq!(error["data"]["limit"], "localRateLimit[0]");
    assert!(error["data"]["retryAfterSeconds"].as_u64().unwrap() > 3500);
    let other = bob.post(&call(3, "echo")).await.unwrap();
    assert!(limited(other.response(&json!(3)).unwrap()).is_none(), "bob has his own token");
    gw.stop().await;
}

#[tokio::test]
async fn a_per_tool_key_counts_each_request_of_a_batch() {
    let upstream = Recorder::start().await.unwrap();
    let policies = "      policies:\n        localRateLimit:\n        - maxTokens: 3\n          tokensPerFill: 1\n          fillInterval: 1h\n          key: mcp.tool.name\n";
    let gw = Gateway::start(&format!("{QUIET}{}", mcp_route(&upstream.url(), policies))).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize_version("2025-03-26").await.unwrap(); // batches exist up to this version
    // Two calls of `echo` in one batch take two of its three tokens.
    let batch = c.post(&json!([call(1, "echo"), call(2, "echo")])).await.unwrap();
    assert!(batch.messages.iter().all(|m| limited(m).is_none()), "{:?}", batch.messages);
    // Two more do not fit in the one left: the whole batch is refused, each request told why.
    let refused = c.post(&json!([call(3, "echo"), call(4, "echo")])).await.unwrap();
    assert_eq!(refused.status, StatusCode::OK);
    for id in [3, 4] {
        assert!(limited(refused.response(&json!(id)).unwrap()).is_some(), "{:?}", refused.messages);
    }
    // ...and took nothing: the last `echo` token is still there, then it is gone.
    let last = c.post(&call(5, "echo")).await.unwrap();
    assert!(limited(last.response(&json!(5)).unwrap()).is_none());
    assert!(limited(c.post(&call(6, "echo")).await.unwrap().response(&json!(6)).unwrap()).is_some());
    // Another tool, and methods without a tool, are not counted against `echo`.
    assert!(limited(c.post(&call(7, "add")).await.unwrap().response(&json!(7)).unwrap()).is_none());
    let list = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"});
    assert!(limited(c.post(&list).await.unwrap().response(&json!(8)).unwrap()).is_none());
    gw.stop().await;
}

#[tokio::test]
async fn a_listener_limit_applies_to_its_routes_and_bad_limits_are_config_errors() {
    let upstream = Recorder::start().await.unwrap();
    let yaml = format!(
        "{QUIET}binds:\n- port: 0\n  listeners:\n  - policies:\n      localRateLimit:\n      - maxTokens: 3\n        tokensPerFill: 1\n        fillInterval: 1h\n    routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: {}\n",
        upstream.url()
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    assert_eq!(c.post(&call(1, "echo")).await.unwrap().status, StatusCode::OK);
    assert_eq!(c.post(&call(2, "echo")).await.unwrap().status, StatusCode::TOO_MANY_REQUESTS);
    gw.stop().await;

    let bad = format!(
        "{QUIET}{}",
        mcp_route(
            &upstream.url(),
            "      policies:\n        localRateLimit:\n        - maxTokens: 1\n          tokensPerFill: 1\n          fillInterval: 1h\n          key: 'jwt.sub +'\n"
        )
    );
    let err = Gateway::start(&bad).await.err().expect("a key that does not compile is refused").to_string();
    assert!(err.contains("localRateLimit[0].key"), "{err}");
}

/// The official TypeScript SDK client over a per-tool limit: the refused call is a tool-call
/// error (`McpError`) the agent can read, carrying the retry hint, not a transport failure;
/// another tool still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_sees_a_per_tool_limit_as_a_tool_call_error_with_the_retry_hint() {
    node::require_installed();
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let policies = "      policies:\n        localRateLimit:\n        - maxTokens: 1\n          tokensPerFill: 1\n          fillInterval: 1h\n          key: mcp.tool.name\n";
    let gw = Gateway::start(&format!("{QUIET}{}", mcp_route(&upstream.url("/mcp"), policies))).await.unwrap();
    let steps = [gw.url("/mcp"), "call:echo".into(), "call:echo".into(), "call:add".into()];
    let args: Vec<&str> = steps.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = node::run_script("sdk-client.mjs", &args).await;
    let out: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}\n{stderr}"));
    assert!(ok, "{out}\n{stderr}");
    assert_eq!(out["call:echo"]["result"]["content"][0]["text"], "Echo: x", "{out}");
    let error = &out["call:echo#2"]["error"];
    assert_eq!(error["name"], "McpError", "a JSON-RPC error the SDK hands to the caller: {out}");
    assert_eq!(error["code"], -32029);
    assert!(error["message"].as_str().unwrap().contains("retry after"), "{error}");
    assert!(error["data"]["retryAfterSeconds"].as_u64().is_some_and(|s| (3500..=3600).contains(&s)), "{error}");
    assert_eq!(error["data"]["key"], "mcp.tool.name");
    assert!(out["call:add"]["result"].is_object(), "another tool has its own bucket: {out}");
    gw.stop().await;
}
