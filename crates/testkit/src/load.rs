//! The load harness behind `loadbench`: drives one MCP workload (initialize once, then
//! `tools/call echo` over Streamable HTTP) against an upstream directly, through nginx, and
//! through the gateway with and without the tutorial's policies, in one run, and measures
//! each proxy's CPU time per request (from `/proc/<pid>/stat`), peak memory, throughput and
//! latency. Ratios between rows of one run are what matter: the machine is shared and noisy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::node::{Process, free_port, wait_for_port};

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The repository (for the tutorial's key and tokens).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// A sibling binary of the running one (`agentgateway`, `mcp-example-server`).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} not found: build it first (`cargo build --release --bins`)", path.display());
    }
    Ok(path)
}

/// The tutorial's `example1.key` (sees `echo`, `add`, `printEnv`).
pub fn tutorial_token() -> String {
    std::fs::read_to_string(repo().join("examples/tutorial/example1.key")).expect("example1.key").trim().to_string()
}

/// Processes whose ancestry includes `root` (and `root`).
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1).and_then(|s| s.parse::<u32>().ok())) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// `/proc/<pid>/stat` after the command name: state, ppid, … (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU time (user + system) of the processes, in clock ticks.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| stat_fields(*p))
        .map(|f| {
            f.get(11).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Peak resident memory of the processes (`VmHWM`), KiB.
pub fn peak_rss_kib(pids: &[u32]) -> u64 {
    pids.iter().map(|p| status_kib(*p, "VmHWM:")).sum()
}

/// Current resident memory of the processes (`VmRSS`), KiB.
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter().map(|p| status_kib(*p, "VmRSS:")).sum()
}

/// An MCP client session for the load: the session id, headers, the request bodies.
#[derive(Clone)]
pub struct Session {
    client: HttpClient,
    url: String,
    session: Option<String>,
    token: Option<String>,
}

/// The load client: keep-alive HTTP/1.1, plain or TLS (trusting the test CA, as the HTTPS
/// fronts present the test kit's `localhost` certificate).
pub fn client() -> HttpClient {
    client_with(1024)
}

/// [`client`] keeping at most `idle` connections per host.
fn client_with(idle: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let mut tls = crate::tls::client_config(&["ca"], None);
    // `enable_http1` below offers `http/1.1` only.
    tls.alpn_protocols.clear();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(idle).build(https)
}

impl Session {
    /// `initialize` and `notifications/initialized`.
    pub async fn open(client: &HttpClient, url: &str, token: Option<&str>) -> anyhow::Result<Session> {
        let mut s =
            Session { client: client.clone(), url: url.to_string(), session: None, token: token.map(str::to_string) };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "loadbench", "version": "1"}}});
        let (status, headers, body) = s.post(init.to_string()).await?;
        if status != StatusCode::OK {
            bail!("initialize at {url}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        s.session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let (status, _, _) = s.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string()).await?;
        if !status.is_success() {
            bail!("notifications/initialized at {url}: HTTP {status}");
        }
        Ok(s)
    }

    pub async fn post(&self, body: String) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
        let mut b = Request::post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(s) = &self.session {
            b = b.header("mcp-session-id", s);
        }
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let resp = self.client.request(b.body(Full::new(Bytes::from(body)))?).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    /// One `tools/call echo`; checks the answer.
    pub async fn echo(&self, id: u64) -> anyhow::Result<()> {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"hi"}}}}}}"#
        );
        let (status, _, bytes) = self.post(body).await?;
        if status != StatusCode::OK || !bytes.windows(8).any(|w| w == b"Echo: hi") {
            bail!("unexpected answer: HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]));
        }
        Ok(())
    }
}

/// Latency figures, µs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

fn percentiles(mut us: Vec<u64>) -> Latency {
    if us.is_empty() {
        return Latency::default();
    }
    us.sort_unstable();
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize] as f64;
    Latency { p50: at(0.5), p99: at(0.99) }
}

/// Closed loop: `concurrency` callers, each sending the next call when the last is answered.
pub struct Closed {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Latency,
}

pub async fn closed_loop(s: &Session, concurrency: usize, duration: Duration) -> Closed {
    let ids = Arc::new(AtomicU64::new(1));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (s, ids, errors) = (s.clone(), ids.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                match s.echo(ids.fetch_add(1, Ordering::Relaxed)).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("  error: {e:#}");
                        }
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    Closed {
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        latency: percentiles(all),
    }
}

