//! A Nagle-bound MCP upstream: the habit of many real servers, on purpose.
//!
//! It leaves Nagle's algorithm on (no `TCP_NODELAY`) and writes every answer in three writes:
//! the response head, the SSE event, the end of the chunked body. The kernel sends the head at
//! once and holds the rest until the head is acknowledged; a client in delayed-ACK mode (any
//! client that has just sent a request on a keep-alive connection) sends that ACK only when its
//! delayed-ACK timer fires, 40 ms or more on Linux. So every call costs ~40 ms unless the reader
//! acknowledges promptly (`TCP_QUICKACK`).
//!
//! It speaks just enough hand-written HTTP/1.1 for that (keep-alive, `Content-Length` request
//! bodies) and enough MCP for a session: `initialize`, notifications, `ping`, `tools/list` and
//! `tools/call` of one `echo` tool.
//!
//! With [`Options::watch_acks`] it records, for each answer, how long its head waited to be
//! acknowledged (from `/proc/net/tcp`: Linux only), which is what a delayed ACK costs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Record how long each answer's first write waited for its ACK (slows answers by up to a
    /// millisecond of polling; tests only).
    pub watch_acks: bool,
}

/// A running Nagle-bound upstream; dropping it stops it.
pub struct NagleServer {
    pub addr: SocketAddr,
    ack_waits: Arc<Mutex<Vec<Duration>>>,
    task: JoinHandle<()>,
}

impl NagleServer {
    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// How long each answer's head waited for its ACK, in order (with `watch_acks`).
    pub fn ack_waits(&self) -> Vec<Duration> {
        self.ack_waits.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// The first `n` recorded waits, once that many answers have been acknowledged (the last
    /// ACK may still be on its way when the client has its answer); fewer after five seconds.
    pub async fn ack_waits_of(&self, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        while self.ack_waits().len() < n && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.ack_waits().into_iter().take(n).collect()
    }

    /// Forgets the waits recorded so far.
    pub fn clear_ack_waits(&self) {
        if let Ok(mut w) = self.ack_waits.lock() {
            w.clear();
        }
    }
}

impl Drop for NagleServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the Nagle-bound upstream at `/mcp` on `addr`.
pub async fn serve(addr: SocketAddr, options: Options) -> std::io::Result<NagleServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let ack_waits = Arc::new(Mutex::new(Vec::new()));
    let waits = ack_waits.clone();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            // Deliberately no `set_nodelay(true)`.
            let waits = waits.clone();
            connections.spawn(async move {
                let _ = connection(stream, options, waits).await;
            });
        }
    });
    Ok(NagleServer { addr, ack_waits, task })
}

async fn connection(mut stream: TcpStream, options: Options, waits: Arc<Mutex<Vec<Duration>>>) -> std::io::Result<()> {
    let ports = (stream.local_addr()?.port(), stream.peer_addr()?.port());
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Some((method, head_len, content_length)) = read_head(&mut stream, &mut buf).await? else { return Ok(()) };
        while buf.len() < head_len + content_length {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body: Vec<u8> = buf.drain(..head_len + content_length).skip(head_len).collect();
        if method != "POST" {
            stream.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nallow: POST\r\n\r\n").await?;
            continue;
        }
        let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let Some(answer) = answer(&msg) else {
            stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").await?;
            continue;
        };
        let session = if msg["method"] == "initialize" { "mcp-session-id: nagle-session\r\n" } else { "" };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n{session}transfer-encoding: chunked\r\n\r\n"
        );
        let event = format!("event: message\ndata: {answer}\n\n");
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        let wrote = Instant::now();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(chunk.as_bytes()).await?;
        stream.write_all(b"0\r\n\r\n").await?;
        if options.watch_acks {
            let waited = wait_for_acks(ports, wrote).await;
            if let Ok(mut w) = waits.lock() {
                w.push(waited);
            }
        }
    }
}

/// Reads one request head into `buf` (which may hold pipelined bytes): its method, length and
/// `Content-Length`. `None` when the client closed between requests.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<(String, usize, usize)>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("head is not UTF-8"))?;
            let method = head.split(' ').next().unwrap_or_default().to_string();
            let mut length = 0;
            for line in head.split("\r\n").skip(1) {
                if let Some((name, value)) = line.split_once(':')
                    && name.trim().eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().map_err(|_| bad("bad content-length"))?;
                }
            }
            if length > MAX_BODY {
                return Err(bad("body too large"));
            }
            return Ok(Some((method, end + 4, length)));
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("head too large"));
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// The JSON-RPC answer to `msg`, or `None` for a notification.
fn answer(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let result = match msg["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "nagle-bound", "version": "1"}
        }),
        "ping" => json!({}),
        "tools/list" => json!({"tools": [{
            "name": "echo",
            "description": "Echoes back the input",
            "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
        }]}),
        "tools/call" if msg["params"]["name"] == "echo" => {
            let text = format!("Echo: {}", msg["params"]["arguments"]["message"].as_str().unwrap_or_default());
            json!({"content": [{"type": "text", "text": text}]})
        }
        other => {
            return Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("no method {other}")}}),
            );
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// Polls the kernel's view of the connection until everything written is acknowledged; how long
/// that took from `since` (at most two seconds).
async fn wait_for_acks(ports: (u16, u16), since: Instant) -> Duration {
    while since.elapsed() < Duration::from_secs(2) {
        match unacknowledged(ports) {
            Some(0) | None => break,
            Some(_) => tokio::time::sleep(Duration::from_micros(200)).await,
        }
    }
    since.elapsed()
}

/// Bytes written but not yet acknowledged on the loopback connection `(local, peer)` ports, from
/// `/proc/net/tcp` (`tx_queue`); `None` when the connection is not listed.
pub fn unacknowledged((local, peer): (u16, u16)) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port =
                |f: Option<&&str>| f.and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if port(fields.get(1)) == Some(local) && port(fields.get(2)) == Some(peer) {
                let queue = fields.get(4)?.split(':').next()?;
                return u64::from_str_radix(queue, 16).ok();
            }
        }
    }
    None
}
