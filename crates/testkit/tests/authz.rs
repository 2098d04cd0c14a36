//! mcpAuthorization and HTTP authorization through the gateway: list filtering with
//! pagination, denials for every item kind, batches, argument-aware rules, 403s.

use agw_mcp::body;
use agw_testkit::client::McpClient;
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::serve;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// An upstream with paginated tools (a,b | c,d | e), prompts, resources and templates.
async fn catalogue() -> serve::Server {
    serve::app("127.0.0.1:0".parse().unwrap(), |req| async move {
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        let msg: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let answer = |m: &Value| -> Option<Value> {
            let id = m.get("id")?.clone();
            let cursor = m["params"]["cursor"].as_str().unwrap_or("");
            let result = match m["method"].as_str()? {
                "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}, "prompts": {}, "resources": {}}, "serverInfo": {"name": "catalogue", "version": "1"}}),
                "tools/list" => match cursor {
                    "" => json!({"tools": [{"name": "a", "inputSchema": {"type": "object"}}, {"name": "b", "inputSchema": {"type": "object"}}], "nextCursor": "p2"}),
                    "p2" => json!({"tools": [{"name": "c", "inputSchema": {"type": "object"}}, {"name": "d", "inputSchema": {"type": "object"}}], "nextCursor": "p3"}),
                    _ => json!({"tools": [{"name": "e", "inputSchema": {"type": "object"}}]}),
                },
                "prompts/list" => json!({"prompts": [{"name": "public-greeting"}, {"name": "internal-audit"}]}),
                "resources/list" => json!({"resources": [{"uri": "file:///public/readme.md", "name": "readme"}, {"uri": "file:///etc/secrets", "name": "secrets"}]}),
                "resources/templates/list" => json!({"resourceTemplates": [{"uriTemplate": "file:///public/{name}", "name": "pub"}, {"uriTemplate": "file:///private/{name}", "name": "priv"}]}),
                "tools/call" => json!({"content": [{"type": "text", "text": format!("called {} with {}", m["params"]["name"], m["params"]["arguments"])}]}),
                // Not a list method, but its answer holds a list: filtered all the same.
                "x/tools" => json!({"tools": [{"name": "a"}, {"name": "b"}]}),
                "prompts/get" => json!({"messages": [{"role": "user", "content": {"type": "text", "text": "hello"}}]}),
                "resources/read" => json!({"contents": [{"uri": m["params"]["uri"], "text": "content"}]}),
                _ => json!({}),
            };
            Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
        };
        let reply = match &msg {
            Value::Array(items) => {
                let out: Vec<Value> = items.iter().filter_map(answer).collect();
                (!out.is_empty()).then_some(Value::Array(out))
            }
            m => answer(m),
        };
        let mut r = match reply {
            Some(v) => {
                let mut r = Response::new(body::full(v.to_string()));
                r.headers_mut().insert("content-type", "application/json".parse().unwrap());
                r
            }
            None => {
                let mut r = Response::new(body::empty());
                *r.status_mut() = StatusCode::ACCEPTED;
                r
            }
        };
        r.headers_mut().insert("mcp-session-id", "s".parse().unwrap());
        r
    })
    .await
    .unwrap()
}

const RULES: &str = r#"      policies:
        mcpAuthorization:
          rules:
          - 'mcp.tool.name in ["a", "d", "e"]'
          - 'mcp.tool.name == "c" && mcp.tool.arguments.mode == "safe"'
          - 'has(mcp.prompt.name) && mcp.prompt.name.startsWith("public-")'
          - 'has(mcp.resource.name) && mcp.resource.name.startsWith("file:///public/")'
"#;

async fn client(gw: &Gateway) -> McpClient {
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    c
}

