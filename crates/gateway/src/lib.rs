//! The gateway: binds ports, routes requests to backends, serves admin and readiness.
//!
//! A request goes listener → route → policies → backend → upstream; the modules are named for
//! those steps. See `ARCHITECTURE.md` at the repository root.

pub mod a2a;
mod admin;
pub mod auth;
pub mod authz;
mod backend;
mod conditional;
mod conn;
pub mod envoy;
mod error;
pub mod explain;
mod ext_authz;
pub mod ext_mcp;
pub mod grpc;
mod guardrails;
pub mod jwks;
mod listener;
pub mod oauth;
pub mod oidc;
pub mod path;
pub mod pin;
mod ratelimit;
mod reload;
mod remote_ratelimit;
pub mod resolve;
pub mod route;
mod telemetry;
pub mod token_exchange;
mod traffic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agw_config::Loaded;
use agw_config::model::{DEFAULT_ADMIN_ADDR, DEFAULT_READINESS_ADDR, DEFAULT_STATS_ADDR};
use agw_mcp::local::LocalSessions;
use agw_mcp::metrics::Metrics;
use agw_mcp::session::SessionCodec;
use agw_mcp::{HttpClient, Limits, Relay};
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

pub use conn::raise_fd_limit;
pub use error::GatewayError;
pub use resolve::{Runtime, resolve};

/// How long an idle session with local state is kept.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// Most live sessions with local state.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// State shared by every connection: the current runtime config and the upstream clients.
pub(crate) struct Shared {
    pub(crate) runtime: ArcSwap<Runtime>,
    pub(crate) relay: Relay,
    pub(crate) client: HttpClient,
    pub(crate) log_level: Option<Arc<dyn LogLevel>>,
    /// The port each bind really listens on, by its configured port (they differ for 0).
    pub(crate) ports: std::sync::Mutex<std::collections::HashMap<u16, u16>>,
    /// The connections of the main worker (the caller's runtime); other workers' are
    /// thread-local.
    pub(crate) main_worker: Arc<conn::Worker>,
    /// Accept loops still listening (shutdown says it has stopped accepting once none is).
    pub(crate) listening: Arc<Listening>,
    /// `accessLog.otlp`: the OTLP exporter of access-log records.
    pub(crate) access_exporter: Option<agw_mcp::otlp::LogExporter>,
}

/// Counts the traffic ports' accept loops that still hold their listening socket.
#[derive(Debug, Default)]
pub(crate) struct Listening {
    open: std::sync::atomic::AtomicUsize,
    closed: tokio::sync::Notify,
}

/// Held by an accept loop while its socket listens.
pub(crate) struct ListeningGuard(Arc<Listening>);

impl Listening {
    pub(crate) fn enter(self: &Arc<Self>) -> ListeningGuard {
        self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ListeningGuard(self.clone())
    }

    /// Waits (at most `within`) until no accept loop listens any more.
    async fn all_closed(&self, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            loop {
                let closed = self.closed.notified();
                if self.open.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                closed.await;
            }
        })
        .await;
    }
}

impl Drop for ListeningGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.closed.notify_waiters();
    }
}

/// Changes the log filter at run time (the admin server's `/logging`).
pub trait LogLevel: Send + Sync {
    /// The current filter, e.g. `info,access=off`.
    fn get(&self) -> String;
    /// Replaces the filter; `Err` with the reason when it does not parse.
    fn set(&self, filter: &str) -> Result<(), String>;
}

/// What the command line hands the gateway beyond the config.
#[derive(Default, Clone)]
pub struct Options {
    /// Lets `/logging` change the log level.
    pub log_level: Option<Arc<dyn LogLevel>>,
    /// The config file, watched and reloaded when it (or a file it names) changes.
    pub config_path: Option<std::path::PathBuf>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] agw_config::ConfigErrors),
    #[error("cannot listen on {addr}: {source} (is another process using this port?)")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Running {
    /// The address of each bind, in config order (useful with `port: 0`).
    pub bind_addrs: Vec<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub readiness_addr: Option<SocketAddr>,
    pub stats_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    locals: Arc<LocalSessions>,
    tracer: Option<agw_mcp::trace::Tracer>,
    access_exporter: Option<agw_mcp::otlp::LogExporter>,
    listening: Arc<Listening>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (bounded), and returns when done.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        // Only once every traffic port has closed its socket is it true that new connections
        // are refused.
        self.listening.all_closed(Duration::from_secs(1)).await;
        info!("stopped accepting connections; draining requests in flight");
        while self.tasks.join_next().await.is_some() {}
        // Requests have drained: now end the sessions this gateway holds (kills children).
        self.locals.close_all().await;
        if let Some(t) = &self.tracer {
            t.flush(Duration::from_secs(3)).await;
        }
        if let Some(l) = &self.access_exporter {
            l.flush(Duration::from_secs(3)).await;
        }
    }

    /// Sessions whose state this gateway holds (stdio and legacy SSE).
    pub fn local_sessions(&self) -> usize {
        self.locals.len()
    }
}

