//! The command line: flags, exit codes, messages, start-up and shutdown of the real binary.

mod support;

use std::process::{Command, Output};

use support::{BIN, Logs, repo, sigterm, start, start_until, start_with_env, tempdir};

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(repo()).output().expect("binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_and_help() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    // The version names the commit built (build.rs): the checkout's HEAD when git is there.
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(repo()).output();
    let commit = match head {
        Ok(o) if o.status.success() => text(&o.stdout).trim().to_string(),
        _ => "unknown".into(),
    };
    let expected = format!("agentgateway {} (commit {commit})", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        text(&out.stdout).trim(),
        std::env::var("AGENTGATEWAY_COMMIT")
            .map_or(expected, |c| format!("agentgateway {} (commit {c})", env!("CARGO_PKG_VERSION")))
    );
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in ["--file", "--config", "--validate-only", "schema", "healthcheck", "--version"] {
        assert!(help.contains(flag), "{flag} in:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("a config is required"));
    let out = run(&["-f", "a.yaml", "--config", "binds: []"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn committed_schema_is_current() {
    let out = run(&["schema"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(repo().join("schema/config.json")).expect("schema/config.json exists");
    assert!(
        text(&out.stdout) == committed,
        "schema/config.json is stale: run `cargo run -p agentgateway -- schema > schema/config.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(schema["title"], "Config");
}

/// Our configs in agentgateway's front-door shapes (`mcp:`, `gateways`/`routes`, named
/// `backends`): every one is valid, checked from its own folder as a user would.
#[test]
fn front_door_examples_are_valid() {
    let dir = repo().join("examples/front-door");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 10, "{files:?}");
    for f in &files {
        let out = Command::new(BIN).args(["-f", f, "--validate-only"]).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "{f}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(&format!("{f}: configuration is valid")));
    }
}

/// The feature examples (`examples/<feature>/config.yaml`) are valid as their run scripts run
/// them (with the environment they set).
#[test]
fn feature_examples_are_valid() {
    let env = [
        ("OIDC_COOKIE_SECRET", "5f0c1d8e9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"),
        ("OIDC_CLIENT_ID", "gateway"),
        ("OIDC_CLIENT_SECRET", "secret"),
    ];
    for example in ["openapi", "a2a", "oidc"] {
        let dir = repo().join("examples").join(example);
        let out = Command::new(BIN)
            .args(["-f", "config.yaml", "--validate-only"])
            .envs(env)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{example}: {}", text(&out.stderr));
    }
}

#[test]
fn validate_only_accepts_the_example_and_reports_errors_with_positions() {
    let out = Command::new(BIN)
        .args(["-f", "config.yaml", "--validate-only"])
        .current_dir(repo().join("examples/tutorial"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("config.yaml: configuration is valid"));

    let dir = tempdir();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: my_tool\n            mcp: {host: 'http://localhost:3001/mcp'}\n").unwrap();
    let out = run(&["-f", bad.to_str().unwrap(), "--validate-only"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "bad.yaml:8:13: binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].name: target name `my_tool`"
        ),
        "{err}"
    );

    let out = run(&[
        "--config",
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - matches:\n      - path: {regex: '('}\n      backends:\n      - host: localhost:1\n",
        "--validate-only",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(
            "<inline>:6:16: binds[0].listeners[0].routes[0].matches[0].path.regex: invalid regular expression"
        ),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["-f", "/no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/no/such/file.yaml:1:1: cannot read config file"));
}

/// `$VAR`s come from the process environment: unset, the config is refused by
/// `--validate-only` and at start-up, naming the variable where it is written; set, the value
/// is used and never shown (`/config_dump`, the log).
#[test]
fn environment_variables_fill_the_config_and_an_unset_one_stops_start_up() {
    let dir = tempdir();
    let path = dir.join("vars.yaml");
    std::fs::write(
        &path,
        "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  workerThreads: ${AGW_CLI_WORKERS:-1}\n  logging:\n    level: [info, 'agw_mcp=debug']\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        apiKey:\n          keys:\n          - key: $AGW_CLI_API_KEY\n      backends:\n      - host: localhost:1\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let unset = "vars.yaml:15:18: binds[0].listeners[0].routes[0].policies.apiKey.keys[0].key: environment variable `AGW_CLI_API_KEY` is not set";
    for args in [vec!["-f", file, "--validate-only"], vec!["-f", file]] {
        let out = Command::new(BIN).args(&args).env_remove("AGW_CLI_API_KEY").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(unset), "{args:?}: {}", text(&out.stderr));
    }

    let secret = "cli-key-5d1e0c7b";
    let out = Command::new(BIN).args(["-f", file, "--validate-only"]).env("AGW_CLI_API_KEY", secret).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (child, logs) = start_with_env(&["-f", file], &[("AGW_CLI_API_KEY", secret)]);
    let lines = logs.wait_for("Admin UI available at");
    let admin = lines.iter().find_map(|l| l.split("http://").nth(1)).and_then(|a| a.strip_suffix("/ui/")).unwrap();
    let dump = http_get(admin, "/config_dump");
    assert!(dump.starts_with("HTTP/1.1 200"), "{dump}");
    assert!(dump.contains("<redacted>") && !dump.contains(secret), "{dump}");
    assert!(dump.contains(r#""agw_mcp=debug""#), "the list form of logging.level: {dump}");
    sigterm(&child);
    let mut child = child;
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(logs.lines().iter().all(|l| !l.contains(secret)), "{:#?}", logs.lines());
}

/// A plain HTTP/1.1 `GET` (the admin server answers loopback clients).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `healthcheck` (the container image's health check): 0 while the readiness port answers
/// 200, 1 once the gateway is gone, and 1 for something that is not a readiness server.
#[test]
fn healthcheck_probes_the_readiness_port() {
    let config = "config:\n  adminAddr: 'off'\n  readinessAddr: 127.0.0.1:0\n  statsAddr: 'off'\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: localhost:1\n";
    let (mut child, lines) = start_until(&["--config", config], "Readiness on");
    let line = lines.iter().find(|l| l.contains("Readiness on")).unwrap();
    let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string();
    let out = run(&["healthcheck", "--addr", &addr]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let out = run(&["healthcheck", "--addr", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("not ready: {addr}")), "{}", text(&out.stderr));

    // A server that answers something else than 200 is not ready either.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = other.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").unwrap();
    });
    let out = run(&["healthcheck", "--addr", &other_addr]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("503"), "{}", text(&out.stderr));
}

#[test]
fn starts_logs_the_tutorial_lines_and_stops_on_sigterm() {
    // The tutorial's exact start-up lines need the default admin port, 15000.
    if std::net::TcpListener::bind("127.0.0.1:15000").is_err() {
        panic!("port 15000 is in use (another gateway running?); this test needs it free");
    }
    let config = "config:\n  readinessAddr: 127.0.0.1:0\n  statsAddr: 127.0.0.1:0\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: localhost:1\n";
    let (mut child, lines) = start_until(&["--config", config], "Admin UI available at");
    assert!(lines.iter().any(|l| l.contains("Listening on 0.0.0.0:")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("Admin UI available at http://localhost:15000/ui/")), "{lines:#?}");
    sigterm(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_port_in_use_is_a_runtime_failure() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - host: localhost:1\n"
    );
    let out = run(&["--config", &config]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("cannot listen on 0.0.0.0:{port}")), "{}", text(&out.stderr));
}

#[test]
fn json_logs_when_configured() {
    let config = "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  logging:\n    format: json\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: localhost:1\n";
    let (child, lines) = start_until(&["--config", config], "Listening on");
    let line = lines.iter().find(|l| l.contains("Listening on")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    assert!(v["message"].as_str().unwrap().starts_with("Listening on 0.0.0.0:"));
    assert_eq!(v["level"], "INFO");
    sigterm(&child);
    let mut child = child;
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn policy_test_runs_the_example_file() {
    let out = run(&["policy", "test", "examples/tutorial/policy-tests.yaml"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.lines().last().unwrap() == "8 passed, 0 failed", "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("PASS  ")).count(), 8);

    let dir = tempdir();
    let tutorial = repo().join("examples/tutorial");
    std::fs::write(
        dir.join("wrong.yaml"),
        format!(
            "config: {}\ncases:\n- name: expects the wrong thing\n  token: {}\n  tool: printEnv\n  expect: allow\n- tool: echo\n  expect: allow\n",
            tutorial.join("config.yaml").display(),
            tutorial.join("example2.key").display()
        ),
    )
    .unwrap();
    let out = run(&["policy", "test", dir.join("wrong.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("FAIL  expects the wrong thing: expected allow, got deny"), "{stdout}");
    assert!(stdout.contains("PASS  case 1: allow"), "{stdout}");
    assert!(stdout.ends_with("1 passed, 1 failed\n"), "{stdout}");

    std::fs::write(dir.join("broken.yaml"), "config: x.yaml\ncases:\n- tool: echo\n  expct: allow\n").unwrap();
    let out = run(&["policy", "test", dir.join("broken.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("broken.yaml:4:3: cases[0].expct: unknown field `expct`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn policy_explain_shows_every_rule() {
    let out = Command::new(BIN)
        .args(["policy", "explain", "-f", "config.yaml", "--token", "example2.key", "--tool", "printEnv"])
        .current_dir(repo().join("examples/tutorial"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("caller:   token verified by the route's jwtAuth (sub=test-user)"), "{stdout}");
    assert!(
        stdout.contains(
            "[2] allow   mcp.tool.name == \"printEnv\" && jwt.nested.key == \"value\"\n        → not true (error:"
        ),
        "{stdout}"
    );
    assert!(stdout.ends_with("decision: deny (no allow rule is true)\n"), "{stdout}");
    let out = Command::new(BIN)
        .args(["policy", "explain", "-f", "config.yaml", "--claims", r#"{"sub":"test-user"}"#, "--tool", "add"])
        .current_dir(repo().join("examples/tutorial"))
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).ends_with("decision: allow (an allow rule is true, rule [1])\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn deny_rules_are_warned_about_at_load() {
    let config = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        mcpAuthorization:\n          rules:\n          - deny: 'jwt.sub == \"x\"'\n      backends:\n      - mcp:\n          targets:\n          - name: t\n            mcp: {host: 'http://localhost:1/mcp'}\n";
    let out = run(&["--config", config, "--validate-only"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains(
            "warning: <inline>:8:13: binds[0].listeners[0].routes[0].policies.mcpAuthorization.rules[0]: deny rule"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn audit_events_name_the_decision_never_the_token() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream =
        rt.block_on(agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default())).unwrap();
    let pub_key = repo().join("examples/tutorial/pub-key");
    let config = format!(
        "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 'off'\n  statsAddr: 'off'\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        jwtAuth:\n          issuer: agentgateway.dev\n          jwks:\n            file: {}\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"echo\"'\n      backends:\n      - mcp:\n          targets:\n          - name: mcp\n            mcp:\n              host: {}\n",
        pub_key.display(),
        upstream.url("/mcp")
    );
    let (mut child, logs) = start(&["--config", &config]);
    let lines = logs.wait_for("Listening on");
    let port: u16 = lines.iter().find_map(|l| l.split("Listening on 0.0.0.0:").nth(1)).unwrap().trim().parse().unwrap();
    let token = std::fs::read_to_string(repo().join("examples/tutorial/example1.key")).unwrap();
    let token = token.trim().to_string();
    let listed = rt.block_on(async {
        let mut c = agw_testkit::client::McpClient::new(format!("http://127.0.0.1:{port}/mcp"))
            .with_header("authorization", &format!("Bearer {token}"));
        c.initialize().await.unwrap();
        let denied = c.call_tool("add", serde_json::json!({"a": 1, "b": 2})).await.unwrap();
        assert_eq!(denied["error"]["code"], -32602);
        c.tool_names().await.unwrap()
    });
    assert_eq!(listed, ["echo"]);
    let lines = logs.wait_for("decision=\"filter\"");
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let audit: Vec<&String> = lines.iter().filter(|l| l.contains("authorization decision")).collect();
    let call = audit.iter().find(|l| l.contains("name=\"add\"")).unwrap_or_else(|| panic!("{audit:#?}"));
    for field in ["subject=test-user", "method=\"tools/call\"", "mcp_target=\"mcp\"", "decision=\"deny\"", "rule=-1"] {
        assert!(call.contains(field), "{field} in {call}");
    }
    let listing = audit.iter().find(|l| l.contains("decision=\"filter\"")).unwrap();
    assert!(listing.contains("hidden=") && listing.contains("shown=1"), "{listing}");
    let all = lines.join("\n");
    for part in token.split('.') {
        assert!(!all.contains(part), "the token leaked into the log");
    }
}

/// Two gateway processes with the same session key serve one session in turns: initialized on
/// one, listed and called on the other (which starts its own stdio child and initializes it
/// with the stored parameters), then back. A flipped byte in the id is refused.
#[test]
fn two_gateway_processes_share_sessions_through_the_sealed_id() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream =
        rt.block_on(agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default())).unwrap();
    agw_testkit::node::require_installed();
    let config = format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  session:\n    key: 5f0c1ea2b7e34d7a9c0d4e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: ref\n            mcp:\n              host: {}\n          - name: local\n            stdio:\n              cmd: node\n              args: ['{}', stdio]\n",
        upstream.url("/mcp"),
        agw_testkit::node::server_everything_js()
    );
    let port_of = |logs: &Logs| -> u16 {
        let lines = logs.wait_for("Listening on");
        lines.iter().find_map(|l| l.split("Listening on 0.0.0.0:").nth(1)).unwrap().trim().parse().unwrap()
    };
    let (mut one, logs_one) = start(&["--config", &config]);
    let (mut two, logs_two) = start(&["--config", &config]);
    let (p1, p2) = (port_of(&logs_one), port_of(&logs_two));
    rt.block_on(async {
        use agw_testkit::client::{McpClient, first_text};
        use serde_json::json;
        let mut c1 = McpClient::new(format!("http://127.0.0.1:{p1}/mcp"));
        c1.initialize().await.unwrap();
        let session = c1.session.clone().unwrap();
        let c2 = McpClient::new(format!("http://127.0.0.1:{p2}/mcp")).with_session(&session);
        let tools = c2.tool_names().await.unwrap();
        assert!(tools.contains(&"ref_echo".into()) && tools.contains(&"local_echo".into()), "{tools:?}");
        let on_two = c2.call_tool("local_echo", json!({"message": "on two"})).await.unwrap();
        assert_eq!(first_text(&on_two), Some("Echo: on two"), "{on_two}");
        let on_one = c1.call_tool("ref_echo", json!({"message": "back on one"})).await.unwrap();
        assert_eq!(first_text(&on_one), Some("Echo: back on one"));

        use base64::Engine;
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&session).unwrap();
        let mid = raw.len() / 2;
        raw[mid] ^= 1;
        let forged = McpClient::new(format!("http://127.0.0.1:{p2}/mcp"))
            .with_session(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw));
        let ex = forged.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await.unwrap();
        assert_eq!(ex.status.as_u16(), 404);
        assert_eq!(ex.messages[0]["error"]["code"], -32001);
    });
    for child in [&mut one, &mut two] {
        sigterm(child);
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
}
