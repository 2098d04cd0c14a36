//! `extAuthz` end to end against the test kit's authorization service (both of Envoy's
//! protocols): allow, deny with the service's status, headers and body, metadata read by a
//! CEL rule, the decision cache, the service down, and the MCP call the service is told about.

use agw_testkit::authz::AuthzServer;
use agw_testkit::client::{McpClient, http};
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::recorder::Recorder;
use serde_json::{Value, json};

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
const QUIET: &str = "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n";

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

#[tokio::test]
async fn grpc_checks_name_the_mcp_call_are_cached_and_feed_rules() {
    let authz = AuthzServer::start().await.unwrap();
    let upstream = Recorder::start().await.unwrap();
    let policies = format!(
        "      policies:\n        extAuthz:\n          host: {}\n          includeMcpArguments: true\n          failureMode:\n            denyWithStatus: 503\n          cache:\n            key:\n            - request.headers[\"authorization\"]\n            - mcp.tool.name\n            ttl: 60s\n        authorization:\n          rules:\n          - 'extauthz.tier == \"gold\"'\n",
        authz.host()
    );
    let gw = Gateway::start(&format!("{QUIET}{}", mcp_route(&upstream.url(), &policies))).await.unwrap();

    let mut gold = McpClient::new(gw.url("/mcp")).with_header("authorization", "Bearer gold");
    gold.initialize().await.unwrap();
    let init = authz.seen().into_iter().find(|s| s.context.get("mcp.method").map(String::as_str) == Some("initialize"));
    let init = init.expect("initialize was checked");
    assert!(init.grpc);
    assert_eq!(init.headers.get(":method").map(String::as_str), Some("POST"), "gRPC sends every header by default");
    assert_eq!(init.headers.get("authorization").map(String::as_str), Some("Bearer gold"));

    let ok = gold.post(&call(1, "echo", json!({"message": "héllo"}))).await.unwrap();
    assert_eq!(ok.status, 200);
    assert!(ok.messages[0].get("result").is_some(), "{:?}", ok.messages);
    assert_eq!(ok.header("x-authz"), Some("grpc"), "the service's response headers reach the client");
    let seen = authz.seen().pop().unwrap();
    assert_eq!(seen.context.get("mcp.method").map(String::as_str), Some("tools/call"));
    assert_eq!(seen.context.get("mcp.tool.name").map(String::as_str), Some("echo"));
    assert_eq!(seen.context.get("mcp.target").map(String::as_str), Some("upstream"));
    let arguments: Value = serde_json::from_str(&seen.context["mcp.tool.arguments"]).unwrap();
    assert_eq!(arguments, json!({"message": "héllo"}), "arguments as JSON (non-ASCII escaped)");

    // The same caller and tool again: answered from the cache.
    let calls = authz.calls();
    assert_eq!(gold.post(&call(2, "echo", json!({"message": "again"}))).await.unwrap().status, 200);
    assert_eq!(authz.calls(), calls, "a cache hit does not ask the service");

    // Denied by tool: the service's status and body.
    let denied = gold.post(&call(3, "printEnv", json!({}))).await.unwrap();
    assert_eq!(denied.status, 403);
    assert_eq!(&denied.body[..], b"tool refused");

    // Allowed by the service, but its metadata does not pass the CEL rule.
    let silver = McpClient::new(gw.url("/mcp")).with_header("authorization", "Bearer silver");
    let refused = silver.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.unwrap();
    assert_eq!(refused.status, 403, "extauthz.tier is silver");

    // Denied with headers: passed to the client as sent.
    let bad = McpClient::new(gw.url("/mcp")).with_header("authorization", "Bearer bad");
    let denied = bad.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.unwrap();
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer realm=\"authz\""));
    assert_eq!(&denied.body[..], br#"{"denied":"bad token"}"#);
    assert_eq!(upstream.seen().iter().filter(|s| s.body.windows(8).any(|w| w == b"printEnv")).count(), 0);

    // The service down: `failureMode: {denyWithStatus: 503}` (a tool not in the cache).
    authz.stop().await;
    let down = gold.post(&call(4, "add", json!({"a": 1, "b": 2}))).await.unwrap();
    assert_eq!(down.status, 503);
    // Cached decisions still stand.
    assert_eq!(gold.post(&call(5, "echo", json!({"message": "cached"}))).await.unwrap().status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn http_checks_pass_headers_upstream_and_denials_to_the_client() {
    let authz = AuthzServer::start().await.unwrap();
    let upstream = Recorder::start().await.unwrap();
    let config = format!(
        "{QUIET}binds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        extAuthz:\n          host: {authz}\n          protocol:\n            http:\n              path: '\"/check\" + request.path'\n              includeResponseHeaders: [x-authz-user]\n              metadata:\n                tier: response.headers[\"x-tier\"]\n        authorization:\n          rules:\n          - 'extauthz.tier == \"gold\"'\n      backends:\n      - host: {up}\n",
        authz = authz.host(),
        up = upstream.server.addr
    );
    let gw = Gateway::start(&config).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let (status, _) = http("POST", &gw.url("/mcp"), &[("authorization", "Bearer gold")], body).await.unwrap();
    assert_eq!(status, 200);
    let last = upstream.last();
    assert_eq!(last.headers["x-authz-user"], "alice", "includeResponseHeaders reach the backend");
    let seen = authz.seen().pop().unwrap();
    assert!(!seen.grpc);
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/check/mcp"));
    assert_eq!(seen.headers.get("authorization").map(String::as_str), Some("Bearer gold"));
    assert!(seen.body.is_empty(), "no body unless includeRequestBody");

    let (status, _) = http("POST", &gw.url("/mcp"), &[("authorization", "Bearer silver")], body).await.unwrap();
    assert_eq!(status, 403, "the metadata rule refuses silver");

    let (status, text) = http("POST", &gw.url("/mcp"), &[("authorization", "Bearer bad")], body).await.unwrap();
    assert_eq!((status, text.as_str()), (401, r#"{"denied":"bad token"}"#));

    authz.stop().await;
    let (status, _) = http("POST", &gw.url("/mcp"), &[("authorization", "Bearer gold")], body).await.unwrap();
    assert_eq!(status, 403, "failureMode defaults to deny");
    gw.stop().await;
}

#[tokio::test]
async fn http_checks_carry_the_mcp_call_in_headers_and_the_body_when_asked() {
    let authz = AuthzServer::start().await.unwrap();
    let upstream = Recorder::start().await.unwrap();
    let policies = format!(
        "      policies:\n        extAuthz:\n          host: {}\n          includeRequestHeaders: [authorization, ':method', x-mcp-tool]\n          includeRequestBody:\n            maxRequestBytes: 4096\n          protocol:\n            http: {{}}\n",
        authz.host()
    );
    let gw = Gateway::start(&format!("{QUIET}{}", mcp_route(&upstream.url(), &policies))).await.unwrap();
    // A client naming a tool itself is not believed: only the gateway names the MCP call.
    let mut c = McpClient::new(gw.url("/mcp"))
        .with_header("authorization", "Bearer gold")
        .with_header("x-mcp-tool", "printEnv");
    c.initialize().await.unwrap();
    assert_eq!(c.post(&call(9, "echo", json!({"message": "x"}))).await.unwrap().status, 200);
    let seen = authz.seen().pop().unwrap();
    assert_eq!(seen.context.get("mcp.tool.name").map(String::as_str), Some("echo"));
    assert_eq!(seen.context.get("mcp.target").map(String::as_str), Some("upstream"));
    assert!(!seen.context.contains_key("mcp.tool.arguments"), "arguments only with includeMcpArguments");
    assert!(seen.body.contains("\"echo\""), "the request body: {}", seen.body);
    assert_eq!(seen.headers.get("x-envoy-auth-partial-body").map(String::as_str), Some("false"));
    let denied = c.post(&call(10, "printEnv", json!({}))).await.unwrap();
    assert_eq!(denied.status, 403);
    gw.stop().await;
}

#[tokio::test]
async fn a_listener_check_in_the_conditional_form_runs_before_every_route() {
    let authz = AuthzServer::start().await.unwrap();
    let upstream = Recorder::start().await.unwrap();
    let dead = agw_testkit::node::free_port().await;
    let config = format!(
        "{QUIET}binds:\n- port: 0\n  listeners:\n  - policies:\n      extAuthz:\n        conditional:\n        - condition: request.path.startsWith('/open')\n          host: 127.0.0.1:{dead}\n          failureMode: allow\n        - host: {authz}\n    routes:\n    - backends:\n      - host: {up}\n",
        authz = authz.host(),
        up = upstream.server.addr
    );
    let gw = Gateway::start(&config).await.unwrap();
    let (status, _) = http("POST", &gw.url("/open/x"), &[("authorization", "Bearer bad")], PING).await.unwrap();
    assert_eq!(status, 200, "the first entry: its service is down and it fails open");
    assert_eq!(authz.calls(), 0);
    let (status, _) = http("POST", &gw.url("/x"), &[("authorization", "Bearer bad")], PING).await.unwrap();
    assert_eq!(status, 401, "the fallback entry asks the service, which denies");
    let (status, _) = http("POST", &gw.url("/x"), &[("authorization", "Bearer gold")], PING).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(upstream.last().headers["x-authz-user"], "alice", "gRPC ok_response headers reach the backend");
    gw.stop().await;
}
