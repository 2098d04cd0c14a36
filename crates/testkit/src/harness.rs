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
}

impl Gateway {
    /// Starts a gateway from `yaml`. Unless the YAML sets its own `config:` block, admin and
    /// readiness listen on free loopback ports so that tests can run in parallel.
    pub async fn start(yaml: &str) -> anyhow::Result<Gateway> {
        let text = if yaml.lines().any(|l| l.starts_with("config:")) {
            yaml.to_string()
        } else {
            format!("config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 127.0.0.1:0\n{yaml}")
        };
        let loaded = agw_config::load_str("test.yaml", &text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let running = agw_gateway::start(&loaded).await?;
        Ok(Gateway {
            addr: *running.bind_addrs.first().ok_or_else(|| anyhow::anyhow!("config has no binds"))?,
            admin: running.admin_addr,
            readiness: running.readiness_addr,
            running: Some(running),
        })
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

/// A bind on a free port with one MCP route to `upstream_url`, plus `route_extra` (YAML
/// indented to sit inside the route, e.g. a `policies:` block).
pub fn mcp_route(upstream_url: &str, route_extra: &str) -> String {
    format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: mcp\n{route_extra}      backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: {upstream_url}\n"
    )
}
