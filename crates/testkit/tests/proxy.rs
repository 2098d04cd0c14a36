//! MCP Streamable HTTP through the gateway, against the in-process reference upstream.

use std::time::Duration;

use agw_mcp::session::SessionCodec;
use agw_testkit::client::{McpClient, first_text};
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::recorder::Recorder;
use agw_testkit::reference;
use http::StatusCode;
use serde_json::{Value, json};

async fn reference_upstream(json_response: bool) -> agw_testkit::serve::Server {
    reference::serve("127.0.0.1:0".parse().unwrap(), reference::Options { json_response, ..Default::default() })
        .await
        .unwrap()
}

async fn gateway_to(url: &str) -> Gateway {
    Gateway::start(&mcp_route(url, "")).await.unwrap()
}

#[tokio::test]
async fn initialize_list_and_call_through_the_gateway() {
    let upstream = reference_upstream(false).await;
    const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let yaml = format!(
        "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 127.0.0.1:0\n  statsAddr: 127.0.0.1:0\n  session:\n    key: {KEY}\n{}",
        mcp_route(&upstream.url("/mcp"), "")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut client = McpClient::new(gw.url("/mcp"));
    let init = client.initialize().await.unwrap();
    assert_eq!(init["serverInfo"]["name"], "reference");
    assert_eq!(init["protocolVersion"], "2025-06-18", "the upstream's negotiation passes through");

    // The gateway's session id is its own, sealed, and carries the upstream's.
    let gw_session = client.session.clone().expect("gateway issues a session id");
    assert!(SessionCodec::plain().decode(&gw_session).is_err(), "sealed even without a key");
    let state = SessionCodec::sealed(KEY).unwrap().decode(&gw_session).expect("session id opens with the key");
    let upstream_session = state.upstream_session("upstream").expect("upstream issued a session").to_string();
    assert_ne!(gw_session, upstream_session);

    let tools = client.tool_names().await.unwrap();
    for t in ["echo", "add", "printEnv", "test_simple_text"] {
        assert!(tools.contains(&t.to_string()), "{t} in {tools:?}");
    }
    let resp = client.call_tool("echo", json!({"message": "hi"})).await.unwrap();
    assert_eq!(first_text(&resp), Some("Echo: hi"));

    let resources = client.request("resources/read", json!({"uri": "test://static-text"})).await.unwrap();
    assert_eq!(resources["contents"][0]["text"], "This is the content of the static text resource.");
    let prompt = client
        .request("prompts/get", json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "a", "arg2": "b"}}))
        .await
        .unwrap();
    assert!(prompt["messages"][0]["content"]["text"].as_str().unwrap().contains("arg1='a'"));
}

