//! Sessions under attack: an id belongs to the caller that created it (another token, no
//! token, an injected answer to a server request: all refused, the owner unaffected); quotas
//! per caller keep an anonymous flood from locking out everyone else; JSON-RPC batches follow
//! the protocol version and have a size limit.

use std::sync::OnceLock;

use agw_testkit::client::{Exchange, McpClient, first_text};
use agw_testkit::harness::{Gateway, mcp_route, metric};
use agw_testkit::jwt::{self, Alg, TestKey, claims};
use agw_testkit::reference;
use http::StatusCode;
use serde_json::{Value, json};

const EXAMPLE_SERVER: &str = env!("CARGO_BIN_EXE_mcp-example-server");
const ISS: &str = "https://idp.test";
const AUD: &str = "mcp.test";

fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate("k1", Alg::ES256))
}

fn bearer(sub: &str) -> String {
    let mut c = claims(ISS, AUD);
    c["sub"] = json!(sub);
    format!("Bearer {}", key().token(&c))
}

/// `jwtAuth` in its default mode (`optional`): anonymous callers get in too.
fn jwt_policy() -> String {
    format!(
        "      policies:\n        jwtAuth:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n",
        jwt::jwks(&[key()], false)
    )
}

fn client(gw: &Gateway, authorization: Option<&str>) -> McpClient {
    let c = McpClient::new(gw.url("/mcp"));
    match authorization {
        Some(a) => c.with_header("authorization", a),
        None => c,
    }
}

fn assert_unknown_session(ex: &Exchange, what: &str) {
    assert_eq!(ex.status, StatusCode::NOT_FOUND, "{what}: {}", String::from_utf8_lossy(&ex.body));
    assert_eq!(ex.messages.first().map(|m| m["error"]["code"].clone()), Some(json!(-32001)), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_caller_that_created_it() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), &jwt_policy())).await.unwrap();
    let alice_token = bearer("alice");
    let mut alice = client(&gw, Some(&alice_token));
    alice.initialize().await.unwrap();
    let session = alice.session.clone().unwrap();

    let bob_token = bearer("bob");
    for (who, token) in [("another token", Some(bob_token.as_str())), ("no token", None)] {
        let thief = client(&gw, token).with_session(&session);
        let list = thief.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})).await.unwrap();
        assert_unknown_session(&list, &format!("tools/list with {who}"));
        let call = thief
            .post(&json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}}}))
            .await
            .unwrap();
        assert_unknown_session(&call, &format!("tools/call with {who}"));
        let stream = thief.get_stream(&[], |_| true).await.unwrap();
        assert_eq!(stream.status, StatusCode::NOT_FOUND, "GET stream with {who}");
        assert_unknown_session(&thief.delete().await.unwrap(), &format!("DELETE with {who}"));
    }
    assert!(alice.tool_names().await.unwrap().contains(&"echo".to_string()), "the owner's session is intact");

    // An answer to the owner's pending elicitation, injected with the session id by another
    // caller (or by nobody), is refused; the owner's own answer completes the call.
    let gw_url = gw.url("/mcp");
    let injected = std::sync::Mutex::new(Vec::new());
    let mut handler = |req: &Value| {
        let reply = json!({"jsonrpc": "2.0", "id": req["id"], "result": {"action": "accept", "content": {"username": "mallory", "email": "m@evil.example"}}});
        for token in [Some(bob_token.as_str()), None] {
            let mut thief = McpClient::new(gw_url.clone()).with_session(&session);
            if let Some(t) = token {
                thief = thief.with_header("authorization", t);
            }
            let status = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async { thief.post(&reply).await.unwrap().status })
            });
            injected.lock().unwrap().push(status);
        }
        json!({"action": "accept", "content": {"username": "ada", "email": "ada@example.com"}})
    };
    let (_, resp) = alice
        .request_with(
            "tools/call",
            json!({"name": "test_elicitation", "arguments": {"message": "who?"}}),
            Some(&mut handler),
        )
        .await
        .unwrap();
    let text = first_text(&resp).unwrap();
    assert!(text.contains("ada@example.com") && !text.contains("mallory"), "{resp}");
    assert_eq!(*injected.lock().unwrap(), [StatusCode::NOT_FOUND, StatusCode::NOT_FOUND]);

    // The other way round: an anonymous caller's session is not the authenticated caller's.
    let mut anonymous = client(&gw, None);
    anonymous.initialize().await.unwrap();
    let borrowed = client(&gw, Some(&alice_token)).with_session(anonymous.session.as_deref().unwrap());
    assert_unknown_session(
        &borrowed.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.unwrap(),
        "an anonymous session used with a token",
    );
    assert!(anonymous.tool_names().await.is_ok());
    let refused = metric(&gw.metrics().await.unwrap(), "agentgateway_mcp_sessions_refused_total{reason=\"owner\"}");
    assert!(refused >= 11.0, "refusals counted: {refused}");
}

