//! Several targets behind one route (Streamable HTTP, legacy SSE, stdio), id remapping,
//! sessions any replica can resume, stdio children, legacy SSE clients, stateless mode.

use std::time::Duration;

use agw_testkit::client::{McpClient, first_text};
use agw_testkit::harness::Gateway;
use agw_testkit::{node, reference, serve};
use http::StatusCode;
use serde_json::{Value, json};

const EXAMPLE_SERVER: &str = env!("CARGO_BIN_EXE_mcp-example-server");

async fn reference_named(name: &str) -> serve::Server {
    reference::serve(
        "127.0.0.1:0".parse().unwrap(),
        reference::Options { name: Some(name.into()), ..Default::default() },
    )
    .await
    .unwrap()
}

/// A route with `targets` (YAML list items, indented for `targets:`) and extra backend keys.
fn route(targets: &str, backend_extra: &str) -> String {
    format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n{backend_extra}          targets:\n{targets}"
    )
}

fn http_target(name: &str, url: &str) -> String {
    format!("          - name: {name}\n            mcp:\n              host: {url}\n")
}

fn stdio_target(name: &str, cmd: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "          - name: {name}\n            stdio:\n              cmd: '{cmd}'\n              args: [{}]\n",
        args.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_targets_over_three_transports() {
    let reference = reference_named("reference").await;
    let (_http, http_url) = node::server_everything_http().await;
    let (_sse, sse_url) = node::server_everything_sse().await;
    let targets = format!(
        "{}{}          - name: legacy\n            sse:\n              host: {sse_url}\n{}",
        http_target("ref", &reference.url("/mcp")),
        http_target("http", &http_url),
        stdio_target("stdio", "node", &[&node::server_everything_js(), "stdio"]),
    );
    let gw = Gateway::start(&route(&targets, "")).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    let init = c.initialize().await.unwrap();
    assert_eq!(init["serverInfo"]["name"], "agentgateway", "a merged initialize names the gateway");
    assert!(init["instructions"].as_str().unwrap().contains("ref: Reference MCP server"), "{init}");

    let tools = c.tool_names().await.unwrap();
    for t in ["ref_echo", "ref_add", "http_echo", "http_get-sum", "legacy_echo", "stdio_echo", "stdio_get-env"] {
        assert!(tools.contains(&t.to_string()), "{t} missing from {tools:?}");
    }
    for target in ["ref", "http", "legacy", "stdio"] {
        let resp = c.call_tool(&format!("{target}_echo"), json!({"message": target})).await.unwrap();
        assert_eq!(first_text(&resp), Some(format!("Echo: {target}").as_str()), "{resp}");
    }
    let sum = c.call_tool("stdio_get-sum", json!({"a": 2, "b": 5})).await.unwrap();
    assert!(first_text(&sum).unwrap().contains('7'), "{sum}");

    let resources = c.request("resources/list", json!({})).await.unwrap();
    let uris: Vec<&str> = resources["resources"].as_array().unwrap().iter().filter_map(|r| r["uri"].as_str()).collect();
    assert!(uris.contains(&"ref+test://static-text"), "{uris:?}");
    for target in ["http", "legacy", "stdio"] {
        let uri = uris
            .iter()
            .find(|u| u.starts_with(&format!("{target}+")))
            .unwrap_or_else(|| panic!("no {target} resource in {uris:?}"));
        let read = c.request("resources/read", json!({"uri": uri})).await.unwrap();
        assert!(read["contents"][0]["uri"].is_string(), "{read}");
    }
    let read = c.request("resources/read", json!({"uri": "ref+test://static-text"})).await.unwrap();
    assert_eq!(read["contents"][0]["text"], "This is the content of the static text resource.");

    let prompts = c.request("prompts/list", json!({})).await.unwrap();
    let names: Vec<&str> = prompts["prompts"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    for target in ["ref", "http", "legacy", "stdio"] {
        let name = names
            .iter()
            .find(|n| n.starts_with(&format!("{target}_")) && !n.contains("args") && !n.contains("argument"))
            .unwrap_or_else(|| panic!("no {target} prompt in {names:?}"));
        let got = c.request_with("prompts/get", json!({"name": name, "arguments": {}}), None).await.unwrap().1;
        assert!(got.get("result").is_some() || got["error"]["code"] == -32602, "{name}: {got}");
    }
    let got = c.request("prompts/get", json!({"name": "ref_test_simple_prompt"})).await.unwrap();
    assert_eq!(got["messages"][0]["content"]["text"], "This is a simple prompt for testing.");

    assert_eq!(c.call_tool("nobody_echo", json!({})).await.unwrap()["error"]["message"], "Unknown tool: nobody_echo");
    assert!(c.delete().await.unwrap().status.is_success());
}

#[tokio::test]
async fn same_request_ids_from_two_targets_never_collide() {
    let a = reference_named("a").await;
    let b = reference_named("b").await;
    let gw = Gateway::start(&route(
        &format!("{}{}", http_target("a", &a.url("/mcp")), http_target("b", &b.url("/mcp"))),
        "",
    ))
    .await
    .unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let run = |client: McpClient, target: &'static str| async move {
        let mut seen_ids = Vec::new();
        let mut handler = |req: &Value| {
            seen_ids.push(req["id"].clone());
            let prompt = req["params"]["messages"][0]["content"]["text"].as_str().unwrap_or_default().to_string();
            json!({"model": "m", "role": "assistant", "content": {"type": "text", "text": format!("answer to {prompt}")}})
        };
        let (_, resp) = client
            .request_with(
                "tools/call",
                json!({"name": format!("{target}_test_sampling"), "arguments": {"prompt": format!("from-{target}")}}),
                Some(&mut handler),
            )
            .await
            .unwrap();
        (resp, seen_ids)
    };
    let ((ra, ida), (rb, idb)) = tokio::join!(run(c.same_session(), "a"), run(c.same_session(), "b"));
    assert!(first_text(&ra).unwrap().contains("answer to from-a"), "{ra}");
    assert!(first_text(&rb).unwrap().contains("answer to from-b"), "{rb}");
    assert_eq!(ida.len(), 1);
    assert_eq!(idb.len(), 1);
    let (ia, ib) = (ida[0].as_str().unwrap(), idb[0].as_str().unwrap());
    assert!(ia.starts_with("a:") && ib.starts_with("b:"), "ids name their target: {ia} {ib}");
    assert_eq!(ia.split_once(':').unwrap().1, ib.split_once(':').unwrap().1, "both targets used the same id");
}

const KEY: &str = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b";

#[tokio::test]
async fn any_replica_resumes_a_sealed_session() {
    let a = reference_named("a").await;
    let b = reference_named("b").await;
    let targets = format!("{}{}", http_target("a", &a.url("/mcp")), http_target("b", &b.url("/mcp")));
    let yaml = format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  session:\n    key: {KEY}\n{}",
        route(&targets, "")
    );
    let gw1 = Gateway::start(&yaml).await.unwrap();
    let gw2 = Gateway::start(&yaml).await.unwrap();
    let mut c1 = McpClient::new(gw1.url("/mcp"));
    c1.initialize().await.unwrap();
    let session = c1.session.clone().unwrap();

    let c2 = McpClient::new(gw2.url("/mcp")).with_session(&session);
    let tools = c2.tool_names().await.unwrap();
    assert!(tools.contains(&"a_echo".to_string()) && tools.contains(&"b_echo".to_string()));
    assert_eq!(first_text(&c2.call_tool("b_echo", json!({"message": "on gw2"})).await.unwrap()), Some("Echo: on gw2"));
    assert_eq!(
        first_text(&c1.call_tool("a_echo", json!({"message": "back on gw1"})).await.unwrap()),
        Some("Echo: back on gw1")
    );

    // The id is sealed: it does not show the upstream ids, and a flipped byte is refused.
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&session).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("\"t\""), "sealed ids are not readable JSON");
    for i in [0, raw.len() / 2, raw.len() - 1] {
        let mut flipped = raw.clone();
        flipped[i] ^= 0x40;
        let forged = McpClient::new(gw2.url("/mcp"))
            .with_session(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&flipped));
        let ex = forged.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await.unwrap();
        assert_eq!(ex.status, StatusCode::NOT_FOUND, "flipped byte {i}");
        assert_eq!(ex.messages[0]["error"]["code"], -32001);
    }
    // A gateway with another key does not know the session.
    let other = yaml.replace(KEY, &KEY.replace('a', "b"));
    let gw3 = Gateway::start(&other).await.unwrap();
    let c3 = McpClient::new(gw3.url("/mcp")).with_session(&session);
    assert_eq!(
        c3.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await.unwrap().status,
        StatusCode::NOT_FOUND
    );
}