#[tokio::test]
async fn sse_answers_stream_progress_before_the_result() {
    let upstream = reference_upstream(false).await;
    let gw = gateway_to(&upstream.url("/mcp")).await;
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let (ex, resp) = client
        .request_with(
            "tools/call",
            json!({"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "tok-1"}}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(ex.header("content-type"), Some("text/event-stream"));
    let progress: Vec<&Value> =
        ex.notifications().into_iter().filter(|n| n["method"] == "notifications/progress").collect();
    assert_eq!(progress.len(), 3, "{:?}", ex.messages);
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "tok-1"), "progress tokens pass through unchanged");
    let result_pos = ex.messages.iter().position(|m| m.get("result").is_some()).unwrap();
    assert_eq!(result_pos, 3, "the result comes after the notifications");
    assert!(resp["result"]["content"][0]["text"].as_str().is_some());
}

#[tokio::test]
async fn sampling_and_elicitation_round_trips() {
    let upstream = reference_upstream(false).await;
    let gw = gateway_to(&upstream.url("/mcp")).await;
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();

    let mut asked = Vec::new();
    let mut handler = |req: &Value| {
        asked.push(req["method"].as_str().unwrap_or_default().to_string());
        match req["method"].as_str() {
            Some("sampling/createMessage") => {
                json!({"model": "m", "role": "assistant", "content": {"type": "text", "text": "from-the-client"}})
            }
            _ => {
                json!({"action": "accept", "content": {"username": "ada", "email": "ada@example.com"}})
            }
        }
    };
    let (_, resp) = client
        .request_with("tools/call", json!({"name": "test_sampling", "arguments": {"prompt": "hi"}}), Some(&mut handler))
        .await
        .unwrap();
    assert!(first_text(&resp).unwrap().contains("from-the-client"), "{resp}");
    let (_, resp) = client
        .request_with(
            "tools/call",
            json!({"name": "test_elicitation", "arguments": {"message": "who?"}}),
            Some(&mut handler),
        )
        .await
        .unwrap();
    assert!(first_text(&resp).unwrap().contains("ada@example.com"), "{resp}");
    assert_eq!(asked, ["sampling/createMessage", "elicitation/create"]);
}

#[tokio::test]
async fn server_notifications_reach_the_get_stream() {
    let upstream = reference_upstream(false).await;
    let gw = gateway_to(&upstream.url("/mcp")).await;
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let stream_client = client.same_session();
    let listener = tokio::spawn(async move {
        stream_client
            .get_stream(&[], |msgs| msgs.iter().filter(|m| m["method"] == "notifications/message").count() >= 3)
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = client.call_tool("test_tool_with_logging", json!({})).await.unwrap();
    assert_eq!(first_text(&resp), Some("Tool with logging executed successfully"));
    let ex =
        tokio::time::timeout(Duration::from_secs(10), listener).await.expect("log messages arrive").unwrap().unwrap();
    assert_eq!(ex.status, StatusCode::OK);
    let logs: Vec<&str> = ex.messages.iter().filter_map(|m| m["params"]["data"].as_str()).collect();
    assert_eq!(logs, ["Tool execution started", "Tool processing data", "Tool execution completed"]);
}

#[tokio::test]
async fn json_answers_pass_through_as_json() {
    let upstream = reference_upstream(true).await;
    let gw = gateway_to(&upstream.url("/mcp")).await;
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let (ex, resp) =
        client.request_with("tools/call", json!({"name": "add", "arguments": {"a": 2, "b": 3}}), None).await.unwrap();
    assert_eq!(ex.header("content-type"), Some("application/json"));
    assert_eq!(first_text(&resp), Some("The sum of 2 and 3 is 5."));
}

#[tokio::test]
async fn messages_reach_the_upstream_byte_for_byte() {
    let rec = Recorder::start().await.unwrap();
    let gw = gateway_to(&rec.url()).await;
    let mut client = McpClient::new(gw.url("/mcp"))
        .with_header("authorization", "Bearer secret-client-token")
        .with_header("cookie", "c=1");
    client.initialize().await.unwrap();
    let initialize = &rec.seen()[0];
    assert!(initialize.headers.get("mcp-session-id").is_none());

    // Unknown method, unknown fields, _meta: all forwarded exactly as sent.
    let raw = br#"{"jsonrpc":"2.0","id":"x-1","method":"vendor/custom","params":{"_meta":{"progressToken":7,"trace":"t"},"extra":[1,2]},"x-unknown-field":true}"#;
    let ex = client.post_bytes(&raw[..], None).await.unwrap();
    assert_eq!(ex.status, StatusCode::OK);
    assert_eq!(ex.messages[0]["result"]["echoedMethod"], "vendor/custom");
    let seen = rec.last();
    assert_eq!(&seen.body[..], &raw[..]);
    assert_eq!(seen.headers["mcp-session-id"], "recorded-session", "the upstream gets its own session id back");
    assert_eq!(seen.headers["mcp-protocol-version"], "2025-06-18");
    assert!(seen.headers.get("authorization").is_none(), "client credentials are not forwarded");
    assert!(seen.headers.get("cookie").is_none());

    // A batch (on a 2025-03-26 session: later versions have none) is forwarded as one body;
    // the answers come back as one array.
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize_version("2025-03-26").await.unwrap();
    client.protocol = Some("2025-03-26".into());
    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"notifications/b"},{"jsonrpc":"2.0","id":2,"method":"c"}]"#;
    let ex = client.post_bytes(&batch[..], None).await.unwrap();
    assert_eq!(&rec.last().body[..], &batch[..]);
    assert_eq!(ex.messages.len(), 2);
}

#[tokio::test]
async fn notifications_and_responses_get_202() {
    let rec = Recorder::start().await.unwrap();
    let gw = gateway_to(&rec.url()).await;
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let ex = client.post(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})).await.unwrap();
    assert_eq!(ex.status, StatusCode::ACCEPTED);
    let ex = client.post(&json!({"jsonrpc": "2.0", "id": 99, "result": {"roots": []}})).await.unwrap();
    assert_eq!(ex.status, StatusCode::ACCEPTED);
    assert!(ex.body.is_empty());
}

