//! Prompt ACKs on upstream connections.
//!
//! Many MCP servers leave Nagle's algorithm on and write an answer in several small pieces
//! (headers, then an SSE event, then the end of the chunked body). Nagle holds each piece back
//! until the previous one is acknowledged, and the gateway's kernel, having just sent a request
//! on the connection, delays that ACK (up to 40 ms on Linux) hoping to piggyback it on data of
//! its own. Every answer then waits for the delayed-ACK timer. Setting `TCP_QUICKACK` after each
//! read sends any ACK that is waiting at once and leaves delayed-ACK mode, so the upstream's next
//! piece leaves straight away. The kernel drops back into delayed-ACK mode by itself (the flag is
//! not sticky), hence "after each read". Elsewhere than Linux this is a pass-through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An upstream TCP connection that acknowledges what it reads at once.
#[derive(Debug)]
pub struct QuickAck {
    inner: TokioIo<TcpStream>,
}

impl QuickAck {
    pub fn new(inner: TokioIo<TcpStream>) -> QuickAck {
        QuickAck { inner }
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
            self.ack_now();
        }
        polled
    }
}

impl Write for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
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

/// [`HttpConnector`] whose connections are [`QuickAck`].
#[derive(Debug, Clone)]
pub struct QuickAckConnector {
    http: HttpConnector,
}

impl QuickAckConnector {
    pub fn new(http: HttpConnector) -> QuickAckConnector {
        QuickAckConnector { http }
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
        let connecting = self.http.call(uri);
        Box::pin(async move { Ok(QuickAck::new(connecting.await?)) })
    }
}