/// Children of this test process running the example server.
fn example_children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let ppid = after.split_whitespace().nth(1).unwrap_or("");
            let cmd = std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default();
            ppid == me && cmd.contains("mcp-example-server")
        })
        .count()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn stdio_children_live_as_long_as_their_sessions() {
    assert_eq!(example_children(), 0);
    let targets = stdio_target("local", EXAMPLE_SERVER, &["--stdio", "--name", "child"]);
    let yaml = format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  mcp:\n    sessionTtl: 1s\n{}",
        route(&targets, "")
    );
    let gw = Gateway::start(&yaml).await.unwrap();

    let mut one = McpClient::new(gw.url("/mcp"));
    assert_eq!(one.initialize().await.unwrap()["serverInfo"]["name"], "child");
    let mut two = McpClient::new(gw.url("/mcp"));
    two.initialize().await.unwrap();
    assert_eq!(example_children(), 2, "a child per session");
    assert_eq!(first_text(&one.call_tool("echo", json!({"message": "x"})).await.unwrap()), Some("Echo: x"));

    assert!(one.delete().await.unwrap().status.is_success());
    assert_eq!(example_children(), 1, "ending a session kills its child");

    // An idle session expires (sessionTtl: 1s) and takes its child with it; the session id
    // still works: the child is started again and initialized with the stored params.
    until("the idle child is gone", example_children_is(0)).await;
    assert_eq!(first_text(&two.call_tool("echo", json!({"message": "again"})).await.unwrap()), Some("Echo: again"));
    assert_eq!(example_children(), 1);

    gw.stop().await;
    assert_eq!(example_children(), 0, "stopping the gateway kills every child");
}

