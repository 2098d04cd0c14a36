//! Tool-definition pinning with the real binary: `agentgateway pin` writes a pin file from a
//! live upstream, a gateway started with it passes the tools until the upstream changes a
//! description (then hidden, refused, audited); and trust on first use across two gateway
//! processes that share a state file.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agw_testkit::client::{McpClient, first_text};
use agw_testkit::reference;
use serde_json::{Value, json};
use support::{BIN, Logs, repo, sigterm, start, tempdir};

fn port_of(logs: &Logs) -> u16 {
    let lines = logs.wait_for("Listening on");
    lines.iter().find_map(|l| l.split("Listening on 0.0.0.0:").nth(1)).unwrap().trim().parse().unwrap()
}

fn gateway_config(upstream: &str, pinning: &str) -> String {
    format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  session:\n    key: 5f0c1ea2b7e34d7a9c0d4e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d\nbinds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n{pinning}          targets:\n          - name: ref\n            mcp:\n              host: {upstream}\n"
    )
}

fn pin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).arg("pin").args(args).current_dir(repo()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

async fn client(port: u16) -> McpClient {
    let mut c = McpClient::new(format!("http://127.0.0.1:{port}/mcp"));
    c.initialize().await.unwrap();
    c
}

fn refused_by_pinning(r: &Value) -> bool {
    r["error"]["code"] == -32030 && r["error"]["message"].as_str().is_some_and(|m| m.contains("pinning"))
}

async fn upstream_with_switch() -> (agw_testkit::serve::Server, Arc<AtomicBool>) {
    let switch = Arc::new(AtomicBool::new(false));
    let opts = reference::Options { rug_pull: Some(switch.clone()), ..Default::default() };
    (reference::serve("127.0.0.1:0".parse().unwrap(), opts).await.unwrap(), switch)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_pin_cli_round_trip() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (upstream, switch) = rt.block_on(upstream_with_switch());
    let dir = tempdir();
    let pins = dir.join("pins.json");
    let config = dir.join("pinned.yaml");
    let pinning = format!("          toolPinning:\n            file: {}\n", pins.display());
    std::fs::write(&config, gateway_config(&upstream.url("/mcp"), &pinning)).unwrap();

    // The config names the pin file that does not exist yet: `pin` writes it.
    let (ok, _, stderr) = pin(&["-f", config.to_str().unwrap(), "-o", pins.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("tools of target `ref`"), "{stderr}");
    let file = read_json(&pins);
    let echo = &file["targets"]["ref"]["echo"];
    assert!(echo["digest"].as_str().unwrap().starts_with("sha256:"), "{file}");
    assert_eq!(echo["definition"]["description"], "Echoes back the input", "reviewable");
    let (ok, by_url, stderr) = pin(&["--url", &upstream.url("/mcp"), "--name", "ref"]);
    assert!(ok, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&by_url).unwrap(), file, "a URL pins the same");
    let (ok, _, stderr) = pin(&["-f", config.to_str().unwrap(), "--target", "nope"]);
    assert!(!ok && stderr.contains("no MCP target `nope`"), "{stderr}");

    let (mut child, logs) = start(&["-f", config.to_str().unwrap()]);
    let port = port_of(&logs);
    rt.block_on(async {
        let c = client(port).await;
        let before = c.tool_names().await.unwrap();
        assert!(before.contains(&"echo".to_string()), "{before:?}");
        let r = c.call_tool("echo", json!({"message": "pinned"})).await.unwrap();
        assert_eq!(first_text(&r), Some("Echo: pinned"), "{r}");

        switch.store(true, Ordering::SeqCst);
        let after = c.tool_names().await.unwrap();
        assert!(!after.contains(&"echo".to_string()), "{after:?}");
        assert_eq!(after.len(), before.len() - 1);
        let r = c.call_tool("echo", json!({"message": "poisoned"})).await.unwrap();
        assert!(refused_by_pinning(&r), "{r}");
        let r = c.call_tool("add", json!({"a": 1, "b": 2})).await.unwrap();
        assert_eq!(first_text(&r), Some("The sum of 1 and 2 is 3."), "{r}");
    });
    let lines = logs.wait_for("tool definition differs from its pin");
    let audit = lines.iter().find(|l| l.contains("tool definition differs from its pin")).unwrap();
    let pinned = echo["digest"].as_str().unwrap();
    for field in ["mcp_target=ref", "tool=\"echo\"", &format!("pinned={pinned}"), "listed=sha256:"] {
        assert!(audit.contains(field), "{field} in {audit}");
    }
    assert!(!audit.contains("id_rsa"), "the description itself is not logged: {audit}");
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two gateway processes share a state file (and the session key): the first definition either
/// of them sees is the approved one for both. The second never listed the tools before the
/// change, yet hides and refuses the changed tool, also on a session the first one created.
#[test]
fn trust_on_first_use_holds_across_two_gateway_processes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (upstream, switch) = rt.block_on(upstream_with_switch());
    let dir = tempdir();
    let state = dir.join("tofu-state.json");
    let pinning =
        format!("          toolPinning:\n            trustOnFirstUse:\n              stateFile: {}\n", state.display());
    let config = gateway_config(&upstream.url("/mcp"), &pinning);
    let (mut one, logs_one) = start(&["--config", &config]);
    let (mut two, logs_two) = start(&["--config", &config]);
    let (p1, p2) = (port_of(&logs_one), port_of(&logs_two));
    rt.block_on(async {
        let c1 = client(p1).await;
        let before = c1.tool_names().await.unwrap();
        assert!(before.contains(&"echo".to_string()));
        let recorded = read_json(&state);
        assert!(recorded["targets"]["ref"]["echo"]["digest"].is_string(), "{recorded}");

        switch.store(true, Ordering::SeqCst);
        // The second process, on a session the first one created: a call before any list.
        let shared = McpClient::new(format!("http://127.0.0.1:{p2}/mcp")).with_session(c1.session.as_ref().unwrap());
        let r = shared.call_tool("echo", json!({"message": "x"})).await.unwrap();
        assert!(refused_by_pinning(&r), "{r}");
        let c2 = client(p2).await;
        let listed_two = c2.tool_names().await.unwrap();
        assert!(!listed_two.contains(&"echo".to_string()), "{listed_two:?}");
        let listed_one = c1.tool_names().await.unwrap();
        assert_eq!(listed_one, listed_two, "both processes give the same verdict");
        assert!(refused_by_pinning(&c1.call_tool("echo", json!({"message": "x"})).await.unwrap()));
        assert_eq!(read_json(&state), recorded, "the state file keeps the first definition");

        switch.store(false, Ordering::SeqCst);
        assert_eq!(c2.tool_names().await.unwrap(), before);
        let r = c2.call_tool("echo", json!({"message": "back"})).await.unwrap();
        assert_eq!(first_text(&r), Some("Echo: back"), "{r}");
    });
    for child in [&mut one, &mut two] {
        sigterm(child);
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
