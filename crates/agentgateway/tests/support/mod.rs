//! Helpers for tests that run the real binary.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentgateway");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("agw-cli-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The binary's log lines, collected as they come (so the pipe never fills up).
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Logs {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a line contains `needle` (at most 20 s).
    pub fn wait_for(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = self.lines();
            if lines.iter().any(|l| l.contains(needle)) {
                return lines;
            }
            assert!(Instant::now() < deadline, "`{needle}` not logged; got {lines:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts the binary and reads its log until `needle` appears.
pub fn start_until(args: &[&str], needle: &str) -> (Child, Vec<String>) {
    let (child, logs) = start(args);
    let lines = logs.wait_for(needle);
    (child, lines)
}

pub fn start(args: &[&str]) -> (Child, Logs) {
    start_with_env(args, &[])
}

/// Starts the binary with extra environment variables.
pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> (Child, Logs) {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = Logs::default();
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.0.lock().unwrap().push(line);
        }
    });
    (child, logs)
}

pub fn sigterm(child: &Child) {
    Command::new("kill").args(["-s", "TERM", "--", &child.id().to_string()]).status().unwrap();
}