/// Open loop: calls start at a fixed rate whatever the answers do (a stall does not slow the
/// load down). Latency is counted from when a call was sent: tokio's timer has millisecond
/// resolution, so counting from when a call was due would add up to a millisecond of the
/// harness's own lateness to every figure.
pub async fn open_loop(s: &Session, rate: u64, duration: Duration) -> (Latency, u64) {
    let n = (rate as f64 * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let errors = Arc::new(AtomicU64::new(0));
    let limit = Arc::new(tokio::sync::Semaphore::new(512));
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let (s, errors, limit) = (s.clone(), errors.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = limit.acquire().await.ok()?;
            let sent = Instant::now();
            match s.echo(100_000_000 + i).await {
                Ok(()) => Some(sent.elapsed().as_micros() as u64),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(Some(us)) = t.await {
            all.push(us);
        }
    }
    (percentiles(all), errors.load(Ordering::Relaxed))
}

/// One agent: a single keep-alive connection making `calls` sequential `tools/call echo`, the
/// way SDK clients work (after a few warm-up calls). Latency of each call, µs.
pub async fn one_agent(front: &Front, calls: usize) -> anyhow::Result<Latency> {
    let c = client_with(1);
    let s = Session::open(&c, &front.url, front.token.as_deref()).await?;
    let mut us = Vec::with_capacity(calls);
    for i in 0..calls + 5 {
        let t = Instant::now();
        s.echo(i as u64 + 1).await?;
        if i >= 5 {
            us.push(t.elapsed().as_micros() as u64);
        }
    }
    Ok(percentiles(us))
}

/// A proxy (or nothing) in front of an upstream.
pub struct Front {
    pub name: String,
    pub url: String,
    /// The process to measure (`None` for a direct connection).
    pub process: Option<Process>,
    pub token: Option<String>,
}

/// nginx in front of `upstream` (`host:port`), one worker, upstream keep-alive, no buffering.
/// `None` when nginx is not installed.
pub async fn nginx(upstream: &str, path: &str, dir: &Path) -> anyhow::Result<Option<Front>> {
    nginx_with(upstream, path, dir, false).await
}

/// [`nginx`], terminating TLS (TLS 1.3, the test kit's `localhost` certificate) when `tls`.
pub async fn nginx_with(upstream: &str, path: &str, dir: &Path, tls: bool) -> anyhow::Result<Option<Front>> {
    let Some(bin) = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists()) else {
        return Ok(None);
    };
    let port = free_port().await;
    let prefix = dir.join(if tls { "nginx-tls" } else { "nginx" });
    let (listen, certificate) = if tls {
        (
            format!("listen 127.0.0.1:{port} ssl;"),
            format!(
                "    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.3;\n    ssl_session_cache off;\n",
                crate::tls::path("localhost.pem"),
                crate::tls::path("localhost.key")
            ),
        )
    } else {
        (format!("listen 127.0.0.1:{port};"), String::new())
    };
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {p}/nginx.pid;\nerror_log stderr warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  upstream mcp {{ server {upstream}; keepalive 256; }}\n  server {{\n    {listen}\n{certificate}    location / {{\n      proxy_pass http://mcp;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n      proxy_buffering off;\n      proxy_request_buffering off;\n      proxy_read_timeout 3600s;\n    }}\n  }}\n}}\n",
        p = prefix.display()
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let p = Process::spawn("nginx", bin, &["-p", &prefix.to_string_lossy(), "-c", &conf_path.to_string_lossy()], &[]);
    wait_for_port(port, Duration::from_secs(10)).await;
    Ok(Some(Front {
        name: if tls { "nginx+tls" } else { "nginx" }.into(),
        url: format!("{}://127.0.0.1:{port}{path}", if tls { "https" } else { "http" }),
        process: Some(p),
        token: None,
    }))
}

/// The gateway on a config whose only route has `policies` (YAML, indented for a route) in
/// front of `upstream_url`.
pub async fn gateway(name: &str, upstream_url: &str, policies: &str, dir: &Path) -> anyhow::Result<Front> {
    gateway_with(name, upstream_url, policies, dir, false).await
}

/// [`gateway`], terminating TLS (the test kit's `localhost` certificate) when `tls`.
pub async fn gateway_with(
    name: &str,
    upstream_url: &str,
    policies: &str,
    dir: &Path,
    tls: bool,
) -> anyhow::Result<Front> {
    let bin = sibling("agentgateway")?;
    let port = free_port().await;
    let mut config = gateway_config(port, upstream_url, policies);
    if tls {
        config = config.replace(
            "  listeners:\n  - routes:",
            &format!(
                "  listeners:\n  - protocol: HTTPS\n    tls:\n      cert: {}\n      key: {}\n    routes:",
                crate::tls::path("localhost.pem"),
                crate::tls::path("localhost.key")
            ),
        );
    }
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, config)?;
    // `LOADBENCH_GATEWAY_ENV=K=V,…` passes settings to the gateways only (e.g. tokio's
    // `TOKIO_WORKER_THREADS`), for experiments.
    let extra = std::env::var("LOADBENCH_GATEWAY_ENV").unwrap_or_default();
    let env: Vec<(&str, &str)> = extra.split(',').filter_map(|kv| kv.split_once('=')).collect();
    let p = Process::spawn(name, &bin.to_string_lossy(), &["-f", &file.to_string_lossy()], &env);
    wait_for_port(port, Duration::from_secs(10)).await;
    let scheme = if tls { "https" } else { "http" };
    Ok(Front { name: name.into(), url: format!("{scheme}://127.0.0.1:{port}/mcp"), process: Some(p), token: None })
}

/// Quotas out of the way: a load test opens sessions far faster than any one agent would.
pub const BENCH_QUOTAS: &str = "  mcp:\n    maxSessions: 1000000\n    quotas:\n      sessions: 1000000\n      stdioSessions: 1000000\n      newSessionsPerSecond: 1000000\n      newSessionsBurst: 1000000\n      anonymous:\n        sessions: 1000000\n        stdioSessions: 1000000\n        newSessionsPerSecond: 1000000\n        newSessionsBurst: 1000000\n        newSessionsPerSecondPerAddress: 1000000\n        newSessionsBurstPerAddress: 1000000\n";

pub fn gateway_config(port: u16, upstream_url: &str, policies: &str) -> String {
    // Like nginx here: one worker, unless `LOADBENCH_GATEWAY_WORKERS` says otherwise.
    let workers = std::env::var("LOADBENCH_GATEWAY_WORKERS").ok().and_then(|w| w.parse::<usize>().ok()).unwrap_or(1);
    format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  workerThreads: {workers}\n  logging:\n    level: warn\n{BENCH_QUOTAS}binds:\n- port: {port}\n  listeners:\n  - routes:\n    - {policies}backends:\n      - mcp:\n          targets:\n          - name: mcp\n            mcp:\n              host: {upstream_url}\n"
    )
}

/// The tutorial's route policies (CORS, ES256 `jwtAuth`, three CEL rules), indented for
/// [`gateway_config`].
pub fn tutorial_policies() -> String {
    let key = repo().join("examples/tutorial/pub-key");
    format!(
        "policies:\n        cors:\n          allowOrigins: [\"*\"]\n          allowHeaders: [\"*\"]\n          exposeHeaders: [\"Mcp-Session-Id\"]\n        jwtAuth:\n          issuer: agentgateway.dev\n          audiences: [test.agentgateway.dev]\n          jwks:\n            file: {}\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"echo\"'\n          - 'jwt.sub == \"test-user\" && mcp.tool.name == \"add\"'\n          - 'mcp.tool.name == \"printEnv\" && jwt.nested.key == \"value\"'\n      ",
        key.display()
    )
}

/// Two local rate limits too high to refuse anything, indented for [`gateway_config`]: one
/// for the route (agentgateway's form) and one bucket per tool (our keyed extension, counted
/// per JSON-RPC request). What a limit costs when it does not bite.
pub const RATE_LIMITS: &str = "policies:\n        localRateLimit:\n        - maxTokens: 1000000000\n          tokensPerFill: 1000000000\n          fillInterval: 1s\n        - maxTokens: 1000000000\n          tokensPerFill: 1000000000\n          fillInterval: 1s\n          key: mcp.tool.name\n      ";

/// A route-wide and a per-tool descriptor, as [`RATE_LIMITS`] but asked of the rate-limit
/// service at `host` (whose limit is too high to refuse anything), indented for
/// [`gateway_config`].
pub fn remote_rate_limits(host: &str) -> String {
    format!(
        "policies:\n        remoteRateLimit:\n          host: {host}\n          domain: bench\n          descriptors:\n          - entries:\n            - key: route\n              value: \"'bench'\"\n          - entries:\n            - key: tool\n              value: mcp.tool.name\n      "
    )
}

/// A `redis-server` and the `rls-redis` service in front of it (a limit of 10^9 per second),
/// kept running as long as the returned value lives; and the service's `host:port`.
pub async fn remote_rate_limit_service() -> anyhow::Result<(Box<dyn std::any::Any + Send>, String)> {
    let redis = crate::rls::RedisServer::start().await?;
    let bin = sibling("rls-redis")?;
    let port = free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let redis_addr = redis.addr.to_string();
    let args = ["--listen", &listen, "--redis", &redis_addr, "--limit", "1000000000", "--unit", "second"];
    let rls = Process::spawn("rls-redis", &bin.to_string_lossy(), &args, &[]);
    wait_for_port(port, Duration::from_secs(10)).await;
    Ok((Box::new((redis, rls)), listen))
}

/// One row of the results.
pub struct Row {
    pub upstream: String,
    pub front: String,
    pub throughput: f64,
    pub closed: Latency,
    pub cpu_us: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub rate: u64,
    pub at_rate: Latency,
    pub errors: u64,
}

/// Runs the closed and open loops through `front` and measures its process.
pub async fn measure(
    upstream: &str,
    front: &Front,
    concurrency: usize,
    duration: Duration,
    rate: u64,
    rate_duration: Duration,
) -> anyhow::Result<Row> {
    let c = client();
    let s = Session::open(&c, &front.url, front.token.as_deref()).await?;
    // Warm-up: connections, allocator, caches.
    closed_loop(&s, concurrency, duration / 5).await;
    let pids = front.process.as_ref().and_then(Process::pid).map(process_tree).unwrap_or_default();
    let before = cpu_ticks(&pids);
    let closed = closed_loop(&s, concurrency, duration).await;
    let ticks = cpu_ticks(&pids) - before;
    let (at_rate, open_errors) = open_loop(&s, rate, rate_duration).await;
    let tps = ticks_per_second() as f64;
    Ok(Row {
        upstream: upstream.into(),
        front: front.name.clone(),
        throughput: closed.requests as f64 / closed.elapsed.as_secs_f64(),
        closed: closed.latency,
        cpu_us: (!pids.is_empty() && closed.requests > 0).then(|| ticks as f64 / tps * 1e6 / closed.requests as f64),
        peak_rss_mib: (!pids.is_empty()).then(|| peak_rss_kib(&pids) as f64 / 1024.0),
        rate,
        at_rate,
        errors: closed.errors + open_errors,
    })
}

/// The results as a Markdown table, with ratios to nginx (to nginx terminating TLS for the
/// `+tls` rows) and added latency over direct.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| upstream | path | calls/s (closed loop) | p50 / p99 µs (closed loop) | proxy CPU µs/call | × nginx CPU | peak RSS MiB | open loop: rate/s, p50 / p99 µs | added p50 / p99 µs over direct | errors |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        // A TLS-terminating row compares with nginx terminating TLS.
        let floor = if r.front.ends_with("+tls") { "nginx+tls" } else { "nginx" };
        let nginx = rows.iter().find(|n| n.upstream == r.upstream && n.front == floor).and_then(|n| n.cpu_us);
        let direct = rows.iter().find(|n| n.upstream == r.upstream && n.front == "direct");
        let ratio = match (r.cpu_us, nginx) {
            (Some(c), Some(n)) if n > 0.0 => format!("{:.2}", c / n),
            _ => "—".into(),
        };
        let added = match direct {
            Some(d) if r.front != "direct" => {
                format!("{:+.0} / {:+.0}", r.at_rate.p50 - d.at_rate.p50, r.at_rate.p99 - d.at_rate.p99)
            }
            _ => "—".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} / {:.0} | {} | {} | {} | {}/s: {:.0} / {:.0} | {} | {} |\n",
            r.upstream,
            r.front,
            r.throughput,
            r.closed.p50,
            r.closed.p99,
            r.cpu_us.map_or("—".into(), |c| format!("{c:.0}")),
            ratio,
            r.peak_rss_mib.map_or("—".into(), |m| format!("{m:.1}")),
            r.rate,
            r.at_rate.p50,
            r.at_rate.p99,
            added,
            r.errors
        ));
    }
    out
}

