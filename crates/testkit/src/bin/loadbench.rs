//! `loadbench`: the gateway's cost, measured side by side with a direct connection and with
//! nginx in one run (see `docs/benchmarks.md`).
//!
//! ```sh
//! npm ci --prefix tests/node      # server-everything
//! apt-get install nginx           # optional: the nginx rows are skipped without it
//! cargo build --release -p agentgateway -p agw-testkit --bins
//! target/release/loadbench
//! ```

use std::time::{Duration, Instant};

use agw_testkit::load::{self, Front, Row, Session};
use agw_testkit::node::{self, Process, free_port, wait_for_port};
use anyhow::Context;

struct Args {
    smoke: bool,
    duration: Duration,
    concurrency: usize,
    rate: u64,
    rate_duration: Duration,
    upstreams: Vec<String>,
    fronts: Vec<String>,
    everything_rate: u64,
    extras: bool,
    sessions: usize,
    one_agent_calls: usize,
    one_agent_only: bool,
    out: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadbench [--smoke] [--duration SECS] [--concurrency N] [--rate PER_SEC] [--rate-duration SECS]
                 [--upstreams rust,everything] [--sessions N] [--out FILE]
  --smoke          a few seconds in all (CI): checks that every path works, figures meaningless
  --duration       closed-loop measurement per row (default 10)
  --concurrency    closed-loop callers (default 16)
  --rate           open-loop calls per second for the latency columns (default 1000)
  --rate-duration  open-loop duration per row (default 10)
  --upstreams      which upstreams: rust (the example server, JSON answers), everything
                   (npm server-everything, SSE answers)
  --everything-rate  open-loop rate against server-everything (default 200: it serves ~1,100
                   calls/s at most, so 1,000/s would measure its queue, not the proxies)
  --table-only     skip start-up, idle-session and tools/list figures
  --fronts         which paths: direct,nginx,gateway,gateway+policies,gateway+ratelimit,
                   gateway+remote-ratelimit, nginx+tls, gateway+tls (default all; gateway+ratelimit:
                   a route-wide localRateLimit and one keyed per tool, both too high to refuse
                   anything; gateway+remote-ratelimit: the same two as remoteRateLimit descriptors,
                   asked of rls-redis with its counters in a redis-server of its own; +tls: the
                   proxy terminates TLS 1.3 with the same certificate, keep-alive HTTP/1.1 clients)
  --sessions       idle sessions for the memory figure (default 10000)
  --one-agent N    sequential calls per cell of the one-agent table (default 200; 0 skips it)
  --one-agent-only only the one-agent table
  --out FILE       also write the report (Markdown) to FILE"
    );
    std::process::exit(2);
}

