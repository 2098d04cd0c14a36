//! The gateway: binds ports, routes requests to backends, serves admin and readiness.
//!
//! A request goes listener → route → policies → backend → upstream; the modules are named for
//! those steps. See `ARCHITECTURE.md` at the repository root.

mod admin;
pub mod auth;
pub mod authz;
mod backend;
mod error;
pub mod explain;
pub mod jwks;
mod listener;
pub mod resolve;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agw_config::Loaded;
use agw_config::model::{DEFAULT_ADMIN_ADDR, DEFAULT_READINESS_ADDR};
use agw_mcp::local::LocalSessions;
use agw_mcp::session::SessionCodec;
use agw_mcp::{HttpClient, Limits, Relay};
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

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
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    locals: Arc<LocalSessions>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (bounded), and returns when done.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Requests have drained: now end the sessions this gateway holds (kills children).
        self.locals.close_all().await;
    }

    /// Sessions whose state this gateway holds (stdio and legacy SSE).
    pub fn local_sessions(&self) -> usize {
        self.locals.len()
    }
}

/// Binds every port of the config and starts serving.
pub async fn start(loaded: &Loaded) -> Result<Running, StartError> {
    let runtime = resolve(loaded)?;
    for w in &runtime.warnings {
        tracing::warn!("{w}");
    }
    let remote_jwks = runtime.remote_jwks.clone();
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
        None => SessionCodec::plain(),
    };
    let mcp = settings.mcp.clone().unwrap_or_default();
    let locals = Arc::new(LocalSessions::new(
        mcp.session_ttl.map_or(DEFAULT_SESSION_TTL, |d| d.get()),
        mcp.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
    ));
    let shared = Arc::new(Shared {
        relay: Relay::new(client.clone(), Limits::default(), codec, locals.clone()),
        client,
        runtime: ArcSwap::from_pointee(runtime),
    });
    let (shutdown, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(sweep_sessions(locals.clone(), stop.clone()));
    // Key servers may be down at start-up: fetching happens in the background and requests
    // get 401 until keys arrive.
    for remote in remote_jwks {
        tasks.spawn(remote.run(stop.clone()));
    }

    let mut bind_addrs = Vec::new();
    for (index, bind) in loaded.config.binds.iter().enumerate() {
        let addr = format!("0.0.0.0:{}", bind.port);
        let tcp = listen(&addr).await?;
        let local = tcp.local_addr().map_err(|source| StartError::Bind { addr: addr.clone(), source })?;
        info!("Listening on {local}");
        bind_addrs.push(local);
        tasks.spawn(listener::serve_bind(tcp, index, shared.clone(), stop.clone(), drain));
    }

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
    Ok(Running { bind_addrs, admin_addr, readiness_addr, shutdown, tasks, locals })
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
