//! stdio upstreams: a child process per session, newline-delimited JSON-RPC on its stdin and
//! stdout, its stderr in the gateway's log. The child runs in its own process group, and the
//! whole group is killed when the session ends, expires or the gateway stops, so helpers it
//! started (`npx` starting `node`) go too.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::conn::{ConnError, Router, ServerEvent};

mod stderr;

/// Lines (messages) longer than this end the connection.
pub const MAX_LINE: usize = 32 << 20;

/// The line buffer kept between messages; a larger one is freed once its message is read.
const KEPT_CAPACITY: usize = 64 << 10;

/// How to start a stdio target.
#[derive(Debug, Clone)]
pub struct StdioTarget {
    pub cmd: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub clear_env: bool,
}

/// A running child.
#[derive(Debug)]
pub struct StdioConn {
    pub router: Arc<Router>,
    stdin: mpsc::Sender<Bytes>,
    pgid: Option<i32>,
    child: tokio::sync::Mutex<Option<Child>>,
    /// Set once the child is reaped: its process group id may then belong to someone else.
    reaped: std::sync::atomic::AtomicBool,
    /// Live children of the gateway (`agentgateway_stdio_children`); decremented once, when
    /// this connection is closed or dropped.
    live: Gauge,
    counted: std::sync::atomic::AtomicBool,
}

impl StdioConn {
    /// Starts the child; its messages go to `events` (or to the request waiting for them).
    pub fn spawn(
        target: &str,
        spec: &StdioTarget,
        events: mpsc::Sender<ServerEvent>,
        live: Gauge,
    ) -> Result<Arc<StdioConn>, ConnError> {
        let mut cmd = Command::new(&spec.cmd);
        cmd.args(&spec.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if spec.clear_env {
            cmd.env_clear();
        }
        cmd.envs(&spec.env).process_group(0).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| ConnError::Write(format!("cannot start `{}`: {e}", spec.cmd)))?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        info!(target, cmd = %spec.cmd, pid = pgid, "stdio upstream started");
        live.inc();
        let router = Arc::new(Router::new(target.to_string(), events));
        let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(64);

        let mut stdin = child.stdin.take().expect("piped stdin");
        let r = router.clone();
        tokio::spawn(async move {
            while let Some(msg) = stdin_rx.recv().await {
                let written = async {
                    stdin.write_all(&msg).await?;
                    stdin.write_all(b"\n").await?;
                    stdin.flush().await
                };
                if let Err(e) = written.await {
                    debug!(target = %r.target, error = %e, "stdio upstream stdin closed");
                    r.close();
                    return;
                }
            }
        });

        let stdout = child.stdout.take().expect("piped stdout");
        let r = router.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                if line.capacity() > KEPT_CAPACITY {
                    // A large message passed: do not hold its buffer for the child's lifetime.
                    line = Vec::new();
                }
                line.clear();
                match read_line(&mut reader, &mut line).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        warn!(target = %r.target, error = %e, "stdio upstream output refused");
                        break;
                    }
                }
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Value>(text) {
                    Ok(Value::Array(batch)) => {
                        for m in batch {
                            r.dispatch(m).await;
                        }
                    }
                    Ok(m) => r.dispatch(m).await,
                    Err(_) => warn!(target = %r.target, "stdio upstream wrote a line that is not JSON; ignored"),
                }
            }
            debug!(target = %r.target, "stdio upstream stdout closed");
            r.close();
        });

        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(stderr::log_lines(target.to_string(), stderr));

        Ok(Arc::new(StdioConn {
            router,
            stdin: stdin_tx,
            pgid,
            child: tokio::sync::Mutex::new(Some(child)),
            reaped: std::sync::atomic::AtomicBool::new(false),
            live,
            counted: std::sync::atomic::AtomicBool::new(true),
        }))
    }

    pub async fn send(&self, message: Bytes) -> Result<(), ConnError> {
        if self.router.is_closed() {
            return Err(ConnError::Closed);
        }
        self.stdin.send(message).await.map_err(|_| ConnError::Closed)
    }

    /// Kills the child and everything in its process group, and reaps it.
    pub async fn close(&self) {
        self.router.close();
        self.kill_group();
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
            self.reaped.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.uncount();
    }

    fn uncount(&self) {
        if self.counted.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.live.dec();
        }
    }

    fn kill_group(&self) {
        if self.reaped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Some(pgid) = self.pgid.filter(|p| *p > 1) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for StdioConn {
    fn drop(&mut self) {
        // `close` is the normal way out; this covers a session dropped without it.
        self.kill_group();
        self.uncount();
    }
}

/// Reads one line, refusing more than [`MAX_LINE`] bytes. Returns the bytes read (0 at EOF).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R, out: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(out.len());
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if out.len() + take > MAX_LINE {
            return Err(std::io::Error::other(format!("message larger than {MAX_LINE} bytes")));
        }
        // Grown here, not by `Vec`'s doubling: one message takes at most `MAX_LINE`.
        crate::grow::reserve(out, take, MAX_LINE);
        out.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done {
            return Ok(out.len());
        }
    }
}
