//! `openapi` MCP targets end to end: a real REST service — a FastAPI app from PyPI
//! (`tests/python/rest_api.py`), its generated OpenAPI 3.1 spec fetched by URL — and a
//! Petstore-shaped spec of our own loaded from a file (`tests/openapi/petstore.yaml`) in front of
//! an echo service that records what reaches it. Listed and called through the gateway by our
//! client, the official TypeScript SDK client and the official Python SDK client. Needs the npm
//! and PyPI peers (`.ci/run` installs them).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agw_mcp::body;
use agw_testkit::client::McpClient;
use agw_testkit::harness::Gateway;
use agw_testkit::node::{self, Process};
use agw_testkit::{python, serve};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// FastAPI under uvicorn on a free port; its base URL.
async fn rest_api() -> (Process, String) {
    let port = node::free_port().await;
    let script = python::dir().join("rest_api.py");
    let p = Process::spawn(
        "rest-api",
        &python::interpreter().to_string_lossy(),
        &[&script.to_string_lossy(), &port.to_string()],
        &[],
    );
    node::wait_for_port(port, Duration::from_secs(30)).await;
    (p, format!("127.0.0.1:{port}"))
}

/// One request as the echo service saw it: method, path and query, authorization, body.
type Seen = (String, String, Option<String>, String);

