//! `mcpGuardrails` end to end against the test kit's `ExtMcp` service: a call refused, a call's
//! arguments rewritten (the upstream echoes what it got), a result redacted, a list filtered;
//! the methods table picks the phase; the metadata and the filtered headers the service sees;
//! `failOpen` and `failClosed` with the service down or answering garbage. On one target (the
//! passthrough's backend), on two (the multiplexer) and on a stdio child.

use agw_testkit::client::{McpClient, first_text};
use agw_testkit::guardrails::GuardrailServer;
use agw_testkit::harness::Gateway;
use agw_testkit::recorder::Recorder;
use agw_testkit::{reference, serve};
use serde_json::{Value, json};

const QUIET: &str = "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n";

async fn upstream() -> serve::Server {
    reference::serve("127.0.0.1:0".parse().unwrap(), reference::Options::default()).await.unwrap()
}

/// A processor at `host` (YAML for `processors:`).
fn processor(host: &str, failure_mode: &str) -> String {
    format!(
        "          - kind: remote\n            host: {host}\n            failureMode: {failure_mode}\n            methods:\n              tools/call: full\n              tools/list: response\n              '*/list': request\n              '*': 'off'\n            metadata:\n              tenant: 'request.headers[\"x-tenant\"]'\n              broken: 'request.headers[\"absent\"].size()'\n            requestHeaders:\n              allowed: [x-tenant, authorization, ':method']\n              disallowed: [authorization]\n"
    )
}

/// A route at `path` with `targets` (name, URL) and the processors.
fn route(path: &str, targets: &[(&str, String)], processors: &str) -> String {
    let targets: String = targets
        .iter()
        .map(|(n, url)| format!("          - name: {n}\n            mcp:\n              host: {url}\n"))
        .collect();
    format!(
        "    - matches:\n      - path:\n          pathPrefix: {path}\n      policies:\n        mcpGuardrails:\n          processors:\n{processors}      backends:\n      - mcp:\n          targets:\n{targets}"
    )
}

fn config(routes: &[String]) -> String {
    format!("{QUIET}binds:\n- port: 0\n  listeners:\n  - routes:\n{}", routes.concat())
}

fn error_of(response: &Value) -> (i64, String) {
    let e = &response["error"];
    (e["code"].as_i64().unwrap_or_default(), e["message"].as_str().unwrap_or_default().to_string())
}

/// What every backend shape must do; `echo` is the tool's name as the client sees it,
/// `targets` the session's targets.
async fn exercise(c: &McpClient, guard: &GuardrailServer, echo: &str, targets: &[&str]) {
    let ok = c.call_tool(echo, json!({"message": "hello"})).await.unwrap();
    assert_eq!(first_text(&ok), Some("Echo: hello"), "{ok}");

    // Refused before it goes upstream: no response check follows.
    let answers = guard.checks("response", "tools/call").len();
    let refused = c.call_tool(echo, json!({"message": "a FORBIDDEN word"})).await.unwrap();
    assert_eq!(error_of(&refused), (-32001, "forbidden marker in arguments".into()), "{refused}");
    assert_eq!(guard.checks("response", "tools/call").len(), answers, "the upstream was never asked");

    // Rewritten: the upstream echoes what the guardrail sent.
    let rewritten = c.call_tool(echo, json!({"message": "please rewrite"})).await.unwrap();
    assert_eq!(first_text(&rewritten), Some("Echo: rewritten by the guardrail"), "{rewritten}");

    // Redacted on the way back.
    let redacted = c.call_tool(echo, json!({"message": "the SECRET is out"})).await.unwrap();
    assert_eq!(first_text(&redacted), Some("Echo: the [redacted] is out"), "{redacted}");

    // A rewrite that is not JSON: a protocol violation, failClosed.
    let garbage = c.call_tool(echo, json!({"message": "garbage"})).await.unwrap();
    assert_eq!(error_of(&garbage), (-32603, "mcpGuardrails check failed".into()), "{garbage}");

    // What the service saw of a call: the upstream's own names, the target, the metadata
    // that evaluated, the headers allowed.
    let seen = guard.checks("request", "tools/call").pop().unwrap();
    assert_eq!(seen.service_names, [targets[0]]);
    assert_eq!(seen.payload.as_ref().unwrap()["name"], "echo", "not prefixed");
    assert_eq!(seen.metadata, json!({"tenant": "acme"}), "a key that cannot be evaluated is left out");
    let names: Vec<&str> = seen.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, [":method", "x-tenant"], "allowed minus disallowed");
    assert_eq!(seen.header("x-tenant"), Some("acme"));

    // The list is filtered by the response phase, once for the merged answer.
    let tools = c.tool_names().await.unwrap();
    assert!(tools.iter().any(|t| t == echo), "{tools:?}");
    assert!(!tools.iter().any(|t| t.ends_with("printEnv")), "{tools:?}");
    assert!(guard.checks("request", "tools/list").is_empty(), "tools/list: response only (exact key)");
    let listed = guard.checks("response", "tools/list").pop().unwrap();
    assert_eq!(listed.service_names, targets);

    // `*/list` (request) for prompts: checked without params; `*` off for ping.
    c.request("prompts/list", json!({})).await.unwrap();
    let prompts = guard.checks("request", "prompts/list").pop().expect("prompts/list was checked");
    assert_eq!((prompts.payload, prompts.service_names.len()), (None, targets.len()));
    assert!(guard.checks("response", "prompts/list").is_empty());
    let before = guard.seen().len();
    c.request("ping", json!({})).await.unwrap();
    assert_eq!(guard.seen().len(), before, "ping is off");
}