#[tokio::test]
async fn unknown_methods_get_the_upstreams_own_error() {
    let upstream = reference_upstream(false).await;
    let gw = gateway_to(&upstream.url("/mcp")).await;
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let (_, resp) = client.request_with("no/such/method", json!({}), None).await.unwrap();
    assert_eq!(resp["error"]["code"], -32601, "{resp}");
}

#[tokio::test]
async fn sessions_are_required_checked_and_ended() {
    let upstream = reference_upstream(false).await;
    let gw = gateway_to(&upstream.url("/mcp")).await;
    let mut client = McpClient::new(gw.url("/mcp"));

    let ex = client.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await.unwrap();
    assert_eq!(ex.status, StatusCode::BAD_REQUEST);
    assert_eq!(ex.messages[0]["error"]["code"], -32000);
    assert!(ex.messages[0]["error"]["message"].as_str().unwrap().contains("Mcp-Session-Id header is required"));

    client.session = Some("bm90IGEgc2Vzc2lvbg".into());
    let ex = client.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await.unwrap();
    assert_eq!(ex.status, StatusCode::NOT_FOUND);
    assert_eq!(ex.messages[0]["error"]["code"], -32001);

    client.session = None;
    client.initialize().await.unwrap();
    assert!(!client.tool_names().await.unwrap().is_empty());
    let ex = client.delete().await.unwrap();
    assert!(ex.status.is_success(), "DELETE: {}", ex.status);
    let ex = client.post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})).await.unwrap();
    assert_eq!(ex.status, StatusCode::NOT_FOUND, "the upstream session is gone after DELETE");
}