/// A REST service that answers every request with what it received, as JSON.
async fn echo_service() -> (serve::Server, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = serve::app(addr, move |req| {
        let log = log.clone();
        async move {
            let (parts, b) = req.into_parts();
            let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let entry = (
                parts.method.to_string(),
                parts.uri.path_and_query().map_or_else(String::new, |p| p.to_string()),
                parts.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
            log.lock().unwrap().push(entry.clone());
            let status = if parts.uri.path().ends_with("/missing") { StatusCode::NOT_FOUND } else { StatusCode::OK };
            let body = json!({"method": entry.0, "path": entry.1, "body": entry.3});
            let mut r = Response::new(body::full(body.to_string()));
            *r.status_mut() = status;
            r.headers_mut().insert("content-type", "application/json".parse().unwrap());
            r
        }
    })
    .await
    .unwrap();
    (server, seen)
}

fn petstore() -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/openapi/petstore.yaml")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// Two routes: `/mcp` with both targets, `/ro/mcp` with a rule that lets only read operations
/// through.
fn config(rest: &str, echo: &str) -> String {
    let targets = format!(
        "          targets:\n          - name: inventory\n            openapi:\n              host: {rest}\n              schema: {{url: 'http://{rest}/openapi.json'}}\n          - name: pets\n            openapi:\n              host: {echo}\n              schema: {{file: {}}}\n            policies:\n              backendAuth:\n                key: pet-secret\n",
        petstore()
    );
    format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: readonly\n      matches:\n      - path:\n          pathPrefix: /ro/\n      policies:\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name in [\"get_item\", \"list_items\", \"listPets\", \"showPetById\"]'\n      backends:\n      - mcp:\n{targets}    - name: all\n      backends:\n      - mcp:\n{targets}"
    )
}

fn result(response: &Value) -> &Value {
    &response["result"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_operations_are_listed_and_called_as_tools() {
    let (_api, rest) = rest_api().await;
    let (echo, seen) = echo_service().await;
    let gw = Gateway::start(&config(&rest, &echo.addr.to_string())).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let mut names = c.tool_names().await.unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "inventory_boom",
            "inventory_create_item",
            "inventory_delete_item",
            "inventory_get_item",
            "inventory_list_items",
            "pets_createPets",
            "pets_delete_pets_petId",
            "pets_listPets",
            "pets_showPetById",
        ]
    );

    // Path, query and header parameters arrive as sent (FastAPI reflects them).
    let args = json!({"path": {"item_id": 1}, "query": {"verbose": true}, "header": {"x-request-tag": "t-1"}});
    let r = c.call_tool("inventory_get_item", args).await.unwrap();
    let out = result(&r);
    assert_eq!(out["isError"], false, "{r}");
    assert_eq!(
        out["structuredContent"],
        json!({"id": 1, "name": "hammer", "tags": ["tools"], "verbose": true, "tag_header": "t-1"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(out["content"][0]["text"].as_str().unwrap()).unwrap(),
        out["structuredContent"]
    );

    // A JSON body; an array query parameter.
    let r = c.call_tool("inventory_create_item", json!({"body": {"name": "saw", "tags": ["wood"]}})).await.unwrap();
    assert_eq!(result(&r)["structuredContent"], json!({"id": 2, "name": "saw", "tags": ["wood"]}), "{r}");
    let r = c.call_tool("inventory_list_items", json!({"query": {"tag": ["wood", "none"], "limit": 5}})).await.unwrap();
    assert_eq!(result(&r)["structuredContent"]["items"], json!([{"id": 2, "name": "saw", "tags": ["wood"]}]), "{r}");
    assert_eq!(result(&r)["structuredContent"]["tags"], json!(["wood", "none"]));

    // Errors: a 404 and a 500 are tool errors with the status and the body; FastAPI's own
    // validation (a 422) too.
    let r = c.call_tool("inventory_get_item", json!({"path": {"item_id": 999}})).await.unwrap();
    let text = result(&r)["content"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(result(&r)["isError"], true, "{r}");
    assert!(text.starts_with("HTTP 404") && text.contains("no item 999"), "{text}");
    let r = c.call_tool("inventory_boom", json!({})).await.unwrap();
    assert_eq!(result(&r)["isError"], true);
    assert!(result(&r)["content"][0]["text"].as_str().unwrap().contains("HTTP 500"), "{r}");
    let r = c.call_tool("inventory_get_item", json!({"path": {"item_id": "not-a-number"}})).await.unwrap();
    assert!(result(&r)["content"][0]["text"].as_str().unwrap().starts_with("HTTP 422"), "{r}");
    let r = c.call_tool("inventory_get_item", json!({})).await.unwrap();
    assert!(result(&r)["content"][0]["text"].as_str().unwrap().contains("missing path parameter `item_id`"), "{r}");

    // The spec from a file: base path, escaped path values, declared parameters only, the
    // target's credentials.
    seen.lock().unwrap().clear();
    c.call_tool("pets_showPetById", json!({"path": {"petId": "a/b c"}})).await.unwrap();
    c.call_tool("pets_listPets", json!({"query": {"limit": 5, "species": ["cat", "dog"], "evil": "1"}})).await.unwrap();
    let r = c.call_tool("pets_createPets", json!({"body": {"id": 7, "name": "Rex"}})).await.unwrap();
    assert_eq!(result(&r)["structuredContent"]["method"], "POST", "{r}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("GET".into(), "/v1/pets/a%2Fb%20c".into(), Some("Bearer pet-secret".into()), String::new()),
            (
                "GET".into(),
                "/v1/pets?limit=5&species=cat&species=dog".into(),
                Some("Bearer pet-secret".into()),
                String::new()
            ),
            ("POST".into(), "/v1/pets".into(), Some("Bearer pet-secret".into()), r#"{"id":7,"name":"Rex"}"#.into()),
        ]
    );

    // An unknown tool is a protocol error.
    let e = c.request("tools/call", json!({"name": "pets_nope", "arguments": {}})).await.unwrap_err().to_string();
    assert!(e.contains("Unknown tool: nope"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_allows_only_read_operations_filters_the_list() {
    let (_api, rest) = rest_api().await;
    let (echo, _seen) = echo_service().await;
    let gw = Gateway::start(&config(&rest, &echo.addr.to_string())).await.unwrap();
    let mut c = McpClient::new(gw.url("/ro/mcp"));
    c.initialize().await.unwrap();
    let mut names = c.tool_names().await.unwrap();
    names.sort();
    assert_eq!(names, ["inventory_get_item", "inventory_list_items", "pets_listPets", "pets_showPetById"]);
    let r = c.call_tool("inventory_delete_item", json!({"path": {"item_id": 1}})).await.unwrap();
    assert!(r.get("error").is_some() || result(&r)["isError"] == true, "a write operation went through: {r}");
    // Still there.
    let r = c.call_tool("inventory_get_item", json!({"path": {"item_id": 1}})).await.unwrap();
    assert_eq!(result(&r)["structuredContent"]["name"], "hammer", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_and_python_sdk_clients_list_and_call_rest_tools() {
    let (_api, rest) = rest_api().await;
    let (echo, _seen) = echo_service().await;
    let gw = Gateway::start(&config(&rest, &echo.addr.to_string())).await.unwrap();
    let url = gw.url("/mcp");

    let step = r#"call:inventory_get_item={"path":{"item_id":1},"query":{"verbose":true}}"#;
    let (ok, stdout, stderr) = node::run_script("sdk-client.mjs", &[&url, step]).await;
    assert!(ok, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(out["tools"].as_array().unwrap().len() == 9, "{out}");
    assert_eq!(out["annotations"]["inventory_get_item"]["readOnlyHint"], true, "{out}");
    assert_eq!(out["annotations"]["inventory_delete_item"]["destructiveHint"], true, "{out}");
    let called = &out["call:inventory_get_item"]["result"];
    assert_eq!(called["structuredContent"]["verbose"], true, "{out}");
    assert_eq!(called["isError"], false, "{out}");

    let args = [url.as_str(), "", "inventory_list_items", r#"{"query": {"limit": 1}}"#];
    let (ok, stdout, stderr) = python::run_script("sdk_client.py", &args).await;
    assert!(ok, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(out["tools"].as_array().unwrap().iter().any(|t| t == "pets_createPets"), "{out}");
    let text: Value = serde_json::from_str(out["result"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["limit"], 1, "{out}");
    assert_eq!(text["items"][0]["name"], "hammer", "{out}");
}

/// `examples/openapi/config.yaml` as the example runs it, against the same service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_serves_the_read_operations() {
    let (_api, rest) = rest_api().await;
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/openapi/config.yaml");
    let yaml = std::fs::read_to_string(path).unwrap().replace("port: 3000", "port: 0").replace("127.0.0.1:8000", &rest);
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let mut names = c.tool_names().await.unwrap();
    names.sort();
    assert_eq!(names, ["get_item", "list_items"]);
    let r = c.call_tool("get_item", json!({"path": {"item_id": 1}})).await.unwrap();
    assert_eq!(result(&r)["structuredContent"]["name"], "hammer", "{r}");
}

/// Mistakes are located; a spec that cannot be used says why.
#[tokio::test]
async fn bad_targets_are_located_errors() {
    let dir = std::env::temp_dir().join(format!("agw-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let swagger = dir.join("swagger.json");
    std::fs::write(&swagger, r#"{"swagger": "2.0", "paths": {}}"#).unwrap();
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: a\n            openapi:\n              host: 'not a host'\n              schema: {{file: {}}}\n          - name: b\n            openapi:\n              host: localhost:1\n              schema: {{file: /nonexistent/spec.yaml}}\n          - name: c\n            openapi:\n              schema: 'openapi: 3.0.0'\n",
        swagger.display()
    );
    let e = Gateway::refused(&yaml).await;
    let at = "binds[0].listeners[0].routes[0].backends[0].mcp.targets";
    for want in
        [format!("{at}[0].openapi.host: `not a host` is not `host:port`"), format!("{at}[2].openapi.host: missing")]
    {
        assert!(e.contains(&want), "missing `{want}` in:\n{e}");
    }
    // Once the shape is right, the files: unreadable, or not a usable spec.
    let yaml = yaml
        .replace("'not a host'", "localhost:1")
        .replace("          - name: c\n            openapi:\n              schema: 'openapi: 3.0.0'\n", "");
    let e = Gateway::refused(&yaml).await;
    assert!(e.contains(&format!("{at}[0].openapi.schema.file: the OpenAPI spec cannot be used: Swagger 2.0")), "{e}");
    assert!(e.contains(&format!("{at}[1].openapi.schema.file: cannot read `/nonexistent/spec.yaml`")), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
