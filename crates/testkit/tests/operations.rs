//! Operations, in process: metrics after a scripted session, and hot reload of the config
//! file (a rule change seen by an open session; a broken file leaves the running config).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agw_testkit::client::McpClient;
use agw_testkit::harness::{Gateway, metric, with_free_ports};
use serde_json::json;

fn tutorial(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/tutorial").join(name).canonicalize().unwrap()
}

fn token(name: &str) -> String {
    std::fs::read_to_string(tutorial(name)).unwrap().trim().to_string()
}

/// The tutorial's route (JWT, strict here, and `rules`) in front of `upstream`.
fn config(upstream: &str, rules: &[&str]) -> String {
    let rules: String = rules.iter().map(|r| format!("          - '{r}'\n")).collect();
    with_free_ports(&format!(
        "binds:\n- port: 0\n  listeners:\n  - name: main\n    routes:\n    - name: tutorial\n      policies:\n        jwtAuth:\n          mode: strict\n          issuer: agentgateway.dev\n          audiences: [test.agentgateway.dev]\n          jwks:\n            file: {}\n        mcpAuthorization:\n          rules:\n{rules}      backends:\n      - mcp:\n          targets:\n          - name: mcp\n            mcp:\n              host: {upstream}\n",
        tutorial("pub-key").display()
    ))
}

const TUTORIAL_RULES: [&str; 3] = [
    r#"mcp.tool.name == "echo""#,
    r#"jwt.sub == "test-user" && mcp.tool.name == "add""#,
    r#"mcp.tool.name == "printEnv" && jwt.nested.key == "value""#,
];

