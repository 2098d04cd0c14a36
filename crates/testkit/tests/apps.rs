//! MCP Apps (`ui://` resources) through the gateway: under multiplexing the target travels in
//! the URI's authority (`ui://<target>+<rest>`) in lists, tool metadata, tool results and
//! reads; one target leaves URIs alone; `mcpAuthorization` hides UI resources and the links to
//! them; hostile URIs get JSON-RPC errors.

use agw_mcp::body;
use agw_testkit::client::{McpClient, first_text};
use agw_testkit::harness::{Gateway, mcp_route, metric};
use agw_testkit::reference::{self, apps::DASHBOARD_URI};
use agw_testkit::{node, serve};
use http::Response;
use http_body_util::BodyExt;
use serde_json::{Value, json};

const EXAMPLE_SERVER: &str = env!("CARGO_BIN_EXE_mcp-example-server");
const APP_MIME: &str = "text/html;profile=mcp-app";

async fn app_server(name: &str) -> serve::Server {
    let opts = reference::Options { name: Some(name.into()), apps: true, ..Default::default() };
    reference::serve("127.0.0.1:0".parse().unwrap(), opts).await.unwrap()
}

/// One route whose backend has `targets` (`(name, url)`), with `policies` (YAML under the
/// route, indented by 6) and extra backend keys (indented by 10).
fn gateway_yaml(targets: &[(&str, String)], policies: &str, backend_extra: &str) -> String {
    let mut yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: apps\n{policies}      backends:\n      - mcp:\n{backend_extra}          targets:\n"
    );
    for (name, url) in targets {
        yaml.push_str(&format!("          - name: {name}\n            mcp:\n              host: {url}\n"));
    }
    yaml
}

/// A route's `mcpAuthorization` with `rules` (YAML list items, e.g. `'<allow rule>'` or
/// `deny: '<rule>'`).
fn rules(rules: &[String]) -> String {
    let mut out = String::from("      policies:\n        mcpAuthorization:\n          rules:\n");
    for r in rules {
        out.push_str(&format!("          - {r}\n"));
    }
    out
}

/// A CEL rule as a single-quoted YAML string.
fn q(rule: &str) -> String {
    format!("'{}'", rule.replace('\'', "''"))
}

async fn client(gw: &Gateway) -> McpClient {
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    c
}

/// The tool called `name` in a `tools/list` result.
fn tool<'a>(list: &'a Value, name: &str) -> &'a Value {
    let tools = list["tools"].as_array().unwrap();
    tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no tool {name} in {list}"))
}

/// `_meta.ui.resourceUri` and `_meta["ui/resourceUri"]` of a tool or a tool result.
fn links(holder: &Value) -> (Option<&str>, Option<&str>) {
    (holder["_meta"]["ui"]["resourceUri"].as_str(), holder["_meta"]["ui/resourceUri"].as_str())
}

fn uris<'a>(list: &'a Value, field: &str, key: &str) -> Vec<&'a str> {
    list[field].as_array().unwrap().iter().filter_map(|r| r[key].as_str()).collect()
}

/// The error of a request that should fail.
async fn error(c: &McpClient, method: &str, params: Value) -> Value {
    let (_, resp) = c.request_with(method, params, None).await.unwrap();
    assert!(resp.get("result").is_none(), "{method}: expected an error, got {resp}");
    resp["error"].clone()
}

