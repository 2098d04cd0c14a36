//! agentgateway's "JWT Authorization" tutorial, step by step: the verbatim config with its
//! keys against our example server, and the same with today's `server-everything` tool names
//! behind the real npm server and the TypeScript SDK client.

use std::path::PathBuf;

use agw_testkit::client::{McpClient, first_text};
use agw_testkit::harness::Gateway;
use agw_testkit::{node, reference};
use http::StatusCode;
use serde_json::{Value, json};

fn tutorial_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/tutorial").canonicalize().unwrap()
}

fn token(name: &str) -> String {
    std::fs::read_to_string(tutorial_dir().join(name)).unwrap().trim().to_string()
}

/// The tutorial's config file, pointed at `upstream`, on a free port, with the JWKS path made
/// absolute (the test does not run in the tutorial's directory).
fn tutorial_config(upstream: &str, rename: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(tutorial_dir().join("config.yaml")).unwrap();
    text = text.replace("- port: 3000", "- port: 0");
    text = text.replace("http://localhost:3001/mcp", upstream);
    text = text.replace("file: ./pub-key", &format!("file: {}", tutorial_dir().join("pub-key").display()));
    for (from, to) in rename {
        text = text.replace(&format!("\"{from}\""), &format!("\"{to}\""));
    }
    text
}

async fn tools_for(gw: &Gateway, bearer: Option<&str>) -> (McpClient, Vec<String>) {
    let mut c = McpClient::new(gw.url("/mcp"));
    if let Some(t) = bearer {
        c = c.with_header("authorization", &format!("Bearer {t}"));
    }
    c.initialize().await.unwrap();
    let mut tools = c.tool_names().await.unwrap();
    tools.sort();
    (c, tools)
}

#[tokio::test]
async fn verbatim_tutorial_config_with_the_example_server() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let gw = Gateway::start(&tutorial_config(&upstream.url("/mcp"), &[])).await.unwrap();
    let (c1, t1) = tools_for(&gw, Some(&token("example1.key"))).await;
    assert_eq!(t1, ["add", "echo", "printEnv"]);
    let (c2, t2) = tools_for(&gw, Some(&token("example2.key"))).await;
    assert_eq!(t2, ["add", "echo"]);
    let (anon, t0) = tools_for(&gw, None).await;
    assert_eq!(t0, ["echo"], "optional mode: no token is anonymous and sees the public tool");

    assert_eq!(
        first_text(&c1.call_tool("add", json!({"a": 1, "b": 2})).await.unwrap()),
        Some("The sum of 1 and 2 is 3.")
    );
    assert!(
        first_text(&c1.call_tool("printEnv", json!({})).await.unwrap()).unwrap().starts_with("Environment variables")
    );
    let denied = c2.call_tool("printEnv", json!({})).await.unwrap();
    let missing = c2.call_tool("no-such-tool", json!({})).await.unwrap();
    assert_eq!(denied["error"]["code"], -32602);
    assert_eq!(denied["error"]["message"], "Unknown tool: printEnv");
    assert_eq!(missing["error"]["message"], "Unknown tool: no-such-tool", "denied and missing look alike");
    assert_eq!(anon.call_tool("add", json!({"a": 1, "b": 2})).await.unwrap()["error"]["code"], -32602);
    assert_eq!(first_text(&anon.call_tool("echo", json!({"message": "hi"})).await.unwrap()), Some("Echo: hi"));

    // A bad or expired token is refused outright.
    let mut bad = McpClient::new(gw.url("/mcp")).with_header("authorization", "Bearer not.a.token");
    assert!(bad.initialize().await.unwrap_err().to_string().contains("401"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_with_server_everything_and_the_sdk_client() {
    let (_everything, url) = node::server_everything_http().await;
    let names = [("add", "get-sum"), ("printEnv", "get-env")];
    let gw = Gateway::start(&tutorial_config(&url, &names)).await.unwrap();
    let (_, t1) = tools_for(&gw, Some(&token("example1.key"))).await;
    assert_eq!(t1, ["echo", "get-env", "get-sum"]);
    let (c2, t2) = tools_for(&gw, Some(&token("example2.key"))).await;
    assert_eq!(t2, ["echo", "get-sum"]);
    let (_, t0) = tools_for(&gw, None).await;
    assert_eq!(t0, ["echo"]);
    let denied = c2.call_tool("get-env", json!({})).await.unwrap();
    let missing = c2.call_tool("get-nothing", json!({})).await.unwrap();
    assert_eq!(denied["error"]["code"], missing["error"]["code"]);
    assert_eq!(
        denied["error"]["message"].as_str().unwrap().replace("get-env", "X"),
        missing["error"]["message"].as_str().unwrap().replace("get-nothing", "X")
    );

    // The official SDK client sees the refusal as an MCP error, not a transport failure.
    let (ok, stdout, stderr) = node::run_script_env(
        "sdk-client.mjs",
        &[&gw.url("/mcp"), "echo", "call:get-env"],
        &[("MCP_BEARER", &token("example2.key"))],
    )
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    let tools: Vec<&str> = out["tools"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(tools, ["echo", "get-sum"]);
    assert_eq!(out["echo"], "Echo: hello from the SDK");
    assert_eq!(out["call:get-env"]["error"]["name"], "McpError", "{}", out["call:get-env"]);
    assert_eq!(out["call:get-env"]["error"]["code"], -32602);

    let bad = McpClient::new(gw.url("/mcp")).with_header("authorization", "Bearer expired.or.bad");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    assert_eq!(bad.post_bytes(init, None).await.unwrap().status, StatusCode::UNAUTHORIZED);
}
