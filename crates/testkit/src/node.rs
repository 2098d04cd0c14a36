//! Real MCP peers from npm (installed in `tests/node` by `.ci/run`): the conformance suite,
//! `server-everything`, `mcp-proxy`, `oidc-provider` and scripts using the TypeScript SDK client.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// `tests/node` in the repository.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node").canonicalize().expect("tests/node exists")
}

/// Fails the test with instructions when the npm packages are not installed.
pub fn require_installed() -> PathBuf {
    let d = dir();
    assert!(
        d.join("node_modules/@modelcontextprotocol/conformance").exists(),
        "npm test dependencies are missing: run `npm ci --prefix tests/node` (`.ci/run` does this)"
    );
    d
}

/// A path inside `tests/node/node_modules`.
pub fn module(path: &str) -> String {
    require_installed().join("node_modules").join(path).to_string_lossy().into_owned()
}

/// A free loopback port (bound and released; the OS will not hand it out again at once).
pub async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

/// A child process in its own process group; the whole group is killed on drop, so helpers
/// that spawn children of their own (`mcp-proxy`, `npx`) leave nothing behind.
pub struct Process {
    child: Child,
    pub name: String,
}

impl Process {
    pub fn spawn(name: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(dir()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.process_group(0).kill_on_drop(true);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        Process { child, name: name.to_string() }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The system call, not `kill(1)`: procps reads `-<n>` as a signal number when n is
        // small (as pids are in a PID namespace). Never for pid 0 or 1.
        if let Some(pid) = self.child.id().filter(|p| *p > 1).and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Waits until something accepts connections on `port` (at most `within`).
pub async fn wait_for_port(port: u16, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "nothing listens on port {port} after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `server-everything` in Streamable HTTP mode on a free port; returns its `/mcp` URL.
pub async fn server_everything_http() -> (Process, String) {
    let port = free_port().await;
    let p = Process::spawn(
        "server-everything",
        "node",
        &[&module("@modelcontextprotocol/server-everything/dist/index.js"), "streamableHttp"],
        &[("PORT", &port.to_string())],
    );
    wait_for_port(port, Duration::from_secs(30)).await;
    (p, format!("http://localhost:{port}/mcp"))
}

/// `server-everything` in legacy SSE mode on a free port; returns its `/sse` URL.
pub async fn server_everything_sse() -> (Process, String) {
    let port = free_port().await;
    let p = Process::spawn(
        "server-everything-sse",
        "node",
        &[&module("@modelcontextprotocol/server-everything/dist/index.js"), "sse"],
        &[("PORT", &port.to_string())],
    );
    wait_for_port(port, Duration::from_secs(30)).await;
    (p, format!("http://localhost:{port}/sse"))
}

/// The path of server-everything's entry point (for stdio targets: `node <path> stdio`).
pub fn server_everything_js() -> String {
    module("@modelcontextprotocol/server-everything/dist/index.js")
}

/// The tutorial's upstream: `mcp-proxy --port P -- server-everything` (stdio behind HTTP).
pub async fn mcp_proxy_everything() -> (Process, String) {
    let port = free_port().await;
    let proxy = module("mcp-proxy/dist/bin/mcp-proxy.mjs");
    let everything = module("@modelcontextprotocol/server-everything/dist/index.js");
    let p = Process::spawn("mcp-proxy", "node", &[&proxy, "--port", &port.to_string(), "--", "node", &everything], &[]);
    wait_for_port(port, Duration::from_secs(30)).await;
    (p, format!("http://localhost:{port}/mcp"))
}

/// Runs a script in `tests/node` with node; returns (exit success, stdout, stderr).
pub async fn run_script(script: &str, args: &[&str]) -> (bool, String, String) {
    run_script_env(script, args, &[]).await
}

/// [`run_script`] with extra environment variables.
pub async fn run_script_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = require_installed();
    let out = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&dir)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
