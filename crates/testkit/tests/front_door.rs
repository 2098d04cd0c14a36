//! agentgateway's front-door shapes, running: the `mcp:` shorthand (standalone and on a
//! gateway), gateway policies, and named backends, driven by our client and by the official
//! TypeScript SDK client. The `mcp-basic` and `mcp-authorization` shapes are the files in
//! `examples/front-door`, with ports and paths adjusted for the test.

use std::path::PathBuf;

use agw_testkit::client::{McpClient, first_text, http};
use agw_testkit::harness::Gateway;
use agw_testkit::{node, reference};
use http::StatusCode;
use serde_json::{Value, json};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").canonicalize().unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(examples().join("front-door").join(name)).unwrap()
}

fn token(name: &str) -> String {
    std::fs::read_to_string(examples().join("tutorial").join(name)).unwrap().trim().to_string()
}

/// Runs `tests/node/sdk-client.mjs` against `url`; its JSON report.
async fn sdk(url: &str, steps: &[&str], env: &[(&str, &str)]) -> Value {
    let mut args = vec![url];
    args.extend_from_slice(steps);
    let (ok, stdout, stderr) = node::run_script_env("sdk-client.mjs", &args, env).await;
    assert!(ok, "{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap()
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().filter_map(Value::as_str).collect()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_basic_shape_serves_every_path_streamable_and_legacy_sse() {
    let args = format!("args: [{:?}, stdio]", node::server_everything_js());
    let text = fixture("mcp-basic.yaml")
        .replace("port: 3000", "port: 0")
        .replace("cmd: npx", "cmd: node")
        .replace(r#"args: ["-y", "@modelcontextprotocol/server-everything"]"#, &args);
    assert!(text.contains("stdio"), "{text}");
    let gw = Gateway::start(&text).await.unwrap();

    let out = sdk(&gw.url("/mcp"), &["echo"], &[]).await;
    assert!(names(&out["tools"]).contains(&"get-sum"), "{out}");
    assert_eq!(out["echo"], "Echo: hello from the SDK");
    // The legacy HTTP+SSE transport on /sse, as agentgateway's README for this example says.
    let legacy = sdk(&gw.url("/sse"), &["echo"], &[("MCP_TRANSPORT", "sse")]).await;
    assert_eq!(legacy["echo"], "Echo: hello from the SDK");
    // Standalone, the route takes every path.
    let mut anywhere = McpClient::new(gw.url("/any/path"));
    assert!(anywhere.initialize().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_authorization_shape_with_server_everything_and_the_sdk_client() {
    let (_everything, url) = node::server_everything_http().await;
    let key = examples().join("tutorial/pub-key");
    let text = fixture("mcp-authorization.yaml")
        .replace("port: 3000", "port: 0")
        .replace("http://localhost:3001/mcp", &url)
        .replace("file: ../tutorial/pub-key", &format!("file: {}", key.display()));
    let gw = Gateway::start(&text).await.unwrap();

    let (_, t1) = tools_for(&gw, Some(&token("example1.key"))).await;
    assert_eq!(t1, ["echo", "get-env", "get-sum"]);
    let (c2, t2) = tools_for(&gw, Some(&token("example2.key"))).await;
    assert_eq!(t2, ["echo", "get-sum"]);
    let (_, t0) = tools_for(&gw, None).await;
    assert_eq!(t0, ["echo"], "no token: anonymous, sees the public tool only");
    assert_eq!(c2.call_tool("get-env", json!({})).await.unwrap()["error"]["code"], -32602);

    let out = sdk(&gw.url("/mcp"), &["echo", "call:get-env"], &[("MCP_BEARER", &token("example2.key"))]).await;
    assert_eq!(names(&out["tools"]), ["echo", "get-sum"]);
    assert_eq!(out["echo"], "Echo: hello from the SDK");
    assert_eq!(out["call:get-env"]["error"]["name"], "McpError", "{}", out["call:get-env"]);
    assert_eq!(out["call:get-env"]["error"]["code"], -32602);
    let with_env = sdk(&gw.url("/mcp"), &["call:get-env"], &[("MCP_BEARER", &token("example1.key"))]).await;
    assert!(with_env["call:get-env"]["result"].is_object(), "{with_env}");

    let mut bad = McpClient::new(gw.url("/mcp")).with_header("authorization", "Bearer not.a.token");
    assert!(bad.initialize().await.unwrap_err().to_string().contains("401"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_on_the_default_gateway_answers_on_its_paths_under_gateway_policies() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let text = format!(
        "gateways:\n  default:\n    port: 0\n    authorization:\n      rules:\n      - 'request.method != \"DELETE\"'\nmcp:\n  targets:\n  - name: upstream\n    mcp:\n      host: {}\n",
        upstream.url("/mcp")
    );
    let gw = Gateway::start(&text).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    assert_eq!(first_text(&c.call_tool("echo", json!({"message": "hi"})).await.unwrap()), Some("Echo: hi"));
    let legacy = sdk(&gw.url("/sse"), &[], &[("MCP_TRANSPORT", "sse")]).await;
    assert!(names(&legacy["tools"]).contains(&"echo"), "{legacy}");
    // Only /mcp, /sse and /.well-known reach the MCP route on a shared gateway.
    let mut elsewhere = McpClient::new(gw.url("/other"));
    assert!(elsewhere.initialize().await.unwrap_err().to_string().contains("404"));
    // The gateway's own policy runs before the route: DELETE is refused.
    let (status, _) = http("DELETE", &gw.url("/mcp"), &[], "").await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn named_backends_serve_routes_and_mcp_targets() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let text = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - backend: /tools\nbackends:\n- name: tools\n  mcp:\n    targets:\n    - name: one\n      mcp:\n        backend: upstream\n        path: /mcp\n- name: upstream\n  host: {}\n",
        upstream.addr
    );
    let gw = Gateway::start(&text).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    assert_eq!(first_text(&c.call_tool("echo", json!({"message": "named"})).await.unwrap()), Some("Echo: named"));
}

/// The `mcp:` form and its `binds` form, running: `/config_dump` shows one effective config.
#[tokio::test]
async fn shorthand_and_binds_forms_dump_the_same_config() {
    let dump = |gw: &Gateway| {
        let admin = gw.admin.unwrap();
        async move {
            let (status, body) = http("GET", &format!("http://{admin}/config_dump"), &[], "").await.unwrap();
            assert_eq!(status, 200);
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    let short = "mcp:\n  port: 0\n  policies:\n    cors:\n      allowOrigins: ['*']\n  targets:\n  - name: upstream\n    mcp:\n      host: http://localhost:3001/mcp\n";
    let binds = "binds:\n- port: 0\n  listeners:\n  - name: mcp\n    routes:\n    - name: default\n      namespace: internal\n      matches:\n      - path:\n          pathPrefix: /\n      policies:\n        cors:\n          allowOrigins: ['*']\n      backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: http://localhost:3001/mcp\n";
    let (a, b) = (Gateway::start(short).await.unwrap(), Gateway::start(binds).await.unwrap());
    let (da, db) = (dump(&a).await, dump(&b).await);
    assert_eq!(da, db);
    assert_eq!(da["binds"][0]["listeners"][0]["routes"][0]["name"], "default", "{da}");
    assert!(da.get("mcp").is_none());
}

/// A changed `mcp.policies` in a watched file reaches the open session, as in `binds` form.
#[tokio::test]
async fn shorthand_config_reloads_without_dropping_sessions() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("agw-front-door-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    let config = |rules: &str| {
        let yaml = format!(
            "mcp:\n  port: 0\n  policies:\n    mcpAuthorization:\n      rules: [{rules}]\n  targets:\n  - name: upstream\n    mcp:\n      host: {}\n",
            upstream.url("/mcp")
        );
        agw_testkit::harness::with_free_ports(&yaml)
    };
    std::fs::write(&path, config(r#"'mcp.tool.name == "echo"'"#)).unwrap();
    let gw = Gateway::start_file(&path).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    assert_eq!(c.tool_names().await.unwrap(), ["echo"]);
    std::fs::write(&path, config(r#"'mcp.tool.name == "echo"', 'mcp.tool.name == "add"'"#)).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.tool_names().await.unwrap() != ["echo", "add"] {
        assert!(tokio::time::Instant::now() < deadline, "the new rule never applied");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mcp:` on a gateway with MCP OAuth: the metadata path under `/.well-known` reaches it, and
/// an unauthenticated call is told where to look.
#[tokio::test]
async fn mcp_on_a_gateway_serves_its_oauth_metadata() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let key = examples().join("tutorial/pub-key");
    let text = format!(
        "gateways:\n  default:\n    port: 0\nmcp:\n  policies:\n    mcpAuthentication:\n      issuer: agentgateway.dev\n      audiences: [test.agentgateway.dev]\n      jwks:\n        file: {}\n      resourceMetadata:\n        resource: http://localhost:3000/mcp\n  targets:\n  - name: upstream\n    mcp:\n      host: {}\n",
        key.display(),
        upstream.url("/mcp")
    );
    let gw = Gateway::start(&text).await.unwrap();
    let (status, body) = http("GET", &gw.url("/.well-known/oauth-protected-resource/mcp"), &[], "").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let meta: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["resource"], "http://localhost:3000/mcp");
    let mut anonymous = McpClient::new(gw.url("/mcp"));
    assert!(anonymous.initialize().await.unwrap_err().to_string().contains("401"));
    let mut c =
        McpClient::new(gw.url("/mcp")).with_header("authorization", &format!("Bearer {}", token("example1.key")));
    assert!(c.initialize().await.is_ok());
}
