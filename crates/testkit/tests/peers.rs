//! Compatibility with MCP peers we did not write: the MCP conformance suite, the npm
//! `server-everything` (directly and behind `mcp-proxy`, the tutorial's set-up), and the
//! official TypeScript SDK client. Needs `npm ci --prefix tests/node` (done by `.ci/run`).

use std::collections::BTreeMap;

use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::{node, reference};
use serde_json::Value;
use tokio::process::Command;

/// Runs every server scenario (`--suite all`) against `url`; scenario name → passed.
async fn conformance(url: &str) -> BTreeMap<String, bool> {
    let dir = node::require_installed();
    let out = Command::new("node")
        .arg(dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["server", "--url", url, "--suite", "all", "-o"])
        .arg(std::env::temp_dir().join(format!("agw-conformance-{}", std::process::id())))
        .current_dir(&dir)
        .kill_on_drop(true)
        .output()
        .await
        .expect("the conformance suite runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = BTreeMap::new();
    for line in stdout.lines() {
        let (passed, rest) = match line.strip_prefix("✓ ") {
            Some(rest) => (true, rest),
            None => match line.strip_prefix("✗ ") {
                Some(rest) => (false, rest),
                None => continue,
            },
        };
        if let Some((name, _)) = rest.split_once(':') {
            results.insert(name.to_string(), passed);
        }
    }
    assert!(
        !results.is_empty(),
        "no scenario results in the suite's output:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_through_the_gateway_as_it_does_directly() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    // The suite's dns-rebinding scenario checks the endpoint it talks to; in front of the
    // upstream that is the gateway, so the gateway's own protection is turned on.
    let yaml = mcp_route(&upstream.url("/mcp"), "")
        .replace("      - mcp:\n", "      - mcp:\n          dnsRebindingProtection: true\n");
    let gw = Gateway::start(&yaml).await.unwrap();

    let direct = conformance(&upstream.url("/mcp")).await;
    let through = conformance(&gw.url("/mcp")).await;
    let count = |r: &BTreeMap<String, bool>| r.values().filter(|p| **p).count();
    println!(
        "conformance server scenarios: direct {}/{} passed, through the gateway {}/{} passed",
        count(&direct),
        direct.len(),
        count(&through),
        through.len()
    );

    let failed_direct: Vec<&String> = direct.iter().filter(|(_, p)| !**p).map(|(n, _)| n).collect();
    assert!(failed_direct.is_empty(), "the reference upstream itself fails: {failed_direct:?}");
    assert_eq!(direct.len(), 32, "every server scenario of 0.1.12 ran: {direct:?}");
    let regressions: Vec<&String> =
        direct.iter().filter(|(n, p)| **p && through.get(*n) != Some(&true)).map(|(n, _)| n).collect();
    assert!(regressions.is_empty(), "scenarios that pass directly but fail through the gateway: {regressions:?}");
}

async fn sdk_client(url: &str, steps: &[&str]) -> Value {
    let mut args = vec![url];
    args.extend_from_slice(steps);
    let (ok, stdout, stderr) = node::run_script("sdk-client.mjs", &args).await;
    let out: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("sdk-client output: {stdout}\n{stderr}"));
    assert!(ok, "sdk-client failed: {out}\n{stderr}");
    out
}

fn tools(out: &Value) -> Vec<&str> {
    out["tools"].as_array().unwrap().iter().filter_map(Value::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_with_server_everything_over_streamable_http() {
    let (_everything, url) = node::server_everything_http().await;
    let gw = Gateway::start(&mcp_route(&url, "")).await.unwrap();
    let out = sdk_client(&gw.url("/mcp"), &["echo", "progress", "sampling", "elicitation"]).await;
    assert_eq!(out["server"]["name"], "mcp-servers/everything");
    for t in ["echo", "get-sum", "get-env", "trigger-long-running-operation", "trigger-sampling-request"] {
        assert!(tools(&out).contains(&t), "{t} in {:?}", tools(&out));
    }
    assert_eq!(out["echo"], "Echo: hello from the SDK");
    assert_eq!(out["progress"], serde_json::json!([1, 2, 3]), "progress notifications reach the client");
    assert!(out["long_running"].as_str().unwrap().contains("Long running operation completed"));
    assert_eq!(out["sampling_requests"], 1);
    assert!(out["sampling"].as_str().unwrap().contains("sampled-by-sdk-client"), "{}", out["sampling"]);
    assert_eq!(out["elicitation_requests"], 1);
    assert!(out["elicitation"].as_str().unwrap().contains("Ada Lovelace"), "{}", out["elicitation"]);
    let session = out["session"].as_str().unwrap();
    assert!(
        session.len() > 40 && agw_mcp::session::SessionCodec::plain().decode(session).is_err(),
        "the client holds the gateway's (sealed) session id: {session}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_behind_mcp_proxy_as_in_the_tutorial() {
    let (_proxy, url) = node::mcp_proxy_everything().await;
    let gw = Gateway::start(&mcp_route(&url, "")).await.unwrap();
    // mcp-proxy connects to server-everything over stdio without the sampling and elicitation
    // capabilities, so server-everything does not offer those tools here; the Streamable HTTP
    // test above covers the round trips.
    let out = sdk_client(&gw.url("/mcp"), &["echo", "progress"]).await;
    for t in ["echo", "get-sum", "get-env"] {
        assert!(tools(&out).contains(&t), "{t} in {:?}", tools(&out));
    }
    assert_eq!(out["echo"], "Echo: hello from the SDK");
    // mcp-proxy itself sometimes delivers the last progress notification after the result
    // (the SDK then drops it); the same happens without the gateway. The first ones always
    // arrive, in order.
    let progress: Vec<u64> = out["progress"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    assert!(progress.len() >= 2 && progress == [1, 2, 3][..progress.len()], "progress {progress:?}");
    assert!(out["long_running"].as_str().unwrap().contains("Long running operation completed"));
}

/// Authorization in front of server-everything (Streamable HTTP, with an event store) holds
/// against the tricks that get past a gateway that checks one parse and forwards another:
/// values its parser refuses, ids spelled differently, replayed streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_holds_against_server_everything() {
    use agw_testkit::client::McpClient;
    use serde_json::json;
    let (_everything, url) = node::server_everything_http().await;
    let rules =
        "      policies:\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"echo\"'\n";
    let gw = Gateway::start(&mcp_route(&url, rules)).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let listed = |v: &Value| -> Vec<String> {
        v["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };

    // Each would run `get-env` (the upstream's whole environment) if forwarded as sent.
    let env_leaks = |ex: &agw_testkit::client::Exchange| String::from_utf8_lossy(&ex.body).contains("PATH");
    for call in [
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-env","arguments":{},"x":"\ud800"}}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-env","arguments":{},"_meta":{"n":1e999}}}"#.to_string(),
        format!(
            r#"{{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{{"name":"get-env","arguments":{{}},"_meta":{{"x":{}{}}}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        ),
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":["get-env"],"arguments":{}}}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"get-env","arguments":{}}}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","NAME":"get-env","arguments":{"message":"x"}}}"#.to_string(),
    ] {
        let ex = c.post_bytes(call.clone(), None).await.unwrap();
        assert!(!env_leaks(&ex), "forwarded: {call}");
        assert!(
            ex.messages.iter().any(|m| m.get("error").is_some()) || ex.status.is_client_error(),
            "refused with an error: {call} → {} {:?}",
            ex.status,
            ex.messages
        );
    }
    // A notification would run the tool without an answer to carry a refusal: not forwarded.
    let note = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"get-env","arguments":{}}}"#;
    assert!(!env_leaks(&c.post_bytes(note, None).await.unwrap()));

    // Ids MCP forbids (`1.0`) are refused rather than answered unfiltered as `1`.
    let float_id = c.post_bytes(r#"{"jsonrpc":"2.0","id":7.0,"method":"tools/list"}"#, None).await.unwrap();
    assert!(float_id.messages.iter().all(|m| m.get("result").is_none()), "{:?}", float_id.messages);
    let dup = r#"[{"jsonrpc":"2.0","id":8,"method":"ping"},{"jsonrpc":"2.0","id":8,"method":"tools/list"}]"#;
    let dup = c.post_bytes(dup, None).await.unwrap();
    assert!(dup.messages.iter().all(|m| m.get("result").is_none()), "duplicate ids: {:?}", dup.messages);

    // A replay with Last-Event-ID is filtered like the original answer.
    let ping = c.post(&json!({"jsonrpc": "2.0", "id": 10, "method": "ping"})).await.unwrap();
    let body = String::from_utf8_lossy(&ping.body).to_string();
    let event_id =
        body.lines().find_map(|l| l.strip_prefix("id:")).map(str::trim).expect("server-everything numbers its events");
    let list = c.post(&json!({"jsonrpc": "2.0", "id": 11, "method": "tools/list"})).await.unwrap();
    assert_eq!(listed(list.response(&json!(11)).unwrap()), ["echo"]);
    // (A guard against a stream that never replays, not a speed check.)
    let replay = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        c.get_stream(&[("last-event-id", event_id)], |msgs| msgs.iter().any(|m| m["id"] == json!(11))),
    )
    .await
    .expect("the replay arrives")
    .unwrap();
    let replayed = replay.messages.iter().find(|m| m["id"] == json!(11)).expect("the list answer is replayed");
    assert_eq!(listed(replayed), ["echo"], "the replayed list is filtered");
}