fn example_children_is(n: usize) -> impl FnMut() -> bool {
    move || example_children() == n
}

#[tokio::test]
async fn legacy_sse_clients_are_served() {
    let reference = reference_named("ref").await;
    let gw = Gateway::start(&route(&http_target("only", &reference.url("/mcp")), "")).await.unwrap();
    let stream_client = McpClient::new(gw.url("/sse"));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Option<String>, String)>(16);
    let url = gw.url("/sse");
    tokio::spawn(async move {
        use http_body_util::BodyExt;
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>();
        let resp = client
            .request(http::Request::get(url).header("accept", "text/event-stream").body(Default::default()).unwrap())
            .await
            .unwrap();
        let mut body = resp.into_body();
        let mut decoder = agw_mcp::sse::Decoder::new(1 << 20);
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            decoder.feed(&data);
            while let Ok(Some(ev)) = decoder.next_event() {
                if tx.send((ev.event.clone(), ev.data().to_owned())).await.is_err() {
                    return;
                }
            }
        }
    });
    let _ = stream_client;
    let (event, endpoint) = rx.recv().await.unwrap();
    assert_eq!(event.as_deref(), Some("endpoint"));
    assert!(endpoint.starts_with("/sse?sessionId="), "{endpoint}");
    let poster = McpClient::new(gw.url(&endpoint));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}});
    assert_eq!(poster.post(&init).await.unwrap().status, StatusCode::ACCEPTED);
    let (_, data) = rx.recv().await.unwrap();
    let answer: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(answer["result"]["serverInfo"]["name"], "ref");
    poster.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.unwrap();
    poster.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "legacy"}}})).await.unwrap();
    let (_, data) = rx.recv().await.unwrap();
    let answer: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(first_text(&answer), Some("Echo: legacy"));
    let unknown = McpClient::new(gw.url("/sse?sessionId=nope"));
    assert_eq!(unknown.post(&init).await.unwrap().status, StatusCode::NOT_FOUND);
    // The older `…/message` endpoint still takes messages.
    let older = McpClient::new(gw.url(&endpoint.replace("/sse?", "/message?")));
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    assert_eq!(older.post(&ping).await.unwrap().status, StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_over_legacy_sse() {
    let a = reference_named("a").await;
    let b = reference_named("b").await;
    let gw = Gateway::start(&route(
        &format!("{}{}", http_target("a", &a.url("/mcp")), http_target("b", &b.url("/mcp"))),
        "",
    ))
    .await
    .unwrap();
    let (ok, stdout, stderr) =
        node::run_script_env("sdk-client.mjs", &[&gw.url("/sse"), "call:a_echo"], &[("MCP_TRANSPORT", "sse")]).await;
    assert!(ok, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(out["tools"].as_array().unwrap().iter().any(|t| t == "b_add"), "{out}");
    assert_eq!(out["call:a_echo"]["result"]["content"][0]["text"], "Echo: x");
}

#[tokio::test]
async fn stateless_mode_makes_a_throwaway_upstream_session_per_request() {
    let reference = reference_named("ref").await;
    let gw =
        Gateway::start(&route(&http_target("only", &reference.url("/mcp")), "          statefulMode: stateless\n"))
            .await
            .unwrap();
    let c = McpClient::new(gw.url("/mcp"));
    let ex = c.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await.unwrap();
    assert_eq!(ex.status, StatusCode::OK);
    assert!(ex.header("mcp-session-id").is_none(), "stateless: no session id");
    assert!(c.tool_names().await.unwrap().contains(&"echo".to_string()), "no session needed");
    assert_eq!(first_text(&c.call_tool("echo", json!({"message": "s"})).await.unwrap()), Some("Echo: s"));
}

#[tokio::test]
async fn prefix_never_routes_by_name_and_drops_duplicates() {
    let a = reference_named("a").await;
    let b = reference_named("b").await;
    let targets = format!("{}{}", http_target("a", &a.url("/mcp")), http_target("b", &b.url("/mcp")));
    let gw = Gateway::start(&route(&targets, "          prefixMode: never\n")).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    assert!(c.tool_names().await.unwrap().is_empty(), "every name is on both targets: none can be called");
    assert_eq!(c.call_tool("echo", json!({})).await.unwrap()["error"]["message"], "Unknown tool: echo");

    let one = http_target("a", &a.url("/mcp"));
    let gw = Gateway::start(&route(&one, "          prefixMode: always\n")).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    assert!(c.tool_names().await.unwrap().contains(&"a_echo".to_string()), "always: prefixed even alone");
    assert_eq!(first_text(&c.call_tool("a_echo", json!({"message": "p"})).await.unwrap()), Some("Echo: p"));
}

#[tokio::test]
async fn failure_modes() {
    let live = reference_named("live").await;
    let dead = agw_testkit::faulty::refused_url().await;
    let targets = format!("{}{}", http_target("live", &live.url("/mcp")), http_target("dead", &dead));
    let gw = Gateway::start(&route(&targets, "")).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    let err = c.initialize().await.unwrap_err().to_string();
    assert!(err.contains("no result"), "failClosed: {err}");

    let gw = Gateway::start(&route(&targets, "          failureMode: failOpen\n")).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let tools = c.tool_names().await.unwrap();
    assert!(tools.contains(&"live_echo".to_string()) && !tools.iter().any(|t| t.starts_with("dead_")), "{tools:?}");
}

/// Rules see the upstream's own names and the target; everything a target sends is filtered,
/// whichever request it answers; refusals use the names the client knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_apply_per_target_behind_one_endpoint() {
    let a = reference_named("a").await;
    let b = reference_named("b").await;
    let targets = format!("{}{}", http_target("a", &a.url("/mcp")), http_target("b", &b.url("/mcp")));
    let yaml = route(&targets, "").replace(
        "    - backends:\n",
        "    - policies:\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.target == \"a\" && mcp.tool.name == \"echo\"'\n          - 'mcp.tool.target == \"b\" && mcp.tool.name == \"add\"'\n      backends:\n",
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let mut tools = c.tool_names().await.unwrap();
    tools.sort();
    assert_eq!(tools, ["a_echo", "b_add"]);
    let echo = c.call_tool("a_echo", json!({"message": "hi"})).await.unwrap();
    assert_eq!(first_text(&echo), Some("Echo: hi"));
    let hidden = c.call_tool("b_echo", json!({"message": "hi"})).await.unwrap();
    assert_eq!(hidden["error"], json!({"code": -32602, "message": "Unknown tool: b_echo"}));
    let sneaky = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "a_echo", "NAME": "b_echo", "arguments": {}}});
    let ex = c.post(&sneaky).await.unwrap();
    assert!(
        ex.response(&json!(9)).is_some_and(|r| r["error"]["code"] == -32602 || r["error"]["code"] == -32600),
        "{:?}",
        ex.messages
    );
    let no_name = c.request_with("tools/call", json!({"name": 5}), None).await.unwrap().1;
    assert_eq!(no_name["error"]["code"], -32602);
    let surrogate = r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"b_echo","x":"\ud800"}}"#;
    let ex = c.post_bytes(surrogate, None).await.unwrap();
    assert_eq!(ex.status, StatusCode::BAD_REQUEST, "a message that cannot be read in full is refused");
    assert_eq!(ex.messages[0]["error"]["code"], -32700);
}