#[tokio::test]
async fn one_target_checks_calls_and_lists() {
    let guard = GuardrailServer::start().await.unwrap();
    let up = upstream().await;
    let gw = Gateway::start(&config(&[route(
        "/",
        &[("upstream", up.url("/mcp"))],
        &processor(&guard.host(), "failClosed"),
    )]))
    .await
    .unwrap();
    let mut c = McpClient::new(gw.url("/mcp")).with_header("x-tenant", "acme").with_header("authorization", "Bearer t");
    c.initialize().await.unwrap();
    assert!(guard.seen().is_empty(), "initialize is not checked");
    exercise(&c, &guard, "echo", &["upstream"]).await;

    // A call no processor wants stays on the passthrough (answered as the upstream answers).
    let add = c.call_tool("add", json!({"a": 1, "b": 2})).await.unwrap();
    assert_eq!(first_text(&add), Some("The sum of 1 and 2 is 3."), "{add}");
    gw.stop().await;
}

#[tokio::test]
async fn two_targets_check_each_call_at_its_target() {
    let guard = GuardrailServer::start().await.unwrap();
    let (a, b) = (upstream().await, upstream().await);
    let targets = [("a", a.url("/mcp")), ("b", b.url("/mcp"))];
    let gw = Gateway::start(&config(&[route("/", &targets, &processor(&guard.host(), "failClosed"))])).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp")).with_header("x-tenant", "acme").with_header("authorization", "Bearer t");
    c.initialize().await.unwrap();
    exercise(&c, &guard, "a_echo", &["a", "b"]).await;
    let at_b = c.call_tool("b_echo", json!({"message": "please rewrite"})).await.unwrap();
    assert_eq!(first_text(&at_b), Some("Echo: rewritten by the guardrail"));
    assert_eq!(guard.checks("request", "tools/call").pop().unwrap().service_names, ["b"]);
    gw.stop().await;
}

#[tokio::test]
async fn the_service_down_fails_open_or_closed_as_configured() {
    let guard = GuardrailServer::start().await.unwrap();
    let host = guard.host();
    let (a, b) = (upstream().await, upstream().await);
    let one = |path: &str, mode: &str| route(path, &[("upstream", a.url("/mcp"))], &processor(&host, mode));
    let two = route("/two", &[("a", a.url("/mcp")), ("b", b.url("/mcp"))], &processor(&host, "failOpen"));
    let gw = Gateway::start(&config(&[one("/open", "failOpen"), one("/closed", "failClosed"), two])).await.unwrap();
    let mut open = McpClient::new(gw.url("/open/mcp"));
    let mut closed = McpClient::new(gw.url("/closed/mcp"));
    let mut two = McpClient::new(gw.url("/two/mcp"));
    for c in [&mut open, &mut closed, &mut two] {
        c.initialize().await.unwrap();
    }
    guard.stop().await;

    let passed = open.call_tool("echo", json!({"message": "FORBIDDEN but nobody checks"})).await.unwrap();
    assert_eq!(first_text(&passed), Some("Echo: FORBIDDEN but nobody checks"), "{passed}");
    assert!(open.tool_names().await.unwrap().iter().any(|t| t == "printEnv"), "unfiltered: failOpen");
    let passed = two.call_tool("b_echo", json!({"message": "hi"})).await.unwrap();
    assert_eq!(first_text(&passed), Some("Echo: hi"), "{passed}");

    let refused = closed.call_tool("echo", json!({"message": "hi"})).await.unwrap();
    assert_eq!(error_of(&refused), (-32603, "mcpGuardrails check failed".into()), "{refused}");
    let (_, listed) = closed.request_with("tools/list", json!({}), None).await.unwrap();
    assert_eq!(error_of(&listed).0, -32603, "{listed}");
    gw.stop().await;
}

