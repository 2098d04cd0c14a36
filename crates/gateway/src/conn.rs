//! Serving one client connection: the step between accepting a socket and handling its
//! requests. It bounds how long a connection may take to send a request head, stay idle, or
//! live at all, counts connections per worker (refusing beyond a cap), and lets open requests
//! finish at shutdown.
//!
//! The timers are lazy: the connection's I/O and its requests only update a few atomics, and
//! one sleep per connection, when it fires, works out the real deadline from them and sleeps
//! again if the deadline has moved. Nothing is re-armed per read or per request.

mod body;
mod limits;
mod settings;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use agw_http::body::{Body, BoxError};
use agw_mcp::metrics::{CloseLabels, Metrics};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

pub(crate) use body::GuardedBody;
pub(crate) use limits::Worker;
pub use limits::raise_fd_limit;
pub(crate) use settings::{Settings, admin as admin_builder};

/// The first bytes of every HTTP/2 cleartext connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// `head_started` when no request head is being read.
const NONE: u64 = u64::MAX;

/// What a connection's I/O and requests tell its watchdog. Times are milliseconds since the
/// connection was accepted; HTTP/2 requests run on other tasks, hence atomics.
pub(crate) struct ConnState {
    accepted: Instant,
    in_flight: AtomicUsize,
    /// Requests dispatched so far.
    requests: AtomicU64,
    /// When the first byte of the request head now being read arrived (HTTP/1), or [`NONE`].
    head_started: AtomicU64,
    /// When the last response finished (or was dropped).
    last_done: AtomicU64,
    seen_bytes: AtomicBool,
    h2: AtomicBool,
}

impl ConnState {
    pub(crate) fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            last_done: AtomicU64::new(0),
            seen_bytes: AtomicBool::new(false),
            h2: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn on_read(&self, data: &[u8]) {
        if !self.seen_bytes.swap(true, Ordering::Relaxed) {
            let n = data.len().min(H2_PREFACE.len());
            if data[..n] == H2_PREFACE[..n] {
                self.h2.store(true, Ordering::Relaxed);
            }
        }
        // On HTTP/2, frames arrive between requests (PING, WINDOW_UPDATE): not request heads.
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self.head_started.load(Ordering::Relaxed) == NONE
        {
            self.head_started.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A request was dispatched: it counts until its response body ends or is dropped.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// What the watchdog should do now.
    fn verdict(&self, t: &Timeouts, now: Instant) -> Verdict {
        let elapsed = u64::try_from(now.saturating_duration_since(self.accepted).as_millis()).unwrap_or(NONE - 1);
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
        let mut next = if self.in_flight.load(Ordering::Acquire) == 0 {
            let head = self.head_started.load(Ordering::Relaxed);
            let h2 = self.h2.load(Ordering::Relaxed);
            let (deadline, reason) = if head != NONE {
                (head.saturating_add(ms(t.header)), Reason::HeaderTimeout)
            } else if self.requests.load(Ordering::Relaxed) == 0 {
                (ms(t.header), Reason::HeaderTimeout)
            } else {
                (self.last_done.load(Ordering::Relaxed).saturating_add(ms(t.idle)), Reason::Idle)
            };
            if elapsed >= deadline {
                // An idle HTTP/2 client is told with GOAWAY; an HTTP/1 connection with nothing
                // in flight has nothing to lose.
                return if h2 && reason == Reason::Idle { Verdict::Graceful(reason) } else { Verdict::Close(reason) };
            }
            // A request may yet start and end before `deadline`, and then the idle time-out
            // runs from its end: never sleep past the earliest such end (matters only when the
            // idle time-out is the shorter).
            deadline.min(elapsed.saturating_add(ms(t.idle)))
        } else {
            // Busy: looked at again after a while (its requests may end any time).
            elapsed.saturating_add(ms(t.idle.min(t.header)))
        };
        if let Some(max) = t.max_duration.map(ms) {
            if elapsed >= max {
                return Verdict::Graceful(Reason::MaxDuration);
            }
            next = next.min(max);
        }
        Verdict::Wait(self.accepted + Duration::from_millis(next))
    }
}

/// The time-outs a connection's watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
    pub(crate) max_duration: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    HeaderTimeout,
    Idle,
    MaxDuration,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::HeaderTimeout => "header_timeout",
            Reason::Idle => "idle",
            Reason::MaxDuration => "max_duration",
        }
    }
}

enum Verdict {
    Wait(Instant),
    /// Drop the connection now.
    Close(Reason),
    /// Let open requests finish, accept no more.
    Graceful(Reason),
}