fn parse() -> Args {
    let mut a = Args {
        smoke: false,
        duration: Duration::from_secs(10),
        concurrency: 16,
        rate: 1000,
        rate_duration: Duration::from_secs(10),
        upstreams: vec!["rust".into(), "everything".into()],
        fronts: [
            "direct",
            "nginx",
            "gateway",
            "gateway+policies",
            "gateway+ratelimit",
            "gateway+remote-ratelimit",
            "nginx+tls",
            "gateway+tls",
        ]
        .map(String::from)
        .to_vec(),
        everything_rate: 200,
        extras: true,
        sessions: 10_000,
        one_agent_calls: 200,
        one_agent_only: false,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| usage());
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => {
                a.smoke = true;
                a.duration = Duration::from_millis(500);
                a.concurrency = 4;
                a.rate = 100;
                a.everything_rate = 50;
                a.rate_duration = Duration::from_millis(500);
                a.sessions = 200;
                a.one_agent_calls = 10;
            }
            "--duration" => a.duration = Duration::from_secs(num(it.next())),
            "--concurrency" => a.concurrency = num(it.next()) as usize,
            "--rate" => a.rate = num(it.next()),
            "--rate-duration" => a.rate_duration = Duration::from_secs(num(it.next())),
            "--upstreams" => {
                a.upstreams = it.next().unwrap_or_else(|| usage()).split(',').map(str::to_string).collect()
            }
            "--everything-rate" => a.everything_rate = num(it.next()),
            "--table-only" => a.extras = false,
            "--fronts" => a.fronts = it.next().unwrap_or_else(|| usage()).split(',').map(str::to_string).collect(),
            "--sessions" => a.sessions = num(it.next()) as usize,
            "--one-agent" => a.one_agent_calls = num(it.next()) as usize,
            "--one-agent-only" => a.one_agent_only = true,
            "--out" => a.out = Some(it.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    a
}

/// The example server on a free port: JSON answers without upstream sessions (`json`), or as
/// README command 1 runs it (SSE answers, sessions).
async fn example_server(json: bool) -> anyhow::Result<(Process, String)> {
    let bin = load::sibling("mcp-example-server")?;
    let port = free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--listen", &listen];
    if json {
        args.push("--json");
    }
    let p = Process::spawn("mcp-example-server", &bin.to_string_lossy(), &args, &[]);
    wait_for_port(port, Duration::from_secs(10)).await;
    Ok((p, format!("http://127.0.0.1:{port}/mcp")))
}

/// `host:port` and path of a URL.
fn split_url(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    (host.replace("localhost", "127.0.0.1"), format!("/{path}"))
}

/// The one-agent table: p50 / p99 of sequential calls on one keep-alive connection, for each
/// upstream kind and each path.
async fn one_agent_table(args: &Args, dir: &std::path::Path, token: &str) -> anyhow::Result<String> {
    let paths = ["direct", "nginx", "gateway", "gateway+policies"];
    let mut out = format!(
        "One agent: {} sequential `tools/call echo` on one keep-alive connection, p50 / p99 ms\n\n| upstream | {} |\n|---|{}\n",
        args.one_agent_calls,
        paths.join(" | "),
        "---|".repeat(paths.len())
    );
    for up in ["example server (SSE)", "server-everything", "Nagle-bound"] {
        // What keeps the upstream running until its row is done.
        let (_process, _nagle, url) = match up {
            "example server (SSE)" => {
                let (p, url) = example_server(false).await?;
                (Some(p), None, url)
            }
            "server-everything" => {
                let (p, url) = node::server_everything_http().await;
                (Some(p), None, url)
            }
            _ => {
                let n = agw_testkit::nagle::serve("127.0.0.1:0".parse()?, Default::default()).await?;
                let url = n.url("/mcp");
                (None, Some(n), url)
            }
        };
        let (hostport, path) = split_url(&url);
        let mut cells = Vec::new();
        for name in paths {
            let front = match name {
                "direct" => Some(Front { name: "direct".into(), url: url.clone(), process: None, token: None }),
                "nginx" => load::nginx(&hostport, &path, dir).await?,
                "gateway" => Some(load::gateway("gateway", &url, "", dir).await?),
                _ => Some(load::gateway("gateway+policies", &url, &load::tutorial_policies(), dir).await?),
            };
            let Some(mut front) = front else {
                cells.push("— (no nginx)".to_string());
                continue;
            };
            front.token = Some(token.to_string());
            eprintln!("one agent: {up} via {name} …");
            let lat = load::one_agent(&front, args.one_agent_calls)
                .await
                .with_context(|| format!("one agent: {up} via {name}"))?;
            cells.push(format!("{:.2} / {:.2}", lat.p50 / 1000.0, lat.p99 / 1000.0));
        }
        out.push_str(&format!("| {up} | {} |\n", cells.join(" | ")));
    }
    out.push('\n');
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse();
    let dir = std::env::temp_dir().join(format!("loadbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let token = load::tutorial_token();
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    let one_agent = if args.one_agent_calls > 0 { one_agent_table(&args, &dir, &token).await? } else { String::new() };
    if args.one_agent_only {
        println!("{one_agent}");
        if let Some(out) = &args.out {
            std::fs::write(out, &one_agent)?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    for up in &args.upstreams {
        let (upstream, url) = match up.as_str() {
            "rust" => example_server(true).await?,
            "everything" => node::server_everything_http().await,
            other => anyhow::bail!("unknown upstream `{other}`"),
        };
        let (hostport, path) = split_url(&url);
        let wanted = |name: &str| args.fronts.iter().any(|f| f == name);
        let mut fronts = Vec::new();
        if wanted("direct") {
            fronts.push(Front { name: "direct".into(), url: url.clone(), process: None, token: None });
        }
        if wanted("nginx") {
            match load::nginx(&hostport, &path, &dir).await? {
                Some(n) => fronts.push(n),
                None => notes.push("nginx is not installed: its rows are missing (`apt-get install nginx`).".into()),
            }
        }
        if wanted("gateway") {
            fronts.push(load::gateway("gateway", &url, "", &dir).await?);
        }
        if wanted("gateway+policies") {
            fronts.push(load::gateway("gateway+policies", &url, &load::tutorial_policies(), &dir).await?);
        }
        if wanted("gateway+ratelimit") {
            fronts.push(load::gateway("gateway+ratelimit", &url, load::RATE_LIMITS, &dir).await?);
        }
        // Kept running while the rows are measured.
        let mut remote_service = None;
        if wanted("gateway+remote-ratelimit") {
            match load::remote_rate_limit_service().await {
                Ok((service, host)) => {
                    let policies = load::remote_rate_limits(&host);
                    fronts.push(load::gateway("gateway+remote-ratelimit", &url, &policies, &dir).await?);
                    remote_service = Some(service);
                }
                Err(e) => notes.push(format!("the remote rate-limit row is missing: {e}")),
            }
        }
        if wanted("nginx+tls") {
            match load::nginx_with(&hostport, &path, &dir, true).await? {
                Some(n) => fronts.push(n),
                None => notes.push("nginx is not installed: its rows are missing (`apt-get install nginx`).".into()),
            }
        }
        if wanted("gateway+tls") {
            fronts.push(load::gateway_with("gateway+tls", &url, "", &dir, true).await?);
        }
        for mut front in fronts {
            // The same request bytes everywhere: the token only matters where it is checked.
            front.token = Some(token.clone());
            eprintln!("{up} via {} …", front.name);
            let rate = if up == "everything" { args.everything_rate } else { args.rate };
            let row = load::measure(up, &front, args.concurrency, args.duration, rate, args.rate_duration)
                .await
                .with_context(|| format!("{up} via {}", front.name))?;
            rows.push(row);
        }
        drop(remote_service);
        drop(upstream);
    }

    let mut report = load::table(&rows);
    report.push('\n');
    report.push_str(&one_agent);
    if !args.extras {
        println!("{report}");
        return Ok(());
    }

    // Start-up to listening, tutorial config.
    let (up, up_url) = example_server(true).await?;
    let bin = load::sibling("agentgateway")?;
    let mut startups = Vec::new();
    for _ in 0..if args.smoke { 2 } else { 9 } {
        let port = free_port().await;
        let file = dir.join("startup.yaml");
        std::fs::write(&file, load::gateway_config(port, &up_url, &load::tutorial_policies()))?;
        let t = Instant::now();
        let p = Process::spawn("agentgateway", &bin.to_string_lossy(), &["-f", &file.to_string_lossy()], &[]);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "the gateway did not start");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        startups.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(p);
    }
    startups.sort_by(f64::total_cmp);
    report.push_str(&format!(
        "- start-up to listening (tutorial config, spawn → first accepted connection), median of {}: {:.1} ms\n",
        startups.len(),
        startups[startups.len() / 2]
    ));

    // Memory of idle sessions.
    let gw = load::gateway("gateway", &up_url, "", &dir).await?;
    let pid = gw.process.as_ref().and_then(Process::pid).context("gateway pid")?;
    let c = load::client();
    Session::open(&c, &gw.url, None).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = load::rss_kib(&[pid]);
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (c, url, opened, n) = (c.clone(), gw.url.clone(), opened.clone(), args.sessions);
            tokio::spawn(async move {
                while opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    Session::open(&c, &url, None).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = load::rss_kib(&[pid]);
    report.push_str(&format!(
        "- {} idle sessions (Streamable HTTP target): gateway RSS {:.1} → {:.1} MiB, {:+.1} MiB\n",
        args.sessions,
        base as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - base as f64) / 1024.0
    ));
    drop(gw);
    drop(up);

    // A 1,000-tool `tools/list` filtered by the tutorial's rules: added time over direct.
    let catalogue = load::catalogue(1000).await?;
    let direct = Front { name: "direct".into(), url: catalogue.url("/mcp"), process: None, token: Some(token.clone()) };
    let mut gw = load::gateway("gateway+policies", &catalogue.url("/mcp"), &load::tutorial_policies(), &dir).await?;
    gw.token = Some(token.clone());
    let n = if args.smoke { 20 } else { 300 };
    let mut medians = Vec::new();
    for front in [&direct, &gw] {
        let s = Session::open(&c, &front.url, front.token.as_deref()).await?;
        let mut us = Vec::new();
        for i in 0..n + n / 5 {
            let t = Instant::now();
            let (status, _, body) = s.post(format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/list"}}"#)).await?;
            anyhow::ensure!(status.is_success() && !body.is_empty(), "tools/list via {}: HTTP {status}", front.name);
            if i >= n / 5 {
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        us.sort_by(f64::total_cmp);
        medians.push(us[us.len() / 2]);
    }
    report.push_str(&format!(
        "- `tools/list` of a 1,000-tool upstream (median of {n}): direct {:.0} µs, gateway with the tutorial's policies {:.0} µs (filtered to 3 tools): {:+.0} µs\n",
        medians[0],
        medians[1],
        medians[1] - medians[0]
    ));
    for n in notes {
        report.push_str(&format!("- {n}\n"));
    }
    if args.smoke {
        report.push_str("- smoke mode: every path works; the figures mean nothing\n");
    }
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    anyhow::ensure!(errors == 0, "{errors} calls failed");
    Ok(())
}