#[tokio::test]
async fn notifications_with_guarded_methods_are_dropped_and_calls_carry_header_changes() {
    let guard = GuardrailServer::start().await.unwrap();
    let up = Recorder::start().await.unwrap();
    let gw = Gateway::start(&config(&[route("/", &[("upstream", up.url())], &processor(&guard.host(), "failClosed"))]))
        .await
        .unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let note = json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "FORBIDDEN"}}});
    let ex = c.post(&note).await.unwrap();
    assert_eq!(ex.status, 202);
    let forbidden = |s: &agw_testkit::recorder::Seen| s.body.windows(9).any(|w| w == b"FORBIDDEN");
    assert!(!up.seen().iter().any(forbidden), "never reaches the upstream");
    // A call let through carries the processor's header changes upstream.
    let c = c.with_header("user-agent", "sdk/1");
    c.call_tool("echo", json!({"message": "tag me"})).await.unwrap();
    let sent = up.last();
    assert_eq!(sent.headers.get("x-guardrail").map(|v| v.as_bytes()), Some(&b"checked"[..]));
    assert!(sent.headers.get("user-agent").is_none(), "removed");
    // Real notifications still go through.
    let ex = c.post(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})).await.unwrap();
    assert_eq!(ex.status, 202);
    assert!(up.seen().iter().any(|s| s.body.windows(10).any(|w| w == b"list_chang")));
    gw.stop().await;
}

#[tokio::test]
async fn processors_run_in_order_and_the_backends_policy_replaces_the_routes() {
    let (first, second) = (GuardrailServer::start().await.unwrap(), GuardrailServer::start().await.unwrap());
    let up = upstream().await;
    let one = |host: &str| format!("      - kind: remote\n        {host}\n        methods: {{tools/call: full}}\n");
    // The route's processor is nowhere (failClosed): the backend's two replace it.
    let config = format!(
        "{QUIET}binds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        mcpGuardrails:\n          processors:\n          - kind: remote\n            host: 127.0.0.1:1\n            methods: {{'*': full}}\n      backends:\n      - backend: guarded\nbackends:\n- name: guard-one\n  host: {}\n- name: guarded\n  mcp:\n    targets:\n    - name: upstream\n      mcp:\n        host: {}\n  policies:\n    mcpGuardrails:\n      processors:\n{}{}",
        first.host(),
        up.url("/mcp"),
        one("backend: guard-one"),
        one(&format!("host: {}", second.host())),
    );
    let gw = Gateway::start(&config).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();

    let rewritten = c.call_tool("echo", json!({"message": "please rewrite"})).await.unwrap();
    assert_eq!(first_text(&rewritten), Some("Echo: rewritten by the guardrail"), "{rewritten}");
    let handed = second.checks("request", "tools/call").pop().unwrap();
    assert_eq!(
        handed.payload.unwrap()["arguments"]["message"],
        "rewritten by the guardrail",
        "the rewrite is handed on"
    );

    let redacted = c.call_tool("echo", json!({"message": "a SECRET"})).await.unwrap();
    assert_eq!(first_text(&redacted), Some("Echo: a [redacted]"));
    let seen = second.checks("response", "tools/call").pop().unwrap();
    assert_eq!(seen.payload.unwrap()["content"][0]["text"], "Echo: a [redacted]", "the second sees the first's result");

    let asked = second.seen().len();
    let refused = c.call_tool("echo", json!({"message": "FORBIDDEN"})).await.unwrap();
    assert_eq!(error_of(&refused).0, -32001, "{refused}");
    assert_eq!(second.seen().len(), asked, "the first refusal answers the call");
    gw.stop().await;
}

#[tokio::test]
async fn a_stdio_target_is_checked_like_any_other() {
    let guard = GuardrailServer::start().await.unwrap();
    let server = env!("CARGO_BIN_EXE_mcp-example-server");
    let config = format!(
        "{QUIET}binds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        mcpGuardrails:\n          processors:\n{}      backends:\n      - mcp:\n          targets:\n          - name: child\n            stdio:\n              cmd: '{server}'\n              args: ['--stdio']\n",
        processor(&guard.host(), "failClosed")
    );
    let gw = Gateway::start(&config).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp")).with_header("x-tenant", "acme");
    c.initialize().await.unwrap();
    let rewritten = c.call_tool("echo", json!({"message": "please rewrite"})).await.unwrap();
    assert_eq!(first_text(&rewritten), Some("Echo: rewritten by the guardrail"), "{rewritten}");
    let redacted = c.call_tool("echo", json!({"message": "SECRET"})).await.unwrap();
    assert_eq!(first_text(&redacted), Some("Echo: [redacted]"), "{redacted}");
    let refused = c.call_tool("echo", json!({"message": "FORBIDDEN"})).await.unwrap();
    assert_eq!(error_of(&refused).0, -32001, "{refused}");
    assert_eq!(guard.checks("request", "tools/call").pop().unwrap().service_names, ["child"]);
    assert!(!c.tool_names().await.unwrap().iter().any(|t| t == "printEnv"));
    c.delete().await.unwrap();
    gw.stop().await;
}
