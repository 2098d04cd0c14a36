//! The admin page, end to end in headless Chromium (tests/node/ui-e2e.mjs with
//! playwright-core): the tutorial's config, `example2.key` pasted into the playground, the
//! tools its rules allow listed, `echo` called, the decision explained.
//!
//! Set `AGW_UI_SCREENSHOTS=docs/img` to refresh the README's screenshots.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{repo, sigterm, start};

#[test]
fn the_admin_page_lists_and_calls_what_the_tutorial_allows_example2() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream =
        rt.block_on(agw_testkit::reference::serve("127.0.0.1:0".parse().unwrap(), Default::default())).unwrap();
    let tutorial = repo().join("examples/tutorial");
    let config = std::fs::read_to_string(tutorial.join("config.yaml"))
        .unwrap()
        .replace("port: 3000", "port: 0")
        .replace("http://localhost:3001/mcp", &upstream.url("/mcp"))
        .replace("file: ./pub-key", &format!("file: {}", tutorial.join("pub-key").display()));
    let config = format!("config:\n  adminAddr: 127.0.0.1:0\n  statsAddr: 'off'\n  readinessAddr: 'off'\n{config}");
    let (mut child, logs) = start(&["--config", &config]);
    let lines = logs.wait_for("Admin UI available at http://127.0.0.1:");
    let admin = lines.iter().find_map(|l| l.split("Admin UI available at ").nth(1)).unwrap().trim_end_matches("/ui/");

    let shots = std::env::var("AGW_UI_SCREENSHOTS")
        .map(|d| repo().join(d))
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("agw-ui-{}", std::process::id())));
    let out = Command::new("node")
        .arg(repo().join("tests/node/ui-e2e.mjs"))
        .args([admin, &tutorial.join("example2.key").to_string_lossy(), "route0", &shots.to_string_lossy()])
        .output()
        .expect("node runs");
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ui-e2e failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(seen["routeShown"], true);
    // The reference server has many tools; the tutorial's rules let example2 see these two.
    assert_eq!(seen["tools"], serde_json::json!(["echo", "add"]), "{seen}");
    assert!(seen["echo"].as_str().unwrap().contains("hello from the admin page"), "{seen}");
    let why = seen["explanation"].as_str().unwrap();
    assert!(why.contains("decision: allow") && why.contains("mcp.tool.name == \"echo\""), "{why}");
    assert_eq!(seen["toolCalls"], 1, "the overview's live figures count the call");
    assert!(shots.join("admin-overview.png").exists() && shots.join("admin-playground.png").exists());
    let all = logs.lines().join("\n");
    let token = std::fs::read_to_string(tutorial.join("example2.key")).unwrap();
    assert!(!all.contains(token.trim().split('.').nth(2).unwrap()), "the token leaked into the log");
}
