//! Connection counts: the per-worker cap and the process's file-descriptor limit.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agw_mcp::metrics::Metrics;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::warn;

/// Descriptors kept out of the per-worker caps: admin and readiness connections, upstream
/// connections beyond one per client, config and key files, stdio children's pipes.
const FD_RESERVE: u64 = 1024;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (each client connection holds a
/// descriptor). Returns the (soft, hard) limits now in force.
pub fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    Ok((soft, hard))
}

/// The per-worker connection cap when none is configured: every worker may fill its share of
/// the descriptors left after the reserve, each connection counted twice (its upstream side).
pub(crate) fn default_max_connections(workers: usize) -> usize {
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(FD_RESERVE, |(soft, _)| soft);
    let per_worker = soft.saturating_sub(FD_RESERVE) / (2 * workers.max(1) as u64);
    usize::try_from(per_worker).unwrap_or(usize::MAX).clamp(256, 50_000)
}

thread_local! {
    /// The worker whose event loop runs on this thread (the main worker leaves it unset).
    static CURRENT: RefCell<Option<Arc<Worker>>> = const { RefCell::new(None) };
}

/// One worker thread's open connections, over all its ports.
#[derive(Debug, Default)]
pub(crate) struct Worker {
    open: AtomicUsize,
    /// Refused since the last warning.
    refused: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl Worker {
    /// Makes `worker` the one [`Worker::current`] finds on this thread.
    pub(crate) fn enter(worker: Arc<Worker>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(worker));
    }

    /// This thread's worker, or `main` on the main worker (whose runtime may be the caller's).
    pub(crate) fn current(main: &Arc<Worker>) -> Arc<Worker> {
        CURRENT.with(|c| c.borrow().clone()).unwrap_or_else(|| main.clone())
    }

    /// Counts a new connection, or refuses it (`None`) at `cap`.
    pub(crate) fn open(self: &Arc<Self>, cap: usize, metrics: &Arc<Metrics>) -> Option<Open> {
        let counted = self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1));
        if counted.is_err() {
            self.refuse(cap, metrics);
            return None;
        }
        metrics.connections_open.inc();
        Some(Open { worker: self.clone(), metrics: metrics.clone() })
    }

    /// Counts a refusal and warns, at most once a second per worker, with the count since.
    fn refuse(&self, cap: usize, metrics: &Metrics) {
        metrics.connections_refused.inc();
        self.refused.fetch_add(1, Ordering::Relaxed);
        let Ok(mut last) = self.last_warning.lock() else { return };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        let refused = self.refused.swap(0, Ordering::Relaxed);
        warn!(
            cap,
            refused,
            "connection limit of this worker reached; closing new connections (frontendPolicies.tcp.maxConnectionsPerWorker)"
        );
    }
}

/// One open connection of a worker; uncounted when dropped.
pub(crate) struct Open {
    worker: Arc<Worker>,
    metrics: Arc<Metrics>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.worker.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.connections_open.dec();
    }
}