fn stdio_route(policy: &str) -> String {
    format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: tools\n{policy}      backends:\n      - mcp:\n          targets:\n          - name: local\n            stdio:\n              cmd: '{EXAMPLE_SERVER}'\n              args: ['--stdio']\n"
    )
}

fn initialize_message(id: u64, version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_cannot_lock_out_an_authenticated_caller() {
    // Default quotas: the anonymous identity may hold 4 stdio sessions.
    let gw = Gateway::start(&stdio_route(&jwt_policy())).await.unwrap();
    let flood: Vec<Exchange> = futures_util::future::join_all((0..30).map(|i| {
        let c = client(&gw, None);
        async move { c.post(&initialize_message(i, "2025-06-18")).await.unwrap() }
    }))
    .await;
    let ok = flood.iter().filter(|e| e.status == StatusCode::OK).count();
    let limited: Vec<&Exchange> = flood.iter().filter(|e| e.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!((1..=4).contains(&ok), "{ok} anonymous sessions admitted");
    assert_eq!(
        ok + limited.len(),
        30,
        "everything else is 429: {:?}",
        flood.iter().map(|e| e.status).collect::<Vec<_>>()
    );
    for e in &limited {
        assert!(e.headers.get("retry-after").is_some(), "429 says when to retry");
        let error = &e.messages[0];
        assert!(error["id"].is_u64() && error["error"]["message"].as_str().unwrap().contains("retry"), "{error}");
    }
    let children = metric(&gw.metrics().await.unwrap(), "agentgateway_stdio_children");
    assert!(children <= 4.0, "stdio children within the anonymous quota: {children}");

    // The authenticated caller, from the same address, is not affected.
    let mut alice = client(&gw, Some(&bearer("alice")));
    alice.initialize().await.unwrap();
    assert_eq!(
        first_text(&alice.call_tool("echo", json!({"message": "still here"})).await.unwrap()),
        Some("Echo: still here")
    );
    let text = gw.metrics().await.unwrap();
    assert!(metric(&text, "agentgateway_stdio_children") <= 5.0);
    let refused = metric(&text, "agentgateway_mcp_sessions_refused_total{reason=\"live\"}")
        + metric(&text, "agentgateway_mcp_sessions_refused_total{reason=\"rate\"}");
    assert_eq!(refused, limited.len() as f64);
}

#[tokio::test]
async fn an_authenticated_caller_has_its_own_live_session_quota() {
    let yaml = format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  mcp:\n    quotas:\n      stdioSessions: 2\n{}",
        stdio_route(&jwt_policy())
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let alice = bearer("alice");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = client(&gw, Some(&alice));
        c.initialize().await.unwrap();
        held.push(c);
    }
    let third = client(&gw, Some(&alice)).post(&initialize_message(1, "2025-06-18")).await.unwrap();
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{}", String::from_utf8_lossy(&third.body));
    let mut bob = client(&gw, Some(&bearer("bob")));
    assert!(bob.initialize().await.is_ok(), "another caller has its own quota");
    // Ending a session gives its slot back.
    assert!(held.pop().unwrap().delete().await.unwrap().status.is_success());
    let mut again = client(&gw, Some(&alice));
    assert!(again.initialize().await.is_ok());
}

async fn raw_session(gw: &Gateway, version: &str) -> McpClient {
    let c = McpClient::new(gw.url("/mcp"));
    let ex = c.post(&initialize_message(1, version)).await.unwrap();
    assert_eq!(ex.status, StatusCode::OK);
    let mut c = c.with_session(ex.header("mcp-session-id").unwrap());
    c.protocol = None;
    c
}

fn pings(n: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..n).map(|i| json!({"jsonrpc": "2.0", "id": 100 + i, "method": "ping"})).collect();
    serde_json::to_vec(&items).unwrap()
}

