//! Running the gateway in-process from a YAML string, on loopback ports chosen by the OS.

use std::net::SocketAddr;

use agw_gateway::Running;

/// A gateway running inside the test process.
pub struct Gateway {
    running: Option<Running>,
    /// Address of the first bind.
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub readiness: Option<SocketAddr>,
    pub stats: Option<SocketAddr>,
}

impl Gateway {
    /// Starts a gateway from `yaml`. Unless the YAML sets its own `config:` block, admin,
    /// readiness and metrics listen on free loopback ports so that tests can run in parallel.
    pub async fn start(yaml: &str) -> anyhow::Result<Gateway> {
        let loaded = agw_config::load_str("test.yaml", &with_free_ports(yaml)).map_err(|e| anyhow::anyhow!("{e}"))?;
        Gateway::run(loaded, agw_gateway::Options::default()).await
    }

    /// The error a config that must be refused is refused with (`file:line:col: path: …`);
    /// panics if it starts.
    pub async fn refused(yaml: &str) -> String {
        match Gateway::start(yaml).await {
            Ok(_) => panic!("the config was accepted:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    /// Starts a gateway from a config file, which it watches and reloads. Write the file with
    /// [`with_free_ports`] applied.
    pub async fn start_file(path: &std::path::Path) -> anyhow::Result<Gateway> {
        let loaded = agw_config::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let options = agw_gateway::Options { config_path: Some(path.to_path_buf()), ..Default::default() };
        Gateway::run(loaded, options).await
    }

    async fn run(loaded: agw_config::Loaded, options: agw_gateway::Options) -> anyhow::Result<Gateway> {
        let running = agw_gateway::start_with(&loaded, options).await?;
        Ok(Gateway {
            addr: *running.bind_addrs.first().ok_or_else(|| anyhow::anyhow!("config has no binds"))?,
            admin: running.admin_addr,
            readiness: running.readiness_addr,
            stats: running.stats_addr,
            running: Some(running),
        })
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let addr = self.stats.ok_or_else(|| anyhow::anyhow!("metrics are off"))?;
        let (status, text) = crate::client::http("GET", &format!("http://{addr}/metrics"), &[], "").await?;
        anyhow::ensure!(status == 200, "GET /metrics: {status}");
        Ok(text)
    }

    /// `http://127.0.0.1:<port><path>` on the first bind.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.addr.port(), path)
    }

    /// Stops the gateway, letting in-flight requests finish.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            // Not awaited: the runtime of a finished test tears the tasks down.
            tokio::spawn(r.shutdown());
        }
    }
}

/// `yaml` with admin, readiness and metrics on free loopback ports, unless it has its own
/// `config:` block.
pub fn with_free_ports(yaml: &str) -> String {
    if yaml.lines().any(|l| l.starts_with("config:")) {
        yaml.to_string()
    } else {
        format!("config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 127.0.0.1:0\n  statsAddr: 127.0.0.1:0\n{yaml}")
    }
}

/// The value of one series in Prometheus text (`name{labels}` exactly as printed), or 0.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A bind on a free port with one MCP route to `upstream_url`, plus `route_extra` (YAML
/// indented to sit inside the route, e.g. a `policies:` block).
pub fn mcp_route(upstream_url: &str, route_extra: &str) -> String {
    format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: mcp\n{route_extra}      backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: {upstream_url}\n"
    )
}