/// One request in flight; ends with its response body.
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // `last_done` first: a watchdog that sees nothing in flight must see when it ended.
        self.0.last_done.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`] until it ends or is dropped.
struct Tracked {
    inner: Body,
    in_flight: Option<InFlight>,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket (or TLS stream) as hyper sees it, telling the connection's state what it reads.
struct Watched<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What serving one connection needs besides its socket and app.
pub(crate) struct Serve<'a> {
    pub(crate) builder: &'a hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    pub(crate) timeouts: Timeouts,
    /// How long a gracefully closing connection may take to finish its requests.
    pub(crate) grace: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Traffic ports count their closes; admin ports pass `None`.
    pub(crate) metrics: Option<Arc<Metrics>>,
}

/// Serves `stream` with `app` until the client leaves, a time-out closes it, or shutdown has
/// let its requests finish. The returned future is the connection's task.
pub(crate) fn serve<S, F, Fut>(
    stream: S,
    state: Arc<ConnState>,
    serve: Serve<'_>,
    app: F,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let Serve { builder, timeouts, grace, mut shutdown, metrics } = serve;
    let for_service = state.clone();
    let service = service_fn(move |req| {
        let in_flight = for_service.begin();
        let answer = app(req);
        async move {
            let resp = answer.await;
            Ok::<_, Infallible>(resp.map(|inner| Tracked { inner, in_flight: Some(in_flight) }.boxed()))
        }
    });
    let io = TokioIo::new(Watched { inner: stream, state: state.clone() });
    let conn = builder.serve_connection(io, service).into_owned();
    async move {
        let mut conn = std::pin::pin!(conn);
        let first = match state.verdict(&timeouts, Instant::now()) {
            Verdict::Wait(at) => at,
            Verdict::Close(_) | Verdict::Graceful(_) => Instant::now(),
        };
        let mut watchdog = std::pin::pin!(tokio::time::sleep_until(first));
        // Once closing gracefully: when to stop waiting for open requests.
        let mut closing: Option<Instant> = None;
        let mut stopping = *shutdown.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.changed(), if !stopping => {
                    stopping = true;
                    // The accept loop bounds the drain; this only asks the client to finish.
                    conn.as_mut().graceful_shutdown();
                }
                _ = watchdog.as_mut() => {
                    let now = Instant::now();
                    if closing.is_some_and(|at| now >= at) {
                        return;
                    }
                    match state.verdict(&timeouts, now) {
                        Verdict::Wait(at) => watchdog.as_mut().reset(closing.map_or(at, |c| c.min(at))),
                        Verdict::Close(reason) => {
                            count_close(metrics.as_deref(), reason);
                            return;
                        }
                        Verdict::Graceful(reason) => {
                            if closing.is_none() {
                                count_close(metrics.as_deref(), reason);
                                conn.as_mut().graceful_shutdown();
                                closing = Some(now + grace);
                            }
                            watchdog.as_mut().reset(closing.unwrap_or(now + grace));
                        }
                    }
                }
            }
        }
    }
}

fn count_close(metrics: Option<&Metrics>, reason: Reason) {
    debug!(reason = reason.label(), "closing connection");
    if let Some(m) = metrics {
        m.connections_closed.get_or_create(&CloseLabels { reason: reason.label() }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts =
        Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(120), max_duration: None };

    fn at(state: &ConnState, secs: u64) -> Instant {
        state.accepted + Duration::from_secs(secs)
    }

    #[test]
    fn silent_connection_hits_the_header_timeout() {
        let s = ConnState::new();
        assert!(matches!(s.verdict(&T, at(&s, 1)), Verdict::Wait(w) if w == at(&s, 10)));
        assert!(matches!(s.verdict(&T, at(&s, 10)), Verdict::Close(Reason::HeaderTimeout)));
    }

    #[test]
    fn idle_after_a_response_and_head_in_progress() {
        let s = ConnState::new();
        s.on_read(b"GET / HTTP/1.1\r\n\r\n");
        let req = s.begin();
        // Busy: nothing closes it.
        assert!(matches!(s.verdict(&T, at(&s, 50)), Verdict::Wait(_)));
        drop(req);
        s.last_done.store(5_000, Ordering::Relaxed);
        assert!(matches!(s.verdict(&T, at(&s, 6)), Verdict::Wait(w) if w == at(&s, 125)));
        assert!(matches!(s.verdict(&T, at(&s, 125)), Verdict::Close(Reason::Idle)));
        // A new head starts: the header timeout applies from its first byte.
        s.on_read(b"GET");
        s.head_started.store(6_000, Ordering::Relaxed);
        assert!(matches!(s.verdict(&T, at(&s, 7)), Verdict::Wait(w) if w == at(&s, 16)));
        assert!(matches!(s.verdict(&T, at(&s, 16)), Verdict::Close(Reason::HeaderTimeout)));
    }

    #[test]
    fn h2_idle_is_graceful_and_frames_are_not_heads() {
        let s = ConnState::new();
        s.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        drop(s.begin());
        s.last_done.store(0, Ordering::Relaxed);
        s.on_read(b"ping frame");
        assert!(matches!(s.verdict(&T, at(&s, 119)), Verdict::Wait(_)));
        assert!(matches!(s.verdict(&T, at(&s, 120)), Verdict::Graceful(Reason::Idle)));
    }

    #[test]
    fn a_short_idle_timeout_is_not_missed_while_waiting_for_a_head() {
        let s = ConnState::new();
        let t = Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(1), max_duration: None };
        assert!(matches!(s.verdict(&t, at(&s, 0)), Verdict::Wait(w) if w == at(&s, 1)));
    }

    #[test]
    fn max_duration_is_graceful_even_when_busy() {
        let s = ConnState::new();
        let t = Timeouts { max_duration: Some(Duration::from_secs(30)), ..T };
        let _req = s.begin();
        assert!(matches!(s.verdict(&t, at(&s, 30)), Verdict::Graceful(Reason::MaxDuration)));
    }
}