#[tokio::test]
async fn two_targets_put_the_target_in_the_authority_and_read_back() {
    let (a, b) = (app_server("a").await, app_server("b").await);
    let gw = Gateway::start(&gateway_yaml(&[("a", a.url("/mcp")), ("b", b.url("/mcp"))], "", "")).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    let init = c.initialize().await.unwrap();
    assert_eq!(
        init["capabilities"]["extensions"]["io.modelcontextprotocol/ui"],
        json!({"mimeTypes": [APP_MIME]}),
        "the targets' UI extension is advertised"
    );

    let tools = c.request("tools/list", json!({})).await.unwrap();
    for target in ["a", "b"] {
        let show = tool(&tools, &format!("{target}_show_dashboard"));
        let expected = format!("ui://{target}+dashboard/app.html");
        assert_eq!(links(show), (Some(expected.as_str()), Some(expected.as_str())), "{show}");
        assert_eq!(show["_meta"]["ui"]["visibility"], json!(["model", "app"]), "the rest of _meta.ui stays");
    }

    let resources = c.request("resources/list", json!({})).await.unwrap();
    let listed = uris(&resources, "resources", "uri");
    for uri in ["ui://a+dashboard/app.html", "ui://b+dashboard/app.html", "a+test://static-text"] {
        assert!(listed.contains(&uri), "{uri} missing from {listed:?}");
    }
    assert!(!listed.iter().any(|u| u.contains("+ui://") || *u == DASHBOARD_URI), "{listed:?}");
    let templates = c.request("resources/templates/list", json!({})).await.unwrap();
    let listed = uris(&templates, "resourceTemplates", "uriTemplate");
    assert!(listed.contains(&"ui://b+dashboard/{view}.html"), "{listed:?}");

    // What a host does: take the link from the tool and read it; it reaches the right target.
    for target in ["a", "b"] {
        let link = links(tool(&tools, &format!("{target}_show_dashboard"))).0.unwrap().to_string();
        let read = c.request("resources/read", json!({"uri": link})).await.unwrap();
        let page = &read["contents"][0];
        assert_eq!(page["uri"], link, "the contents are spelled as listed");
        assert_eq!(page["mimeType"], APP_MIME);
        assert!(page["text"].as_str().unwrap().contains(&format!("app served by {target}")), "{page}");
        assert_eq!(page["_meta"], json!({"ui": {"prefersBorder": true}}), "the page's _meta passes");
    }
    let view = c.request("resources/read", json!({"uri": "ui://a+dashboard/main.html"})).await.unwrap();
    assert!(view["contents"][0]["text"].as_str().unwrap().contains("main served by a"), "a template's expansion");
    let plain = c.request("resources/read", json!({"uri": "a+test://static-text"})).await.unwrap();
    assert_eq!(plain["contents"][0]["uri"], "a+test://static-text");

    // A tool result names its UI resource too.
    let called = c.call_tool("b_show_dashboard", json!({})).await.unwrap();
    assert_eq!(first_text(&called), Some("dashboard data from b"));
    let link = "ui://b+dashboard/app.html";
    assert_eq!(links(&called["result"]), (Some(link), Some(link)), "{called}");

    assert_eq!(c.request("resources/subscribe", json!({"uri": link})).await.unwrap(), json!({}));
    let completion = c
        .request(
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "ui://a+dashboard/{view}.html"}, "argument": {"name": "view", "value": "b"}}),
        )
        .await
        .unwrap();
    assert_eq!(completion["completion"]["values"], json!(["banana"]), "completions route by the authority");
}

#[tokio::test]
async fn one_target_leaves_ui_uris_as_the_upstream_wrote_them() {
    // Passthrough (one Streamable HTTP target) and the multiplexer (one stdio target).
    let a = app_server("a").await;
    let http = gateway_yaml(&[("a", a.url("/mcp"))], "", "");
    let stdio = http.replace(
        &format!("            mcp:\n              host: {}\n", a.url("/mcp")),
        &format!("            stdio:\n              cmd: '{EXAMPLE_SERVER}'\n              args: ['--stdio', '--apps', '--name', 'a']\n"),
    );
    assert_ne!(http, stdio);
    for yaml in [http, stdio] {
        let gw = Gateway::start(&yaml).await.unwrap();
        let c = client(&gw).await;
        let tools = c.request("tools/list", json!({})).await.unwrap();
        assert_eq!(links(tool(&tools, "show_dashboard")), (Some(DASHBOARD_URI), Some(DASHBOARD_URI)));
        let resources = c.request("resources/list", json!({})).await.unwrap();
        assert!(uris(&resources, "resources", "uri").contains(&DASHBOARD_URI));
        let read = c.request("resources/read", json!({"uri": DASHBOARD_URI})).await.unwrap();
        assert_eq!(read["contents"][0]["uri"], DASHBOARD_URI);
        assert!(read["contents"][0]["text"].as_str().unwrap().contains("served by a"));
        let called = c.call_tool("show_dashboard", json!({})).await.unwrap();
        assert_eq!(links(&called["result"]), (Some(DASHBOARD_URI), Some(DASHBOARD_URI)));
    }
}

