//! Real MCP peers from PyPI (`tests/python/requirements.txt`, installed by `.ci/run` into a
//! venv outside the clone): scripts using the official MCP Python SDK.

use std::path::PathBuf;

use tokio::process::Command;

/// `tests/python` in the repository.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python").canonicalize().expect("tests/python exists")
}

/// The venv's interpreter: `$AGW_PYTHON`, else `$XDG_CACHE_HOME/agentgateway-rs/python-venv`
/// (where `.ci/run` makes it). Fails the test with instructions when it is missing.
pub fn interpreter() -> PathBuf {
    let python = std::env::var_os("AGW_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("agentgateway-rs/python-venv/bin/python")
    });
    assert!(
        python.exists(),
        "the Python test peers are missing ({}): run `.ci/run`, or `python3 -m venv <dir> && <dir>/bin/pip install -r tests/python/requirements.txt` and set AGW_PYTHON=<dir>/bin/python",
        python.display()
    );
    python
}

/// Runs a script in `tests/python`; returns (exit success, stdout, stderr).
pub async fn run_script(script: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(interpreter())
        .arg(dir().join(script))
        .args(args)
        .current_dir(dir())
        .kill_on_drop(true)
        .output()
        .await
        .expect("python runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