/// An upstream with `n` tools (the tutorial's three among them), answering in JSON: for the
/// cost of filtering a long `tools/list`.
pub async fn catalogue(n: usize) -> std::io::Result<crate::serve::Server> {
    let mut tools: Vec<serde_json::Value> = (0..n.saturating_sub(3))
        .map(|i| json!({"name": format!("tool-{i}"), "description": "A tool", "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}}}))
        .collect();
    for name in ["echo", "add", "printEnv"] {
        tools.push(json!({"name": name, "description": "A tool", "inputSchema": {"type": "object"}}));
    }
    let tools = Arc::new(json!({"tools": tools}));
    crate::serve::app("127.0.0.1:0".parse().expect("address"), move |req| {
        let tools = tools.clone();
        async move {
            let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let msg: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let result = match msg["method"].as_str() {
                _ if msg.get("id").is_none() => None,
                Some("initialize") => Some(json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "catalogue", "version": "1"}})),
                Some("tools/list") => Some((*tools).clone()),
                _ => Some(json!({})),
            };
            let mut r = match result {
                Some(result) => {
                    let mut r = http::Response::new(agw_mcp::body::full(
                        json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}).to_string(),
                    ));
                    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
                    r
                }
                None => {
                    let mut r = http::Response::new(agw_mcp::body::empty());
                    *r.status_mut() = StatusCode::ACCEPTED;
                    r
                }
            };
            r.headers_mut().insert("mcp-session-id", http::HeaderValue::from_static("catalogue"));
            r
        }
    })
    .await
}
