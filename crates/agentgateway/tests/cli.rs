//! The command line: flags, exit codes, messages, start-up and shutdown of the real binary.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agentgateway");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

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
    assert_eq!(text(&out.stdout).trim(), format!("agentgateway {}", env!("CARGO_PKG_VERSION")));
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in ["--file", "--config", "--validate-only", "schema", "--version"] {
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

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("agw-cli-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts the binary and reads its log until `needle` appears.
fn start_until(args: &[&str], needle: &str) -> (Child, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lines.iter().any(|l: &String| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("`{needle}` not logged; got {lines:#?}"),
        }
    }
    std::thread::spawn(move || for _ in rx {});
    (child, lines)
}

fn sigterm(child: &Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
}

#[test]
fn starts_logs_the_tutorial_lines_and_stops_on_sigterm() {
    // The tutorial's exact start-up lines need the default admin port, 15000.
    if std::net::TcpListener::bind("127.0.0.1:15000").is_err() {
        panic!("port 15000 is in use (another gateway running?); this test needs it free");
    }
    let config = "config:\n  readinessAddr: 127.0.0.1:0\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: localhost:1\n";
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
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - host: localhost:1\n"
    );
    let out = run(&["--config", &config]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("cannot listen on 0.0.0.0:{port}")), "{}", text(&out.stderr));
}

#[test]
fn json_logs_when_configured() {
    let config = "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 'off'\n  logging:\n    format: json\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: localhost:1\n";
    let (child, lines) = start_until(&["--config", config], "Listening on");
    let line = lines.iter().find(|l| l.contains("Listening on")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    assert!(v["message"].as_str().unwrap().starts_with("Listening on 0.0.0.0:"));
    assert_eq!(v["level"], "INFO");
    sigterm(&child);
    let mut child = child;
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