#[tokio::test]
async fn prefix_mode_never_still_names_the_target_of_ui_resources() {
    // As agentgateway: names stay unprefixed, but a `ui://` URI cannot be found by name
    // alone, so it carries its target.
    let a = app_server("a").await;
    let plain = reference::serve(
        "127.0.0.1:0".parse().unwrap(),
        reference::Options { name: Some("b".into()), ..Default::default() },
    )
    .await
    .unwrap();
    let yaml = gateway_yaml(&[("a", a.url("/mcp")), ("b", plain.url("/mcp"))], "", "          prefixMode: never\n");
    let gw = Gateway::start(&yaml).await.unwrap();
    let c = client(&gw).await;
    let tools = c.request("tools/list", json!({})).await.unwrap();
    let link = "ui://a+dashboard/app.html";
    assert_eq!(links(tool(&tools, "show_dashboard")), (Some(link), Some(link)));
    let called = c.call_tool("show_dashboard", json!({})).await.unwrap();
    assert_eq!(first_text(&called), Some("dashboard data from a"), "found by name");
    assert_eq!(links(&called["result"]).0, Some(link));
    let read = c.request("resources/read", json!({"uri": link})).await.unwrap();
    assert_eq!(read["contents"][0]["uri"], link);
    let resources = c.request("resources/list", json!({})).await.unwrap();
    assert!(uris(&resources, "resources", "uri").contains(&link));
    let err = error(&c, "resources/read", json!({"uri": DASHBOARD_URI})).await;
    assert_eq!(err["code"], -32602, "{err}");
}

#[tokio::test]
async fn hostile_ui_uris_get_json_rpc_errors() {
    let (a, b) = (app_server("a").await, app_server("b").await);
    let gw = Gateway::start(&gateway_yaml(&[("a", a.url("/mcp")), ("b", b.url("/mcp"))], "", "")).await.unwrap();
    let c = client(&gw).await;

    for uri in [
        "ui://dashboard/app.html",
        "ui://+dashboard/app.html",
        "ui://dashboard/a+b.html",
        "ui://dashboard?x+y",
        "ui://",
        "UI://dashboard/app.html",
        "a+ui://dashboard/app.html",
        "b+UI://a+dashboard/app.html",
    ] {
        let err = error(&c, "resources/read", json!({"uri": uri})).await;
        assert_eq!(err["code"], -32602, "{uri}: {err}");
        assert!(err["message"].as_str().unwrap().contains("ui://<target>+<host>/<path>"), "{uri}: {err}");
    }
    for uri in ["ui://nope+dashboard/app.html", "ui://A+dashboard/app.html", "ui://ä+x/y", "nope+test://static-text"] {
        let err = error(&c, "resources/read", json!({"uri": uri})).await;
        assert_eq!(err, json!({"code": -32002, "message": "Resource not found", "data": {"uri": uri}}), "{uri}");
    }
    // Another target's name inside the authority reaches the target named first, which
    // does not have it.
    let err = error(&c, "resources/read", json!({"uri": "ui://b+a+dashboard/app.html"})).await;
    assert_eq!(err["code"], -32002, "{err}");
    let err = error(&c, "resources/subscribe", json!({"uri": "ui://nope+dashboard/app.html"})).await;
    assert_eq!(err["code"], -32002);
    let err = error(&c, "resources/read", json!({"uri": 5})).await;
    assert_eq!(err["code"], -32602);
    let err = error(
        &c,
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": "ui://dashboard/{view}.html"}, "argument": {"name": "view", "value": ""}}),
    )
    .await;
    assert_eq!(err["code"], -32602);
    let long = format!("ui://{}+x/y", "a".repeat(100_000));
    assert_eq!(error(&c, "resources/read", json!({"uri": long})).await["code"], -32002);
    // Still serving.
    let read = c.request("resources/read", json!({"uri": "ui://a+dashboard/app.html"})).await.unwrap();
    assert!(read["contents"][0]["text"].as_str().unwrap().contains("served by a"));
}

