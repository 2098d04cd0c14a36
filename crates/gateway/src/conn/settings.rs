//! `frontendPolicies` in runtime form: what each new connection is served with. A reload
//! applies to connections accepted after it.

use std::time::Duration;

use agw_config::model::{Config, FrontendHttp, Keepalives};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

use super::Timeouts;

/// A client has this long from connecting to its first request head, and from the first byte
/// of any head to its end: a real client sends a head at once, while a slow-loris client would
/// otherwise hold a connection (and a descriptor) for as long as it likes.
pub(crate) const DEFAULT_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Agents pause to think between calls, so keep-alive connections outlive a typical pause;
/// agentgateway keeps them 10 minutes, which lets idle clients hold many more descriptors.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A request body gets this long (plus what [`DEFAULT_REQUEST_BODY_MIN_RATE`] earns): MCP
/// bodies are small and arrive with the head; a body that stalls is an attack or a dead client.
pub(crate) const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes per second that extend a body's time: a large upload at any real speed finishes,
/// a trickle of a few bytes a second does not hold its buffer for ever.
pub(crate) const DEFAULT_REQUEST_BODY_MIN_RATE: u64 = 1024;
/// Sixteen maximum-size (16 MiB) MCP requests at once: far below a small machine's memory,
/// far above what real traffic buffers.
pub(crate) const DEFAULT_MAX_BUFFERED_REQUEST_BYTES: usize = 256 << 20;
/// How long an HTTP/2 PING may go unanswered when only the interval is configured.
const DEFAULT_H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// agentgateway's TCP keep-alive defaults.
const KEEPALIVE_TIME: Duration = Duration::from_secs(180);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(180);
const KEEPALIVE_RETRIES: u32 = 9;

/// How connections are served, from `frontendPolicies`.
pub(crate) struct Settings {
    pub(crate) timeouts: Timeouts,
    pub(crate) body_timeout: Duration,
    pub(crate) body_min_rate: u64,
    keepalive: Option<TcpKeepalive>,
    pub(crate) max_connections_per_worker: usize,
    /// hyper's connection builder with the HTTP/1 and HTTP/2 settings applied.
    pub(crate) builder: auto::Builder<TokioExecutor>,
    /// `maxBufferSize`, read at start-up by the relay.
    pub(crate) max_buffer_size: Option<usize>,
    /// `maxBufferedRequestBytes`, read at start-up.
    pub(crate) max_buffered_request_bytes: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("timeouts", &self.timeouts)
            .field("body_timeout", &self.body_timeout)
            .field("body_min_rate", &self.body_min_rate)
            .field("max_connections_per_worker", &self.max_connections_per_worker)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub(crate) fn resolve(config: &Config) -> Settings {
        let policies = config.frontend_policies.as_ref();
        let default_http = FrontendHttp::default();
        let http = policies.and_then(|p| p.http.as_ref()).unwrap_or(&default_http);
        let tcp = policies.and_then(|p| p.tcp.as_ref());
        let workers = agw_config::model::Settings::worker_count(config.config.as_ref());
        Settings {
            timeouts: Timeouts {
                header: http.request_header_timeout.map_or(DEFAULT_REQUEST_HEADER_TIMEOUT, |d| d.get()),
                idle: http.http1_idle_timeout.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.get()),
                max_duration: http.max_connection_duration.map(|d| d.get()),
            },
            body_timeout: http.request_body_timeout.map_or(DEFAULT_REQUEST_BODY_TIMEOUT, |d| d.get()),
            body_min_rate: http.request_body_min_rate.unwrap_or(DEFAULT_REQUEST_BODY_MIN_RATE),
            keepalive: keepalive(tcp.and_then(|t| t.keepalives.as_ref())),
            max_connections_per_worker: tcp
                .and_then(|t| t.max_connections_per_worker)
                .unwrap_or_else(|| super::limits::default_max_connections(workers)),
            builder: builder(http),
            max_buffer_size: http.max_buffer_size,
            max_buffered_request_bytes: http.max_buffered_request_bytes.unwrap_or(DEFAULT_MAX_BUFFERED_REQUEST_BYTES),
        }
    }

    /// Socket options for an accepted connection. Failures are not fatal: the connection
    /// works without them.
    pub(crate) fn prepare(&self, stream: &TcpStream) {
        let _ = stream.set_nodelay(true);
        if let Some(ka) = &self.keepalive {
            let _ = SockRef::from(stream).set_tcp_keepalive(ka);
        }
    }
}

/// The builder for the gateway's own small servers (admin, readiness, metrics), with the
/// time-outs they are served with: they must keep answering while traffic ports are busy.
pub(crate) fn admin() -> (auto::Builder<TokioExecutor>, Timeouts) {
    let timeouts =
        Timeouts { header: DEFAULT_REQUEST_HEADER_TIMEOUT, idle: Duration::from_secs(60), max_duration: None };
    (builder(&FrontendHttp::default()), timeouts)
}

fn keepalive(k: Option<&Keepalives>) -> Option<TcpKeepalive> {
    if k.and_then(|k| k.enabled) == Some(false) {
        return None;
    }
    Some(
        TcpKeepalive::new()
            .with_time(k.and_then(|k| k.time).map_or(KEEPALIVE_TIME, |d| d.get()))
            .with_interval(k.and_then(|k| k.interval).map_or(KEEPALIVE_INTERVAL, |d| d.get()))
            .with_retries(k.and_then(|k| k.retries).unwrap_or(KEEPALIVE_RETRIES)),
    )
}

fn builder(http: &FrontendHttp) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    {
        let mut h1 = b.http1();
        // The connection's watchdog times request heads, from the first byte; hyper's own
        // timer would also cut idle keep-alive connections at the header time-out.
        h1.timer(TokioTimer::new()).header_read_timeout(None::<Duration>);
        if let Some(n) = http.http1_max_headers {
            h1.max_headers(n);
        }
    }
    let mut h2 = b.http2();
    h2.timer(TokioTimer::new());
    if let Some(n) = http.http2_window_size {
        h2.initial_stream_window_size(n);
    }
    if let Some(n) = http.http2_connection_window_size {
        h2.initial_connection_window_size(n);
    }
    if let Some(n) = http.http2_frame_size {
        h2.max_frame_size(n);
    }
    if let Some(n) = http.http2_max_header_size {
        h2.max_header_list_size(n);
    }
    if let Some(every) = http.http2_keepalive_interval {
        h2.keep_alive_interval(every.get());
        h2.keep_alive_timeout(http.http2_keepalive_timeout.map_or(DEFAULT_H2_KEEPALIVE_TIMEOUT, |d| d.get()));
    }
    b
}
