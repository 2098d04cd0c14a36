//! Hot reload: the config file and the files it names (JWKS, htpasswd, TLS certificates and
//! keys) are watched, and a
//! valid change is applied without a restart.
//!
//! Watching is a poll of the files' metadata every [`POLL`]: cheap (a few `stat` calls), and it
//! sees every way a file gets replaced — editors that write a new file and rename it,
//! Kubernetes ConfigMaps that swap a symlink, `cp`, `sed -i` — with no platform notifier to go
//! wrong. A change is read only once every watched file has kept the same stamp (modification
//! time, length, inode) for [`SETTLE`], so a file caught half-written is neither counted as a
//! failed reload nor, worse, applied as a valid partial config. Writing the file atomically
//! (a temporary file in the same directory, then a rename) avoids the question altogether.
//!
//! What a reload changes: listeners, routes, policies, backends, targets and key files. Open
//! sessions on routes that still exist continue (session ids name the backend, and state lives
//! in the id or in the session table, which a reload does not touch). Ports that appear are
//! opened (on the first worker thread), ports that disappear stop accepting and drain. The
//! `config:` block (admin addresses, workers, session key, logging, …) is read at start-up only;
//! a change to it is reported and takes effect on restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agw_config::Loaded;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::Shared;
use crate::jwks::RemoteJwks;
use crate::listener;
use crate::resolve::{self, Runtime};

/// How often the files are checked.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// How long every watched file must stay unchanged before a change is read. Longer than the
/// pauses of a writer that writes in pieces (an editor, `cp` of a large file, a script), short
/// enough that a reload still feels immediate.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);

/// The ports being served and how to stop each.
pub(crate) struct Ports {
    pub(crate) stops: HashMap<u16, watch::Sender<bool>>,
    /// Serving tasks started by reloads (those from start-up live in the caller's set).
    pub(crate) tasks: JoinSet<()>,
    pub(crate) drain: Duration,
}

/// What identifies a version of a file: change any of it and the file changed.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    Some((meta.modified().ok()?, meta.len(), ino))
}

/// The config file and every file it names (keys named `file` anywhere in it).
fn watched_files(config_path: &Path, loaded: Option<&Loaded>) -> Vec<PathBuf> {
    let mut files = vec![config_path.to_path_buf()];
    if let Some(loaded) = loaded
        && let Ok(value) = serde_json::to_value(&loaded.config)
    {
        collect_files(&value, &mut files);
    }
    files
}

fn collect_files(v: &serde_json::Value, out: &mut Vec<PathBuf>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == "file" => out.push(PathBuf::from(s)),
                    // Certificates, keys and CAs (listeners and upstreams): a rotated certificate
                    // is picked up by a reload.
                    serde_json::Value::Object(tls) if k == "tls" || k == "backendTLS" => {
                        for name in ["cert", "key", "root"] {
                            if let Some(serde_json::Value::String(s)) = tls.get(name) {
                                out.push(PathBuf::from(s));
                            }
                        }
                    }
                    other => collect_files(other, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_files(i, out)),
        _ => {}
    }
}

fn stamps(files: &[PathBuf]) -> BTreeMap<PathBuf, Stamp> {
    files.iter().map(|f| (f.clone(), stamp(f))).collect()
}