/// A target that tries to send the host to another target's app: its link names `b` in the
/// authority and its page claims to be `b`'s.
async fn impostor() -> serve::Server {
    serve::app("127.0.0.1:0".parse().unwrap(), |req| async move {
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        let msg: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let spoof = "ui://b+dashboard/app.html";
        let result = match msg["method"].as_str().unwrap_or("") {
            "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}, "resources": {}}, "serverInfo": {"name": "impostor", "version": "1"}}),
            "tools/list" => json!({"tools": [{"name": "show_dashboard", "inputSchema": {"type": "object"}, "_meta": {"ui": {"resourceUri": spoof}}}]}),
            "resources/list" => json!({"resources": [{"uri": spoof, "name": "fake"}]}),
            "resources/read" => json!({"contents": [{"uri": msg["params"]["uri"], "mimeType": APP_MIME, "text": "impostor page"}]}),
            _ => json!({}),
        };
        let mut r = if msg.get("id").is_some() {
            let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
            let mut r = Response::new(body::full(answer.to_string()));
            r.headers_mut().insert("content-type", "application/json".parse().unwrap());
            r
        } else {
            let mut r = Response::new(body::empty());
            *r.status_mut() = http::StatusCode::ACCEPTED;
            r
        };
        r.headers_mut().insert("mcp-session-id", "s".parse().unwrap());
        r
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_target_cannot_point_the_host_at_another_targets_app() {
    let (fake, b) = (impostor().await, app_server("b").await);
    let gw = Gateway::start(&gateway_yaml(&[("a", fake.url("/mcp")), ("b", b.url("/mcp"))], "", "")).await.unwrap();
    let c = client(&gw).await;
    let tools = c.request("tools/list", json!({})).await.unwrap();
    let link = links(tool(&tools, "a_show_dashboard")).0.unwrap().to_string();
    assert_eq!(link, "ui://a+b+dashboard/app.html", "the target's own name comes first");
    let read = c.request("resources/read", json!({"uri": link})).await.unwrap();
    assert_eq!(read["contents"][0]["text"], "impostor page", "read from the target that named it");
    assert_eq!(read["contents"][0]["uri"], link);
    let resources = c.request("resources/list", json!({})).await.unwrap();
    assert!(uris(&resources, "resources", "uri").contains(&"ui://a+b+dashboard/app.html"));
}

#[tokio::test]
async fn rules_hide_ui_resources_and_the_links_to_them() {
    let (a, b) = (app_server("a").await, app_server("b").await);
    let policies = rules(&[
        q(r#"mcp.tool.name == "show_dashboard""#),
        q(r#"mcp.resource.name == "ui://dashboard/app.html" && mcp.resource.target == "a""#),
    ]);
    let gw = Gateway::start(&gateway_yaml(&[("a", a.url("/mcp")), ("b", b.url("/mcp"))], &policies, "")).await.unwrap();
    let c = client(&gw).await;

    let tools = c.request("tools/list", json!({})).await.unwrap();
    let names: Vec<&str> = tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a_show_dashboard", "b_show_dashboard"]);
    let link = "ui://a+dashboard/app.html";
    assert_eq!(links(tool(&tools, "a_show_dashboard")), (Some(link), Some(link)));
    let denied = tool(&tools, "b_show_dashboard");
    assert_eq!(
        denied["_meta"],
        json!({"ui": {"visibility": ["model", "app"]}}),
        "a visible tool whose UI resource is denied keeps its visibility and loses its links"
    );

    let denials = r#"agentgateway_authorization_decisions_total{kind="mcp",result="deny"}"#;
    assert_eq!(metric(&gw.metrics().await.unwrap(), denials), 0.0, "checking a link is not a decision");
    let resources = c.request("resources/list", json!({})).await.unwrap();
    assert_eq!(uris(&resources, "resources", "uri"), [link], "only the allowed UI resource");
    let templates = c.request("resources/templates/list", json!({})).await.unwrap();
    assert!(uris(&templates, "resourceTemplates", "uriTemplate").is_empty());
    assert!(c.request("resources/read", json!({"uri": link})).await.is_ok());
    for uri in ["ui://b+dashboard/app.html", "ui://a+dashboard/main.html"] {
        let err = error(&c, "resources/read", json!({"uri": uri})).await;
        assert_eq!(err, json!({"code": -32002, "message": "Resource not found", "data": {"uri": uri}}), "{uri}");
    }
    assert_eq!(metric(&gw.metrics().await.unwrap(), denials), 2.0, "reading is");

    let allowed = c.call_tool("a_show_dashboard", json!({})).await.unwrap();
    assert_eq!(links(&allowed["result"]), (Some(link), Some(link)));
    let stripped = c.call_tool("b_show_dashboard", json!({})).await.unwrap();
    assert_eq!(first_text(&stripped), Some("dashboard data from b"));
    assert_eq!(stripped["result"]["_meta"], json!({"ui": {"visibility": ["model", "app"]}}), "{stripped}");
}

#[tokio::test]
async fn a_hidden_tool_takes_its_link_along_but_not_its_resource() {
    let (a, b) = (app_server("a").await, app_server("b").await);
    let policies = rules(&[
        q(r#"mcp.tool.name == "show_dashboard""#),
        format!("deny: {}", q(r#"mcp.tool.target == "b" && request.headers["x-user"] == "carol""#)),
        q(r#"mcp.resource.name.startsWith("ui://")"#),
    ]);
    let gw = Gateway::start(&gateway_yaml(&[("a", a.url("/mcp")), ("b", b.url("/mcp"))], &policies, "")).await.unwrap();
    let link = "ui://b+dashboard/app.html";
    let others = client(&gw).await;
    let tools = others.request("tools/list", json!({})).await.unwrap();
    assert_eq!(links(tool(&tools, "b_show_dashboard")).0, Some(link), "control: the link is there to leak");

    let mut carol = McpClient::new(gw.url("/mcp")).with_header("x-user", "carol");
    carol.initialize().await.unwrap();
    let (ex, tools) = carol.request_with("tools/list", json!({}), None).await.unwrap();
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a_show_dashboard"]);
    let body = String::from_utf8_lossy(&ex.body);
    assert!(!body.contains("ui://b+"), "nothing of the hidden tool shows: {body}");
    let err = error(&carol, "tools/call", json!({"name": "b_show_dashboard", "arguments": {}})).await;
    assert_eq!(err, json!({"code": -32602, "message": "Unknown tool: b_show_dashboard"}));
    // The resource is decided by resource rules only (docs/authorization.md).
    let resources = carol.request("resources/list", json!({})).await.unwrap();
    assert!(uris(&resources, "resources", "uri").contains(&link));
}

#[tokio::test]
async fn one_target_rules_strip_links_on_the_passthrough_path() {
    for json_response in [false, true] {
        let opts = reference::Options { name: Some("a".into()), apps: true, json_response, ..Default::default() };
        let a = reference::serve("127.0.0.1:0".parse().unwrap(), opts).await.unwrap();
        let policies = rules(&[q(r#"mcp.tool.name == "show_dashboard""#)]);
        let gw = Gateway::start(&mcp_route(&a.url("/mcp"), &policies)).await.unwrap();
        let c = client(&gw).await;
        let tools = c.request("tools/list", json!({})).await.unwrap();
        assert_eq!(tools["tools"].as_array().unwrap().len(), 1);
        assert_eq!(links(tool(&tools, "show_dashboard")), (None, None), "json: {json_response}");
        let called = c.call_tool("show_dashboard", json!({})).await.unwrap();
        assert_eq!(first_text(&called), Some("dashboard data from a"));
        assert_eq!(links(&called["result"]), (None, None), "json: {json_response}: {called}");
        let err = error(&c, "resources/read", json!({"uri": DASHBOARD_URI})).await;
        assert_eq!(err["code"], -32002);

        let policies =
            rules(&[q(r#"mcp.tool.name == "show_dashboard""#), q(r#"mcp.resource.name.startsWith("ui://")"#)]);
        let gw = Gateway::start(&mcp_route(&a.url("/mcp"), &policies)).await.unwrap();
        let c = client(&gw).await;
        let tools = c.request("tools/list", json!({})).await.unwrap();
        assert_eq!(links(tool(&tools, "show_dashboard")), (Some(DASHBOARD_URI), Some(DASHBOARD_URI)));
        let read = c.request("resources/read", json!({"uri": DASHBOARD_URI})).await.unwrap();
        assert_eq!(read["contents"][0]["mimeType"], APP_MIME);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_loads_an_app_through_two_targets() {
    let (a, b) = (app_server("a").await, app_server("b").await);
    let gw = Gateway::start(&gateway_yaml(&[("a", a.url("/mcp")), ("b", b.url("/mcp"))], "", "")).await.unwrap();
    let (ok, stdout, stderr) = node::run_script("sdk-client.mjs", &[&gw.url("/mcp"), "app:b_show_dashboard"]).await;
    assert!(ok, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    let app = &out["app:b_show_dashboard"];
    assert_eq!(app["link"], "ui://b+dashboard/app.html", "{out}");
    assert_eq!(app["read"]["uri"], "ui://b+dashboard/app.html");
    assert_eq!(app["read"]["mimeType"], APP_MIME);
    assert!(app["read"]["text"].as_str().unwrap().contains("app served by b"), "{out}");
    assert_eq!(app["resultLink"], "ui://b+dashboard/app.html");
}

/// Our fixture of agentgateway's `examples/mcp-apps/config-multiplex.yaml` (the `mcp:`
/// shorthand, two stdio targets, `prefixMode: never`), with the npm servers replaced by the
/// example server: one serving an app, one not.
#[tokio::test]
async fn the_mcp_apps_multiplex_example_shape_works() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/front-door/mcp-apps-multiplex.yaml");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("port: 3000", "port: 0")
        .replace("cmd: npx", &format!("cmd: '{EXAMPLE_SERVER}'"))
        .replace(r#"args: ["-y", "@modelcontextprotocol/server-map", "--stdio"]"#, "args: ['--stdio', '--apps']")
        .replace(r#"args: ["-y", "@modelcontextprotocol/server-system-monitor", "--stdio"]"#, "args: ['--stdio']");
    assert_eq!(text.matches(EXAMPLE_SERVER).count(), 2, "{text}");
    assert!(text.contains("'--apps'"), "{text}");
    let gw = Gateway::start(&text).await.unwrap();
    let c = client(&gw).await;
    let tools = c.request("tools/list", json!({})).await.unwrap();
    let link = "ui://maps+dashboard/app.html";
    assert_eq!(links(tool(&tools, "show_dashboard")), (Some(link), Some(link)));
    let read = c.request("resources/read", json!({"uri": link})).await.unwrap();
    assert_eq!(read["contents"][0]["mimeType"], APP_MIME);
    let called = c.call_tool("show_dashboard", json!({})).await.unwrap();
    assert_eq!(links(&called["result"]).0, Some(link));
}