fn names(result: &Value, list: &str, field: &str) -> Vec<String> {
    result[list].as_array().unwrap().iter().map(|i| i[field].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn lists_are_filtered_and_pagination_still_works() {
    let upstream = catalogue().await;
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), RULES)).await.unwrap();
    let c = client(&gw).await;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = c.request("tools/list", params).await.unwrap();
        pages += 1;
        all.extend(names(&page, "tools", "name"));
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3, "cursors survive filtering");
    assert_eq!(names(&c.request("x/tools", json!({})).await.unwrap(), "tools", "name"), ["a"], "by shape, not method");
    // `b` is never allowed; `c` is listed because some arguments could allow it.
    assert_eq!(all, ["a", "c", "d", "e"]);
    assert_eq!(names(&c.request("prompts/list", json!({})).await.unwrap(), "prompts", "name"), ["public-greeting"]);
    assert_eq!(
        names(&c.request("resources/list", json!({})).await.unwrap(), "resources", "uri"),
        ["file:///public/readme.md"]
    );
    assert_eq!(
        names(&c.request("resources/templates/list", json!({})).await.unwrap(), "resourceTemplates", "uriTemplate"),
        ["file:///public/{name}"]
    );
}

#[tokio::test]
async fn calls_are_checked_with_their_real_arguments() {
    let upstream = catalogue().await;
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), RULES)).await.unwrap();
    let c = client(&gw).await;
    assert!(c.call_tool("c", json!({"mode": "safe"})).await.unwrap().get("result").is_some());
    let denied = c.call_tool("c", json!({"mode": "yolo"})).await.unwrap();
    assert_eq!(denied["error"], json!({"code": -32602, "message": "Unknown tool: c"}));
    let no_args = c.request_with("tools/call", json!({"name": "c"}), None).await.unwrap().1;
    assert_eq!(no_args["error"]["code"], -32602, "missing arguments do not satisfy an argument rule");
    assert_eq!(c.call_tool("b", json!({})).await.unwrap()["error"]["message"], "Unknown tool: b");

    let (_, p) = c.request_with("prompts/get", json!({"name": "internal-audit"}), None).await.unwrap();
    assert_eq!(p["error"], json!({"code": -32602, "message": "Unknown prompt: internal-audit"}));
    assert!(c.request("prompts/get", json!({"name": "public-greeting"})).await.is_ok());
    let (_, r) = c.request_with("resources/read", json!({"uri": "file:///etc/secrets"}), None).await.unwrap();
    assert_eq!(
        r["error"],
        json!({"code": -32002, "message": "Resource not found", "data": {"uri": "file:///etc/secrets"}})
    );
    let (_, s) = c.request_with("resources/subscribe", json!({"uri": "file:///etc/secrets"}), None).await.unwrap();
    assert_eq!(s["error"]["code"], -32002);
    assert!(c.request("resources/read", json!({"uri": "file:///public/readme.md"})).await.is_ok());
}

#[tokio::test]
async fn batches_are_checked_request_by_request() {
    let upstream = catalogue().await;
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), RULES)).await.unwrap();
    let mut c = client(&gw).await;
    // Batches exist in protocol 2025-03-26: a session opened with it.
    c.session = None;
    c.initialize_version("2025-03-26").await.unwrap();
    c.protocol = Some("2025-03-26".into());
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "b", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
    ]);
    let ex = c.post(&batch).await.unwrap();
    assert_eq!(ex.status, StatusCode::OK);
    assert_eq!(ex.messages.len(), 3, "{:?}", ex.messages);
    assert!(ex.response(&json!(1)).unwrap().get("result").is_some());
    assert_eq!(ex.response(&json!(2)).unwrap()["error"]["message"], "Unknown tool: b");
    assert_eq!(names(&ex.response(&json!(3)).unwrap()["result"], "tools", "name"), ["a"]);

    let all_denied = json!([
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "b"}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
    ]);
    let ex = c.post(&all_denied).await.unwrap();
    assert_eq!(
        ex.status,
        StatusCode::OK,
        "the refused request is answered even though only a notification went upstream"
    );
    assert_eq!(ex.messages.len(), 1);
    assert_eq!(ex.response(&json!(7)).unwrap()["error"]["code"], -32602);
}