/// Runs until `stop` fires: watches `path` (when there is one) and applies changes; then stops
/// the key refreshers and every port this task started.
pub(crate) async fn run(
    path: Option<PathBuf>,
    initial: Option<Loaded>,
    shared: Arc<Shared>,
    mut ports: Ports,
    mut stop: watch::Receiver<bool>,
) {
    let (mut generation, mut refreshers) = start_refreshers(&shared.runtime.load().remote_jwks);
    let settings = initial.as_ref().and_then(|l| l.config.config.clone()).unwrap_or_default();
    let collectors = initial.as_ref().map(|l| crate::telemetry::collectors(&l.config)).unwrap_or_default();
    let mut files = path.as_deref().map(|p| watched_files(p, initial.as_ref())).unwrap_or_default();
    let mut seen = stamps(&files);
    // Stamps that differ from `seen`, and since when they have stayed as they are.
    let mut changed: Option<(BTreeMap<PathBuf, Stamp>, Instant)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => break,
        }
        let Some(path) = &path else { continue };
        let now = stamps(&files);
        if now == seen {
            changed = None;
            continue;
        }
        // Let a writer finish: read once the files have stayed the same for `SETTLE`.
        match &changed {
            Some((stamps, since)) if *stamps == now => {
                if since.elapsed() < SETTLE {
                    continue;
                }
            }
            _ => {
                changed = Some((now, Instant::now()));
                continue;
            }
        }
        changed = None;
        seen = now;
        let metrics = shared.relay.metrics().clone();
        // Reading, parsing and compiling rules is blocking work: off the event loop.
        let loading = path.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&loading))
            .await
            .unwrap_or_else(|e| Err(format!("config reload failed: {e}")));
        match loaded {
            Ok((loaded, runtime)) => {
                if loaded.config.config.clone().unwrap_or_default() != settings {
                    warn!(file = %path.display(), "the `config:` block changed; it takes effect on restart");
                }
                if crate::telemetry::collectors(&loaded.config) != collectors {
                    warn!(file = %path.display(), "an OTLP collector (tracing or accessLog.otlp) changed; it takes effect on restart");
                }
                for w in &runtime.warnings {
                    warn!("{w}");
                }
                let old = shared.runtime.load_full();
                keep_remote_keys(&old.remote_jwks, &runtime.remote_jwks);
                let runtime = Arc::new(runtime);
                // The new routes first, then the ports: a new port never serves the old config.
                shared.runtime.store(runtime.clone());
                apply_ports(&old, &runtime, &shared, &mut ports);
                // The old key refreshers stop; the new ones start from the keys kept above.
                let _ = generation.send(true);
                while refreshers.join_next().await.is_some() {}
                (generation, refreshers) = start_refreshers(&runtime.remote_jwks);
                files = watched_files(path, Some(&loaded));
                // Files read for this version keep the stamps they were read at: a write that
                // came in meanwhile is seen on the next poll.
                let fresh = stamps(&files);
                seen = fresh
                    .into_iter()
                    .map(|(file, now)| {
                        let at_read = seen.get(&file).copied().unwrap_or(now);
                        (file, at_read)
                    })
                    .collect();
                metrics.reloads.get_or_create(&agw_mcp::metrics::ReloadLabels { result: "success" }).inc();
                info!(file = %path.display(), "config reloaded");
            }
            Err(errors) => {
                metrics.reloads.get_or_create(&agw_mcp::metrics::ReloadLabels { result: "failure" }).inc();
                error!("config not reloaded; the running config stays:\n{errors}");
            }
        }
    }
    let _ = generation.send(true);
    for tx in ports.stops.values() {
        let _ = tx.send(true);
    }
    while refreshers.join_next().await.is_some() {}
    while ports.tasks.join_next().await.is_some() {}
}

fn load(path: &Path) -> Result<(Loaded, Runtime), String> {
    let loaded = agw_config::load_file(path).map_err(|e| e.to_string())?;
    let runtime = resolve::resolve(&loaded).map_err(|e| e.to_string())?;
    Ok((loaded, runtime))
}

fn start_refreshers(remotes: &[Arc<RemoteJwks>]) -> (watch::Sender<bool>, JoinSet<()>) {
    let (tx, rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for r in remotes {
        set.spawn(r.clone().run(rx.clone()));
    }
    (tx, set)
}

/// A reload must not send every caller to a 401 while remote keys are fetched again: new
/// key sets start with the keys of the same URL.
fn keep_remote_keys(old: &[Arc<RemoteJwks>], new: &[Arc<RemoteJwks>]) {
    for n in new {
        if let Some(o) = old.iter().find(|o| o.url == n.url) {
            n.store.replace((*o.store.keys()).clone());
            n.mark_loaded();
        }
    }
}

/// Opens the ports the new config adds and stops the ones it drops.
fn apply_ports(old: &Runtime, new: &Runtime, shared: &Arc<Shared>, ports: &mut Ports) {
    for bind in &new.binds {
        if ports.stops.contains_key(&bind.port) {
            continue;
        }
        let addr = format!("0.0.0.0:{}", bind.port);
        match crate::listen_shared(&addr) {
            Ok(tcp) => {
                info!("Listening on {}", tcp.local_addr().map_or(addr.clone(), |a| a.to_string()));
                if let (Ok(mut p), Ok(local)) = (shared.ports.lock(), tcp.local_addr()) {
                    p.insert(bind.port, local.port());
                }
                let (tx, rx) = watch::channel(false);
                ports.stops.insert(bind.port, tx);
                ports.tasks.spawn(listener::serve_bind(tcp, bind.port, shared.clone(), rx, ports.drain));
            }
            Err(e) => error!("{e}; the routes of this port are not served"),
        }
    }
    let kept: Vec<u16> = new.binds.iter().map(|b| b.port).collect();
    for bind in &old.binds {
        if !kept.contains(&bind.port)
            && let Some(tx) = ports.stops.remove(&bind.port)
        {
            info!(port = bind.port, "port removed from the config; it stops accepting and drains");
            if let Ok(mut p) = shared.ports.lock() {
                p.remove(&bind.port);
            }
            let _ = tx.send(true);
        }
    }
}