#[tokio::test]
async fn batches_follow_the_protocol_version_and_have_a_size_limit() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let single = mcp_route(&upstream.url("/mcp"), "");
    let second = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let multiplexed = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: a\n            mcp:\n              host: {}\n          - name: b\n            mcp:\n              host: {}\n",
        upstream.url("/mcp"),
        second.url("/mcp")
    );
    for (kind, yaml) in [("passthrough", single), ("multiplexed", multiplexed)] {
        let gw = Gateway::start(&yaml).await.unwrap();
        let new = raw_session(&gw, "2025-06-18").await;
        let refused = new.post_bytes(pings(2), None).await.unwrap();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{kind}");
        let error = &refused.messages[0]["error"];
        assert_eq!(error["code"], -32600, "{kind}");
        assert!(error["message"].as_str().unwrap().contains("2025-06-18"), "{kind}: {error}");
        let header_says_new = raw_session(&gw, "2025-03-26").await.with_header("mcp-protocol-version", "2025-11-25");
        assert_eq!(header_says_new.post_bytes(pings(2), None).await.unwrap().status, StatusCode::BAD_REQUEST);

        let old = raw_session(&gw, "2025-03-26").await;
        let ok = old.post_bytes(pings(2), None).await.unwrap();
        if kind == "multiplexed" {
            assert_eq!(ok.status, StatusCode::OK, "{kind}: {}", String::from_utf8_lossy(&ok.body));
            assert_eq!(ok.messages.iter().filter(|m| m.get("result").is_some()).count(), 2, "{kind}");
        } else {
            // Forwarded: the reference upstream (rmcp) itself does not take batches (415).
            assert_eq!(ok.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{kind}: {}", String::from_utf8_lossy(&ok.body));
        }
        let big = old.post_bytes(pings(17), None).await.unwrap();
        assert_eq!(big.status, StatusCode::BAD_REQUEST, "{kind}");
        assert!(big.messages[0]["error"]["message"].as_str().unwrap().contains("more than 16"), "{kind}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn stateless_notifications_leave_no_child_and_no_session_behind() {
    let yaml = stdio_route("").replace("      - mcp:\n", "      - mcp:\n          statefulMode: stateless\n");
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = client(&gw, None);
    for i in 0..6 {
        // More than the anonymous stdio quota (4): a leaked slot would show as a 429.
        let ex = c.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.unwrap();
        assert_eq!(ex.status, StatusCode::ACCEPTED, "notification {i}");
    }
    let call = c
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}}}))
        .await
        .unwrap();
    assert_eq!(first_text(call.response(&json!(1)).unwrap()), Some("Echo: x"));
    let mut text = String::new();
    for _ in 0..100 {
        text = gw.metrics().await.unwrap();
        if metric(&text, "agentgateway_stdio_children") == 0.0
            && metric(&text, "agentgateway_mcp_local_sessions") == 0.0
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("children or sessions left behind:\n{text}");
}