#[tokio::test]
async fn malformed_requests_get_jsonrpc_errors() {
    let rec = Recorder::start().await.unwrap();
    let gw = gateway_to(&rec.url()).await;
    let client = McpClient::new(gw.url("/mcp"));
    let cases: &[(&[u8], i64)] = &[
        (b"{not json", -32700),
        (b"\xff\xfe", -32700),
        (br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#, -32600),
        (br#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#, -32600),
        (b"[]", -32600),
        (br#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]"#, -32600),
        (br#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#, -32700),
    ];
    for (body, code) in cases {
        let ex = client.post_bytes(&body[..], None).await.unwrap();
        assert_eq!(ex.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(body));
        assert_eq!(ex.messages[0]["error"]["code"], *code, "{}", String::from_utf8_lossy(body));
    }
    assert!(rec.seen().is_empty(), "nothing malformed reaches the upstream");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let rec = Recorder::start().await.unwrap();
    let gw = gateway_to(&rec.url()).await;
    let client = McpClient::new(gw.url("/mcp"));
    let big =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"pad":"{}"}}}}"#, "x".repeat(17 << 20));
    // The gateway answers 413 as soon as it reads the Content-Length and closes the
    // connection: the client either reads the 413 or fails writing the rest of its body
    // (`hardening_connections.rs` checks the 413 itself with a body that is only announced).
    match client.post_bytes(big, None).await {
        Ok(ex) => assert_eq!(ex.status, StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(format!("{e:#}").contains("writing a body"), "{e:#}"),
    }
    assert!(rec.seen().is_empty());
}

#[tokio::test]
async fn dns_rebinding_protection_checks_host_and_origin() {
    let upstream = reference_upstream(false).await;
    let yaml = mcp_route(&upstream.url("/mcp"), "")
        .replace("      - mcp:\n", "      - mcp:\n          dnsRebindingProtection: true\n");
    let gw = Gateway::start(&yaml).await.unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let evil = McpClient::new(gw.url("/mcp")).with_header("host", "evil.example.com");
    assert_eq!(evil.post(&init).await.unwrap().status, StatusCode::FORBIDDEN);
    let evil_origin = McpClient::new(gw.url("/mcp")).with_header("origin", "http://evil.example.com");
    assert_eq!(evil_origin.post(&init).await.unwrap().status, StatusCode::FORBIDDEN);
    let local = McpClient::new(gw.url("/mcp")).with_header("origin", &format!("http://localhost:{}", gw.addr.port()));
    assert_eq!(local.post(&init).await.unwrap().status, StatusCode::OK);

    // Off by default.
    let open = gateway_to(&upstream.url("/mcp")).await;
    let evil = McpClient::new(open.url("/mcp")).with_header("host", "evil.example.com");
    assert_eq!(evil.post(&init).await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn request_header_modifier_adds_upstream_headers() {
    let rec = Recorder::start().await.unwrap();
    let extra = "      policies:\n        requestHeaderModifier:\n          set:\n            x-api-key: upstream-key\n        responseHeaderModifier:\n          add:\n            x-served-by: agentgateway-rs\n";
    let gw = Gateway::start(&mcp_route(&rec.url(), extra)).await.unwrap();
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let ex = client.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await.unwrap();
    assert_eq!(rec.last().headers["x-api-key"], "upstream-key");
    assert_eq!(ex.header("x-served-by"), Some("agentgateway-rs"));
}

/// The gateway acknowledges its upstream's reads at once (`TCP_QUICKACK`), so an upstream that
/// leaves Nagle's algorithm on and writes its answer in pieces is not held up by delayed ACKs.
/// What is asserted is what the upstream's kernel saw: how long each answer's first piece waited
/// for its ACK. A delayed ACK waits 40 ms or more on Linux; a prompt one, microseconds. The
/// control (a plain keep-alive client straight to the upstream) must show the stall, or the
/// check proves nothing. The gateway learns that an upstream needs prompt ACKs from its first
/// stalled answer (here: `initialize`), so the calls after it are the ones checked.
#[tokio::test]
async fn a_nagle_bound_upstream_is_acknowledged_promptly_through_the_gateway() {
    use agw_testkit::nagle;
    const CALLS: usize = 16;
    // Linux sends a delayed ACK 40 ms or more after the data; a prompt one comes in microseconds.
    let delayed = |waits: &[Duration]| waits.iter().filter(|w| **w >= Duration::from_millis(35)).count();
    let upstream = nagle::serve("127.0.0.1:0".parse().unwrap(), nagle::Options { watch_acks: true }).await.unwrap();

    let mut direct = McpClient::new(upstream.url("/mcp"));
    direct.initialize().await.unwrap();
    upstream.clear_ack_waits();
    for i in 0..CALLS {
        let resp = direct.call_tool("echo", json!({"message": format!("d{i}")})).await.unwrap();
        assert_eq!(first_text(&resp), Some(format!("Echo: d{i}").as_str()));
    }
    let direct_waits = upstream.ack_waits_of(CALLS).await;
    assert_eq!(direct_waits.len(), CALLS);

    let gw = gateway_to(&upstream.url("/mcp")).await;
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    // The gateway learns from a stall it sees between two reads of one answer. On a loaded
    // machine its read of the first piece can come after the second piece arrived (one read,
    // no gap to see), so it may take more than one batch to learn; without prompt ACKs every
    // batch is late.
    let mut gateway_waits = Vec::new();
    for batch in 0..3 {
        upstream.clear_ack_waits();
        for i in 0..CALLS {
            let resp = client.call_tool("echo", json!({"message": format!("g{batch}-{i}")})).await.unwrap();
            assert_eq!(first_text(&resp), Some(format!("Echo: g{batch}-{i}").as_str()));
        }
        gateway_waits = upstream.ack_waits_of(CALLS).await;
        assert_eq!(gateway_waits.len(), CALLS);
        if delayed(&gateway_waits) < CALLS / 2 {
            break;
        }
    }

    assert!(
        delayed(&direct_waits) >= CALLS * 3 / 4,
        "control: a plain keep-alive client should delay its ACKs; waits {direct_waits:?}"
    );
    // Not zero: a busy test machine (the whole suite runs in parallel on two cores) may
    // deschedule the gateway for a while now and then. Without prompt ACKs every one is late.
    assert!(
        delayed(&gateway_waits) < CALLS / 2,
        "through the gateway, ACKs should not wait for the delayed-ACK timer; waits {gateway_waits:?}"
    );
}