/// Binds every port of the config and starts serving.
pub async fn start(loaded: &Loaded) -> Result<Running, StartError> {
    start_with(loaded, Options::default()).await
}

/// [`start`], with hooks from the command line.
pub async fn start_with(loaded: &Loaded, options: Options) -> Result<Running, StartError> {
    let runtime = resolve(loaded)?;
    for w in &runtime.warnings {
        tracing::warn!("{w}");
    }
    let settings = loaded.config.config.clone().unwrap_or_default();
    let drain = settings.connection_termination_deadline.map_or(resolve::DEFAULT_DRAIN, |d| d.get());
    let client = HttpClient::new(Duration::from_secs(10));
    let codec = match &settings.session {
        Some(s) => SessionCodec::sealed(s.key.expose()).map_err(|e| {
            loaded.errors(vec![agw_config::FieldError::new(
                agw_config::FieldPath::root().key("config").key("session").key("key"),
                e.to_string(),
            )])
        })?,
        // Ids are sealed all the same, under a key of this process: a client can neither read
        // an id nor forge one into another caller's (replicas need `session.key` to share).
        None => SessionCodec::ephemeral(),
    };
    let mcp = settings.mcp.clone().unwrap_or_default();
    let mcp_options = resolve::mcp_options(&mcp);
    let locals = Arc::new(LocalSessions::with_quotas(
        mcp.session_ttl.map_or(DEFAULT_SESSION_TTL, |d| d.get()),
        mcp.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
        mcp_options.quotas,
    ));
    let metrics = Arc::new(Metrics::new());
    let tracer = match telemetry::exporter(&loaded.config) {
        Some(e) => {
            let (tracer, _exporter) =
                agw_mcp::trace::Tracer::start(&e.endpoint, e.protocol, e.path.as_deref(), e.headers)
                    .map_err(|msg| loaded.errors(vec![agw_config::FieldError::new(e.at.clone(), msg)]))?;
            info!("Traces exported to {} ({:?})", agw_config::redact::url(&e.endpoint), e.protocol);
            Some(tracer)
        }
        None => None,
    };
    let access_exporter = match telemetry::log_exporter(&loaded.config) {
        Some(e) => {
            let (exporter, _task) = agw_mcp::otlp::LogExporter::start(&e.endpoint, e.protocol, e.path.as_deref())
                .map_err(|msg| loaded.errors(vec![agw_config::FieldError::new(e.at.clone(), msg)]))?;
            info!("Access log exported to {} ({:?})", agw_config::redact::url(&e.endpoint), e.protocol);
            Some(exporter)
        }
        None => None,
    };
    // Body sizes and the buffer budget are fixed for the process: the relay is built once.
    let limits = match runtime.frontend.max_buffer_size {
        Some(n) => Limits { max_request: n, max_response: n },
        None => Limits::default(),
    };
    let budget = Arc::new(agw_http::body::Budget::new(
        runtime.frontend.max_buffered_request_bytes,
        metrics.request_body_buffered_bytes.clone(),
    ));
    let shared = Arc::new(Shared {
        relay: Relay::new(client.clone(), limits, codec, locals.clone(), metrics)
            .with_tracer(tracer.clone())
            .with_options(mcp_options)
            .with_budget(budget),
        client,
        runtime: ArcSwap::from_pointee(runtime),
        log_level: options.log_level,
        ports: Default::default(),
        main_worker: Default::default(),
        listening: Default::default(),
        access_exporter: access_exporter.clone(),
    });
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(sweep_sessions(locals.clone(), stop.clone()));

    // Thread per core: every worker has its own event loop and its own accept queue on each
    // port (SO_REUSEPORT), so a request is served on one thread from accept to answer, with
    // no hand-offs between threads. The first worker is the calling runtime.
    let workers = agw_config::model::Settings::worker_count(Some(&settings));
    let mut bind_addrs = Vec::new();
    // Each port stops on its own (a reload can drop it) or with everything else.
    let mut port_stops = std::collections::HashMap::new();
    let mut per_worker: Vec<Vec<(u16, watch::Receiver<bool>, TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for bind in &loaded.config.binds {
        let addr = format!("0.0.0.0:{}", bind.port);
        let first = listen_shared(&addr)?;
        let local = first.local_addr().map_err(|source| StartError::Bind { addr: addr.clone(), source })?;
        info!("Listening on {local}");
        bind_addrs.push(local);
        if let Ok(mut p) = shared.ports.lock() {
            p.insert(bind.port, local.port());
        }
        let (tx, rx) = watch::channel(false);
        port_stops.insert(bind.port, tx);
        per_worker[0].push((bind.port, rx.clone(), first));
        for w in per_worker.iter_mut().skip(1) {
            // The same port (resolved, if it was 0) for every worker.
            w.push((bind.port, rx.clone(), listen_shared(&local.to_string())?));
        }
    }
    let mut per_worker = per_worker.into_iter();
    for (port, stop, tcp) in per_worker.next().unwrap_or_default() {
        tasks.spawn(listener::serve_bind(tcp, port, shared.clone(), stop, drain));
    }
    for (n, listeners) in per_worker.enumerate() {
        let shared = shared.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        // Listeners are registered with the runtime that serves them: handed over as std
        // sockets.
        let std_listeners: Vec<(u16, watch::Receiver<bool>, std::net::TcpListener)> =
            listeners.into_iter().filter_map(|(p, s, l)| l.into_std().ok().map(|l| (p, s, l))).collect();
        std::thread::Builder::new()
            .name(format!("agw-worker-{}", n + 1))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a worker thread's event loop");
                        return;
                    }
                };
                conn::Worker::enter(Arc::default());
                rt.block_on(async move {
                    let mut serving = JoinSet::new();
                    for (port, stop, l) in std_listeners {
                        if let Ok(tcp) = TcpListener::from_std(l) {
                            serving.spawn(listener::serve_bind(tcp, port, shared.clone(), stop, drain));
                        }
                    }
                    while serving.join_next().await.is_some() {}
                });
                // Dropping the runtime here ends what is left on it (finished requests' tasks).
                drop(rt);
                let _ = done_tx.send(());
            })
            .map_err(|source| StartError::Bind { addr: "worker thread".into(), source })?;
        tasks.spawn(async move {
            let _ = done_rx.await;
        });
    }

    // Key servers may be down at start-up: fetching happens in the background and requests
    // get 401 until keys arrive. The reloader runs the key refreshers of each config version.
    let ports = reload::Ports { stops: port_stops, tasks: JoinSet::new(), drain };
    tasks.spawn(reload::run(options.config_path.clone(), Some(loaded.clone()), shared.clone(), ports, stop.clone()));

    let admin_addr = match optional_addr(settings.admin_addr.as_deref(), DEFAULT_ADMIN_ADDR) {
        Some(addr) => {
            let tcp = listen(addr).await?;
            let local = tcp.local_addr().map_err(|source| StartError::Bind { addr: addr.into(), source })?;
            let host = addr.rsplit_once(':').map_or("localhost", |(h, _)| h);
            info!("Admin UI available at http://{host}:{}/ui/", local.port());
            tasks.spawn(admin::serve_admin(tcp, shared.clone(), stop.clone()));
            Some(local)
        }
        None => None,
    };
    let readiness_addr = match optional_addr(settings.readiness_addr.as_deref(), DEFAULT_READINESS_ADDR) {
        Some(addr) => {
            let tcp = listen(addr).await?;
            let local = tcp.local_addr().map_err(|source| StartError::Bind { addr: addr.into(), source })?;
            info!("Readiness on http://{local}/healthz/ready");
            tasks.spawn(admin::serve_readiness(tcp, stop.clone()));
            Some(local)
        }
        None => None,
    };
    let stats_addr = match optional_addr(settings.stats_addr.as_deref(), DEFAULT_STATS_ADDR) {
        Some(addr) => {
            let tcp = listen(addr).await?;
            let local = tcp.local_addr().map_err(|source| StartError::Bind { addr: addr.into(), source })?;
            info!("Metrics on http://{local}/metrics");
            tasks.spawn(admin::serve_stats(tcp, shared.clone(), stop.clone()));
            Some(local)
        }
        None => None,
    };
    let listening = shared.listening.clone();
    Ok(Running {
        bind_addrs,
        admin_addr,
        readiness_addr,
        stats_addr,
        shutdown,
        tasks,
        locals,
        tracer,
        access_exporter,
        listening,
    })
}

/// Ends idle sessions now and then (killing their stdio children).
async fn sweep_sessions(locals: Arc<LocalSessions>, mut stop: watch::Receiver<bool>) {
    let every = (locals.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {
                locals.expire().await;
            }
            _ = stop.changed() => return,
        }
    }
}

fn optional_addr<'a>(configured: Option<&'a str>, default: &'a str) -> Option<&'a str> {
    match configured {
        Some("off") => None,
        Some(a) => Some(a),
        None => Some(default),
    }
}

async fn listen(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr: addr.to_string(), source })
}

/// A listener that other workers of this gateway can open on the same port (`SO_REUSEPORT`;
/// the kernel spreads connections over them).
pub(crate) fn listen_shared(addr: &str) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind { addr: addr.to_string(), source };
    let sock_addr: SocketAddr = addr.parse().map_err(|_| err(std::io::Error::other("not an address")))?;
    let socket = if sock_addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
        .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_reuseport(true).map_err(err)?;
    socket.bind(sock_addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}
