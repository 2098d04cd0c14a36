//! Prompt ACKs on upstream connections that need them.
//!
//! Many MCP servers leave Nagle's algorithm on and write an answer in several small pieces
//! (headers, then an SSE event, then the end of the chunked body). Nagle holds each piece back
//! until the previous one is acknowledged, and the gateway's kernel, having just sent a request
//! on the connection, delays that ACK (40 ms or more on Linux) hoping to piggyback it on data of
//! its own. Every answer then waits for the delayed-ACK timer. Setting `TCP_QUICKACK` after a
//! read sends any ACK that is waiting at once and leaves delayed-ACK mode, so the upstream's next
//! piece leaves straight away. The kernel drops back into delayed-ACK mode by itself (the flag is
//! not sticky), hence "after each read".
//!
//! An immediate ACK is not free: it is a packet of its own instead of a ride on the next request
//! (a tenth of the gateway's CPU per call on loopback). So a connection starts without it and
//! watches for the stall's signature: within one exchange (the reads after a write), data that
//! arrives [`STALL`] or more after the previous read. Once seen, the connection ACKs after every
//! read, and the upstream's address is remembered so that its later connections start that way.
//! The one stalled answer per upstream is the price. Elsewhere than Linux this is a
//! pass-through.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A gap between two reads of one answer this long is taken for a delayed ACK (Linux waits at
/// least 40 ms before sending one).
pub const STALL: Duration = Duration::from_millis(25);

/// Upstreams remembered as needing prompt ACKs; more are not remembered (their connections
/// still learn on their own).
const MAX_REMEMBERED: usize = 1024;

/// The upstream addresses (`host:port`) whose connections ACK every read.
#[derive(Debug, Default)]
struct Remembered(Mutex<HashSet<String>>);

impl Remembered {
    fn contains(&self, key: &str) -> bool {
        self.0.lock().map(|s| s.contains(key)).unwrap_or(false)
    }

    fn insert(&self, key: &str) {
        if let Ok(mut s) = self.0.lock()
            && s.len() < MAX_REMEMBERED
        {
            s.insert(key.to_string());
        }
    }
}

/// An upstream TCP connection that acknowledges what it reads at once when its upstream needs
/// it.
#[derive(Debug)]
pub struct QuickAck {
    inner: TokioIo<TcpStream>,
    /// ACK after every read.
    prompt: bool,
    /// When the last read of the current exchange completed (`None` right after a write).
    last_read: Option<Instant>,
    /// Where to note that this upstream needs prompt ACKs.
    upstream: String,
    remembered: Arc<Remembered>,
}

impl QuickAck {
    fn new(inner: TokioIo<TcpStream>, upstream: String, remembered: Arc<Remembered>) -> QuickAck {
        let prompt = remembered.contains(&upstream);
        QuickAck { inner, prompt, last_read: None, upstream, remembered }
    }

    /// Called after each completed read.
    fn read_done(&mut self) {
        if !self.prompt {
            let now = Instant::now();
            let stalled = self.last_read.is_some_and(|t| now.duration_since(t) >= STALL);
            self.last_read = Some(now);
            if !stalled {
                return;
            }
            self.prompt = true;
            self.remembered.insert(&self.upstream);
            tracing::debug!(upstream = %self.upstream, "upstream answers in pieces held back by delayed ACKs: acknowledging its reads at once");
        }
        self.ack_now();
    }

    /// Sends a pending ACK now and leaves delayed-ACK mode until the kernel re-enters it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn ack_now(&self) {
        // Failure (a closed socket) changes nothing about the read's outcome.
        let _ = socket2::SockRef::from(self.inner.inner()).set_tcp_quickack(true);
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn ack_now(&self) {}
}

impl Read for QuickAck {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.read_done();
        }
        polled
    }
}

impl Write for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.last_read = None;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.last_read = None;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

/// [`HttpConnector`] whose connections are [`QuickAck`]; it remembers which upstreams need
/// prompt ACKs.
#[derive(Debug, Clone)]
pub struct QuickAckConnector {
    http: HttpConnector,
    remembered: Arc<Remembered>,
}

impl QuickAckConnector {
    pub fn new(http: HttpConnector) -> QuickAckConnector {
        QuickAckConnector { http, remembered: Arc::default() }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<QuickAck, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let upstream = format!("{}:{}", uri.host().unwrap_or_default(), uri.port_u16().unwrap_or_default());
        let remembered = self.remembered.clone();
        let connecting = self.http.call(uri);
        Box::pin(async move { Ok(QuickAck::new(connecting.await?, upstream, remembered)) })
    }
}