#[tokio::test]
async fn metrics_count_a_scripted_session() {
    let upstream = agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let gw = Gateway::start(&config(&upstream.url("/mcp"), &TUTORIAL_RULES)).await.unwrap();
    let url = gw.url("/mcp");

    // example2: may call echo and add, not printEnv.
    let mut c = McpClient::new(&url).with_header("authorization", &format!("Bearer {}", token("example2.key")));
    c.initialize().await.unwrap();
    assert_eq!(c.tool_names().await.unwrap(), ["echo", "add"]);
    assert!(c.call_tool("echo", json!({"message": "hi"})).await.unwrap().get("result").is_some());
    assert!(c.call_tool("echo", json!({"message": "again"})).await.unwrap().get("result").is_some());
    assert!(c.call_tool("printEnv", json!({})).await.unwrap().get("error").is_some());
    // No token, and a token that is not one.
    let anonymous = McpClient::new(&url).post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.unwrap();
    assert_eq!(anonymous.status, 401);
    let forged = McpClient::new(&url)
        .with_header("authorization", "Bearer not.a.token")
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await
        .unwrap();
    assert_eq!(forged.status, 401);

    let text = gw.metrics().await.unwrap();
    let port = gw.addr.port();
    let http = |status: u16| {
        format!(
            "agentgateway_requests_total{{bind=\"{port}\",listener=\"main\",route=\"tutorial\",method=\"POST\",status=\"{status}\"}}"
        )
    };
    // initialize, notifications/initialized, tools/list, 3 calls = 6 answered; 2 refused.
    assert_eq!(metric(&text, &http(200)) + metric(&text, &http(202)), 6.0, "{text}");
    assert_eq!(metric(&text, &http(401)), 2.0, "{text}");
    let mcp = |method: &str, tool: &str| {
        format!("agentgateway_mcp_requests_total{{method=\"{method}\",target=\"mcp\",tool=\"{tool}\"}}")
    };
    assert_eq!(metric(&text, &mcp("initialize", "")), 1.0, "{text}");
    assert_eq!(metric(&text, &mcp("tools/list", "")), 1.0, "{text}");
    assert_eq!(metric(&text, &mcp("tools/call", "echo")), 2.0, "{text}");
    assert_eq!(metric(&text, &mcp("tools/call", "printEnv")), 1.0, "{text}");
    assert_eq!(metric(&text, "agentgateway_authorization_decisions_total{kind=\"mcp\",result=\"allow\"}"), 2.0);
    assert_eq!(metric(&text, "agentgateway_authorization_decisions_total{kind=\"mcp\",result=\"deny\"}"), 1.0);
    assert_eq!(
        metric(&text, "agentgateway_authentication_failures_total{policy=\"jwtAuth\",reason=\"missing\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "agentgateway_authentication_failures_total{policy=\"jwtAuth\",reason=\"malformed\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "agentgateway_mcp_sessions_started_total"), 1.0, "{text}");
    // The refused call never reached the upstream: initialize, initialized, list, 2 echoes.
    assert_eq!(metric(&text, "agentgateway_upstream_request_duration_seconds_count{target=\"mcp\"}"), 5.0, "{text}");
    assert_eq!(
        metric(
            &text,
            &format!(
                "agentgateway_request_duration_seconds_count{{bind=\"{port}\",listener=\"main\",route=\"tutorial\"}}"
            )
        ),
        8.0,
        "{text}"
    );
    assert!(text.contains("agentgateway_build_info{version=\""), "{text}");
    assert!(text.contains("# TYPE agentgateway_stdio_children gauge"), "{text}");
    for part in token("example2.key").split('.') {
        assert!(!text.contains(part), "a token in the metrics");
    }
}

/// Waits (polling, at most 20 s) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway on a config file in a fresh directory (rules: `echo` only), with an initialized
/// session of the tutorial's first token.
struct Reloading {
    _upstream: agw_testkit::serve::Server,
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
    up: String,
    gw: Gateway,
    c: McpClient,
}

async fn reloading(name: &str) -> Reloading {
    let upstream = agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    let up = upstream.url("/mcp");
    std::fs::write(&path, config(&up, &[r#"mcp.tool.name == "echo""#])).unwrap();
    let gw = Gateway::start_file(&path).await.unwrap();
    let mut c =
        McpClient::new(gw.url("/mcp")).with_header("authorization", &format!("Bearer {}", token("example1.key")));
    c.initialize().await.unwrap();
    assert_eq!(c.tool_names().await.unwrap(), ["echo"]);
    Reloading { _upstream: upstream, dir, path, up, gw, c }
}

#[tokio::test]
async fn a_rule_change_reaches_open_sessions_and_a_broken_file_changes_nothing() {
    let Reloading { _upstream, dir, path, up, gw, c } = reloading("agw-reload").await;

    // A new rule: the same session sees it on its next list.
    std::fs::write(&path, config(&up, &[r#"mcp.tool.name == "echo""#, r#"mcp.tool.name == "add""#])).unwrap();
    eventually("the new rule applies", || async { c.tool_names().await.unwrap() == ["echo", "add"] }).await;
    let added = c.call_tool("add", json!({"a": 2, "b": 3})).await.unwrap();
    assert_eq!(agw_testkit::client::first_text(&added), Some("The sum of 2 and 3 is 5."), "{added}");
    let text = gw.metrics().await.unwrap();
    assert_eq!(metric(&text, "agentgateway_config_reloads_total{result=\"success\"}"), 1.0, "{text}");

    // A broken file: logged, counted, and the running config stays.
    std::fs::write(&path, "binds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        mcpAuthorization:\n          rules: ['mcp.tool.name ==']\n").unwrap();
    eventually("the broken file is seen", || async {
        metric(&gw.metrics().await.unwrap(), "agentgateway_config_reloads_total{result=\"failure\"}") == 1.0
    })
    .await;
    assert_eq!(c.tool_names().await.unwrap(), ["echo", "add"], "the old config still serves the session");
    let echoed = c.call_tool("echo", json!({"message": "still here"})).await.unwrap();
    assert!(echoed.get("result").is_some(), "{echoed}");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reload expands `$VAR`s again, from the environment: a variable that is not set refuses
/// the new file (the running config stays), and a default or a set variable apply.
/// (`CARGO_MANIFEST_DIR` is set by cargo for the test process.)
#[tokio::test]
async fn a_reload_expands_variables_again() {
    let Reloading { _upstream, dir, path, up, gw, c } = reloading("agw-reload-vars").await;
    let keys = tutorial("pub-key").display().to_string();
    let with_vars =
        |rules: &[&str]| config(&up, rules).replace(&keys, "${CARGO_MANIFEST_DIR}/../../examples/tutorial/pub-key");

    std::fs::write(&path, with_vars(&[r#"mcp.tool.name == "echo""#, r#"mcp.tool.name == "$AGW_TEST_UNSET_TOOL""#]))
        .unwrap();
    eventually("the file with an unset variable is refused", || async {
        metric(&gw.metrics().await.unwrap(), "agentgateway_config_reloads_total{result=\"failure\"}") == 1.0
    })
    .await;
    assert_eq!(c.tool_names().await.unwrap(), ["echo"], "the running config stays");

    std::fs::write(
        &path,
        with_vars(&[r#"mcp.tool.name == "echo""#, r#"mcp.tool.name == "${AGW_TEST_UNSET_TOOL:-add}""#]),
    )
    .unwrap();
    eventually("the default applies", || async { c.tool_names().await.unwrap() == ["echo", "add"] }).await;
    let text = gw.metrics().await.unwrap();
    assert_eq!(metric(&text, "agentgateway_config_reloads_total{result=\"success\"}"), 1.0, "{text}");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config file written in pieces, with pauses shorter than the reloader's settle interval
/// (500 ms) between them: a partly written file is never read, so there is exactly one
/// reload, and it succeeds. (Three pauses, so that a reloader that waits less, e.g. one poll,
/// catches a partial file in almost every run.)
#[tokio::test]
async fn a_file_written_in_pieces_is_reloaded_once() {
    use std::io::Write;
    let Reloading { _upstream, dir, path, up, gw, c } = reloading("agw-reload-halves").await;

    let next = config(&up, &[r#"mcp.tool.name == "echo""#, r#"mcp.tool.name == "add""#]);
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    for (i, piece) in next.as_bytes().chunks(next.len().div_ceil(4)).enumerate() {
        if i > 0 {
            // A writer pausing mid-file, for less than the settle interval.
            tokio::time::sleep(Duration::from_millis(350)).await;
        }
        file.write_all(piece).unwrap();
        file.flush().unwrap();
    }
    drop(file);

    eventually("the new rule applies", || async { c.tool_names().await.unwrap() == ["echo", "add"] }).await;
    let text = gw.metrics().await.unwrap();
    assert_eq!(metric(&text, "agentgateway_config_reloads_total{result=\"success\"}"), 1.0, "{text}");
    assert_eq!(metric(&text, "agentgateway_config_reloads_total{result=\"failure\"}"), 0.0, "{text}");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gateway exporting traces to a local OTLP receiver: a span per request (continuing the
/// client's `traceparent`) with MCP attributes, a child span per upstream call, and the child's
/// context in the upstream request's `traceparent`.
async fn traces_reach_the_collector(protocol: &str) {
    use agw_testkit::otlp::{Receiver, attr, hex};
    let collector = Receiver::start().await.unwrap();
    let upstream = agw_testkit::recorder::Recorder::start().await.unwrap();
    let yaml = format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  tracing:\n    otlpEndpoint: {}\n    otlpProtocol: {protocol}\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - name: traced\n      backends:\n      - mcp:\n          targets:\n          - name: rec\n            mcp:\n              host: {}\n",
        collector.endpoint(),
        upstream.url()
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let mut c =
        McpClient::new(gw.url("/mcp")).with_header("traceparent", &format!("00-{client_trace}-{client_span}-01"));
    c.initialize().await.unwrap();
    gw.stop().await; // flushes the exporter

    let spans = collector.spans();
    let server = spans
        .iter()
        .find(|s| attr(s, "mcp.method.name").as_deref() == Some("initialize") && s.kind == 2)
        .unwrap_or_else(|| panic!("no server span for initialize: {spans:#?}"));
    assert_eq!(hex(&server.trace_id), client_trace, "the client's trace is continued");
    assert_eq!(hex(&server.parent_span_id), client_span);
    assert_eq!(server.name, "initialize");
    assert_eq!(attr(server, "http.route").as_deref(), Some("traced"));
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attr(server, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(server, "mcp.target").as_deref(), Some("rec"));
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    let child = spans
        .iter()
        .find(|s| s.kind == 3 && s.parent_span_id == server.span_id)
        .unwrap_or_else(|| panic!("no client span under the server span: {spans:#?}"));
    assert_eq!(child.trace_id, server.trace_id);
    assert_eq!(child.name, "initialize rec");
    assert_eq!(attr(child, "mcp.target").as_deref(), Some("rec"));
    assert_eq!(attr(child, "http.response.status_code").as_deref(), Some("200"));
    // The upstream saw the child span as its parent.
    let seen = upstream.seen();
    let traceparent = seen[0].headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(traceparent, format!("00-{client_trace}-{}-01", hex(&child.span_id)));
    let received = collector.received();
    let service = received[0].request.resource_spans[0].resource.as_ref().unwrap();
    assert!(service.attributes.iter().any(|kv| kv.key == "service.name"), "{service:?}");
    match protocol {
        "grpc" => {
            assert_eq!(received[0].path, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
            assert_eq!(received[0].content_type, "application/grpc");
        }
        _ => {
            assert_eq!(received[0].path, "/v1/traces");
            assert_eq!(received[0].content_type, "application/x-protobuf");
        }
    }
}

#[tokio::test]
async fn traces_reach_an_otlp_grpc_collector() {
    traces_reach_the_collector("grpc").await;
}

#[tokio::test]
async fn traces_reach_an_otlp_http_collector() {
    traces_reach_the_collector("http").await;
}

/// The admin server on loopback answers only to loopback names (DNS rebinding protection), and
/// its playground refuses cross-origin posts and ports that are not the gateway's.
#[tokio::test]
async fn the_admin_server_refuses_rebound_names_and_foreign_origins() {
    let upstream = agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let gw = Gateway::start(&config(&upstream.url("/mcp"), &TUTORIAL_RULES)).await.unwrap();
    let admin = gw.admin.unwrap();
    let send = |method: &'static str, path: &'static str, host: &str, origin: Option<&str>, body: &str| {
        let url = format!("http://{admin}{path}");
        let mut headers = vec![("host".to_string(), host.to_string())];
        headers.push(("content-type".into(), "application/json".into()));
        headers.extend(origin.map(|o| ("origin".to_string(), o.to_string())));
        let body = body.to_string();
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            agw_testkit::client::http(method, &url, &headers, &body).await.unwrap()
        }
    };
    let own = format!("127.0.0.1:{}", admin.port());
    assert_eq!(send("GET", "/config_dump", &own, None, "").await.0, 200);
    assert_eq!(send("GET", "/config_dump", &format!("localhost:{}", admin.port()), None, "").await.0, 200);
    assert_eq!(send("GET", "/config_dump", "attacker.example:15000", None, "").await.0, 403);
    assert_eq!(send("GET", "/config_dump", "10.1.2.3:15000", None, "").await.0, 200, "an IP address cannot be rebound");
    assert_eq!(send("GET", "/ui/", &own, None, "").await.0, 200);
    assert_eq!(send("GET", "/ui/api/routes", "attacker.example", None, "").await.0, 403);

    let (port, path) = (0, "/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let call = json!({"port": port, "path": path, "token": token("example2.key"), "message": init}).to_string();
    let (status, _) = send("POST", "/ui/api/mcp", &own, Some("http://attacker.example"), &call).await;
    assert_eq!(status, 403, "cross-origin");
    let (status, body) = send("POST", "/ui/api/mcp", &own, Some(&format!("http://{own}")), &call).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert!(answer["session"].is_string(), "{answer}");
    assert_eq!(answer["messages"][0]["result"]["serverInfo"]["name"], "reference", "{answer}");
    let elsewhere = json!({"port": 22, "path": "/", "message": init}).to_string();
    let (status, body) = send("POST", "/ui/api/mcp", &own, None, &elsewhere).await;
    assert_eq!((status, body.contains("not a port of this gateway")), (400, true), "{body}");
}

/// A JWKS file the config names is watched too: rotating the keys on disk needs no restart.
#[tokio::test]
async fn a_rotated_jwks_file_is_picked_up_without_a_restart() {
    let upstream = agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("agw-jwks-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("keys.json");
    // First some other issuer key: the tutorial's tokens do not verify.
    let other = agw_testkit::jwt::TestKey::generate("5891645032159894383", agw_testkit::jwt::Alg::ES256);
    std::fs::write(&jwks, json!({"keys": [other.jwk(false)]}).to_string()).unwrap();
    let path = dir.join("config.yaml");
    let yaml = config(&upstream.url("/mcp"), &TUTORIAL_RULES)
        .replace(&format!("file: {}", tutorial("pub-key").display()), &format!("file: {}", jwks.display()));
    std::fs::write(&path, yaml).unwrap();
    let gw = Gateway::start_file(&path).await.unwrap();
    let c = McpClient::new(gw.url("/mcp")).with_header("authorization", &format!("Bearer {}", token("example1.key")));
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(c.post(&ping).await.unwrap().status, 401, "the key is not the tutorial's yet");

    // The tutorial's key lands in the file: the same token now passes.
    std::fs::copy(tutorial("pub-key"), &jwks).unwrap();
    eventually("the new keys apply", || async { c.post(&ping).await.unwrap().status == 200 }).await;
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
