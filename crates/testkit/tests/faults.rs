//! Upstream failures become JSON-RPC errors with a clear message, and the gateway keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use agw_testkit::client::{McpClient, first_text};
use agw_testkit::faulty::{self, Fault};
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::reference;
use http::StatusCode;
use serde_json::{Value, json};

/// The error of a `tools/call` that went through a failing upstream.
async fn call_error(gw: &Gateway) -> (StatusCode, Value, String) {
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let (ex, resp) =
        client.request_with("tools/call", json!({"name": "echo", "arguments": {"message": "x"}}), None).await.unwrap();
    let error = resp.get("error").cloned().unwrap_or_else(|| panic!("expected an error, got {resp}"));
    (ex.status, error, String::from_utf8_lossy(&ex.body).into_owned())
}

async fn assert_gateway_still_serves(gw_route_extra: &str) {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), gw_route_extra)).await.unwrap();
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    assert_eq!(first_text(&client.call_tool("echo", json!({"message": "ok"})).await.unwrap()), Some("Echo: ok"));
}

#[tokio::test]
async fn refused_connection() {
    let gw = Gateway::start(&mcp_route(&faulty::refused_url().await, "")).await.unwrap();
    let client = McpClient::new(gw.url("/mcp"));
    let (ex, resp) = client
        .request_with(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(ex.status, StatusCode::OK, "an MCP error, not a transport failure");
    assert_eq!(resp["error"]["code"], -32603);
    assert_eq!(resp["error"]["message"], "upstream MCP server 'upstream' is unreachable");
    assert_eq!(resp["error"]["data"]["target"], "upstream");
    assert!(ex.header("mcp-session-id").is_none());
    // A notification has no id to answer: the HTTP status says what happened.
    let ex = client.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.unwrap();
    assert_eq!(ex.status, StatusCode::BAD_REQUEST, "no session yet");
}

#[tokio::test]
async fn every_kind_of_bad_answer() {
    let cases = [
        (Fault::HtmlPage, "sent an invalid response"),
        (Fault::BrokenJson, "sent an invalid response"),
        (Fault::ServerError, "answered with HTTP 500 Internal Server Error"),
        (Fault::ResetMidStream, "closed the connection before answering"),
        (Fault::GarbageEvent, "sent an invalid response"),
        (Fault::EndlessEvent, "sent a message larger than 33554432 bytes"),
    ];
    for (fault, message) in cases {
        let upstream = faulty::serve(fault).await.unwrap();
        let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), "")).await.unwrap();
        let (status, error, body) = call_error(&gw).await;
        assert_eq!(status, StatusCode::OK, "{fault:?}");
        assert_eq!(error["code"], -32603, "{fault:?}");
        assert_eq!(error["message"], format!("upstream MCP server 'upstream' {message}"), "{fault:?}");
        assert!(!body.contains("secret-path"), "{fault:?}: upstream internals leaked: {body}");
    }
    assert_gateway_still_serves("").await;
}

#[tokio::test]
async fn reset_mid_stream_keeps_what_was_already_sent() {
    let upstream = faulty::serve(Fault::ResetMidStream).await.unwrap();
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), "")).await.unwrap();
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let (ex, resp) = client.request_with("tools/call", json!({"name": "echo", "arguments": {}}), None).await.unwrap();
    assert_eq!(ex.notifications().len(), 1, "the progress event before the crash is delivered");
    assert_eq!(resp["error"]["message"], "upstream MCP server 'upstream' closed the connection before answering");
}

#[tokio::test]
async fn backend_timeout() {
    let upstream = faulty::serve(Fault::Hang).await.unwrap();
    let extra = "      policies:\n        timeout:\n          backendRequestTimeout: 300ms\n";
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), extra)).await.unwrap();
    let (status, error, _) = call_error(&gw).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error["message"], "upstream MCP server 'upstream' did not answer within 300ms");
}

#[tokio::test]
async fn request_timeout_cuts_a_slow_stream() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let extra = "      policies:\n        timeout:\n          requestTimeout: 1s\n";
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), extra)).await.unwrap();
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    let resp = client.call_tool("sleep", json!({"ms": 5000})).await.unwrap();
    assert_eq!(resp["error"]["message"], "upstream MCP server 'upstream' did not answer within 1s");
    let resp = client.call_tool("sleep", json!({"ms": 10})).await.unwrap();
    assert_eq!(first_text(&resp), Some("Slept 10 ms"));
}

#[tokio::test]
async fn upstream_killed_mid_request_then_restarted() {
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let upstream = reference::serve(addr, Default::default()).await.unwrap();
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), "")).await.unwrap();
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();

    let call = tokio::spawn(async move {
        let resp = client.call_tool("sleep", json!({"ms": 10_000})).await;
        (client, resp)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    upstream.stop().await; // every connection closes, as if the process died
    let (_, resp) = tokio::time::timeout(Duration::from_secs(10), call).await.expect("the client is answered").unwrap();
    let resp = resp.unwrap();
    assert_eq!(resp["error"]["code"], -32603, "{resp}");
    assert_eq!(resp["error"]["message"], "upstream MCP server 'upstream' closed the connection before answering");

    // The upstream comes back (its sessions are gone): a new session works.
    let _upstream = reference::serve(addr, Default::default()).await.unwrap();
    let mut client = McpClient::new(gw.url("/mcp"));
    client.initialize().await.unwrap();
    assert_eq!(first_text(&client.call_tool("echo", json!({"message": "back"})).await.unwrap()), Some("Echo: back"));
}