#[tokio::test]
async fn claims_decide_with_jwt_rules_and_errors_are_not_true() {
    let upstream = catalogue().await;
    // A deny rule over a claim the anonymous caller lacks does not deny (errors are not true);
    // a require rule over it does.
    let rules = "      policies:\n        mcpAuthorization:\n          rules:\n          - deny: 'jwt.sub == \"mallory\"'\n          - 'true'\n";
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), rules)).await.unwrap();
    assert_eq!(client(&gw).await.tool_names().await.unwrap(), ["a", "b"]);
    let rules = "      policies:\n        mcpAuthorization:\n          rules:\n          - require: 'jwt.sub == \"alice\"'\n          - 'true'\n";
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), rules)).await.unwrap();
    assert!(client(&gw).await.tool_names().await.unwrap().is_empty());
}

#[tokio::test]
async fn http_authorization_merges_listener_and_route_rules() {
    let upstream = catalogue().await;
    let yaml = format!(
        "binds:
- port: 0
  listeners:
  - policies:
      authorization:
        rules:
        - deny: 'request.headers[\"x-blocked\"] == \"yes\"'
    routes:
    - policies:
        authorization:
          rules:
          - 'request.path == \"/mcp\"'
          - 'source.address == \"127.0.0.1\" && request.method == \"GET\"'
      backends:
      - mcp:
          targets:
          - name: t
            mcp:
              host: {}
",
        upstream.url("/mcp")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut ok = McpClient::new(gw.url("/mcp"));
    ok.initialize().await.unwrap();
    let blocked = McpClient::new(gw.url("/mcp")).with_header("x-blocked", "yes");
    let ex = blocked.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.unwrap();
    assert_eq!(ex.status, StatusCode::FORBIDDEN, "a listener deny wins");
    assert_eq!(
        String::from_utf8_lossy(&ex.body),
        r#"{"error":"the request is not allowed by the authorization rules"}"#
    );
    let elsewhere = McpClient::new(gw.url("/other"));
    assert_eq!(
        elsewhere.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.unwrap().status,
        StatusCode::FORBIDDEN,
        "no allow rule matched"
    );
    let get_elsewhere = McpClient::new(gw.url("/other")).get_stream(&[], |_| true).await.unwrap();
    assert_ne!(get_elsewhere.status, StatusCode::FORBIDDEN, "the second allow rule admits local GETs");
}

#[tokio::test]
async fn rule_errors_are_config_errors_with_positions() {
    let text = mcp_route(
        "http://127.0.0.1:1/mcp",
        "      policies:\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == '\n          - 'claims.sub == \"x\"'\n",
    );
    let loaded = agw_config::load_str("c.yaml", &text).unwrap();
    let err = agw_gateway::resolve(&loaded).unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(
            "c.yaml:9:13: binds[0].listeners[0].routes[0].policies.mcpAuthorization.rules[0]: invalid CEL at column 18"
        ),
        "{err}"
    );
    assert!(lines[1].starts_with("c.yaml:10:13: binds[0].listeners[0].routes[0].policies.mcpAuthorization.rules[1]: unknown variable `claims`"), "{err}");

    let warned = mcp_route(
        "http://127.0.0.1:1/mcp",
        "      policies:\n        mcpAuthorization:\n          rules:\n          - deny: 'jwt.sub == \"x\"'\n",
    );
    let runtime = agw_gateway::resolve(&agw_config::load_str("c.yaml", &warned).unwrap()).unwrap();
    assert_eq!(runtime.warnings.len(), 1);
    assert!(
        runtime.warnings[0]
            .contains("rules[0]: deny rule `jwt.sub == \"x\"` does not deny when it cannot be evaluated"),
        "{:?}",
        runtime.warnings
    );
}
