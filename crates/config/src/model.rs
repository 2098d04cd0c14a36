//! The config as the user writes it (agentgateway's standalone YAML). Every field's `///` doc is
//! its JSON Schema description. Runtime types (compiled rules, loaded keys) live elsewhere and
//! are built from these by the gateway's resolve step.

pub mod backend;
pub mod backend_policy;
pub mod common;
pub mod external;
pub mod frontend;
pub mod gateway;
pub mod guardrails;
pub mod listener;
pub mod oidc;
pub mod policy;
pub mod settings;
pub mod telemetry;
pub mod tls;
pub mod token_exchange;
pub mod traffic;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use backend::*;
pub use backend_policy::*;
pub use common::*;
pub use external::*;
pub use frontend::*;
pub use gateway::*;
pub use guardrails::*;
pub use listener::*;
pub use oidc::*;
pub use policy::*;
pub use settings::*;
pub use telemetry::*;
pub use tls::*;
pub use token_exchange::*;
pub use traffic::*;

/// The gateway's configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Start-up settings: admin, stats and readiness addresses, logging, tracing, sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Settings>,
    /// Ports to listen on, each with its listeners and routes.
    #[serde(default)]
    pub binds: Vec<Bind>,

    /// Named gateways: a port each, with listeners that `routes` and `mcp` attach to.
    #[serde(default, skip_serializing_if = "Gateways::is_empty")]
    pub gateways: Gateways,
    /// HTTP routes attached to `gateways` (by default to the gateway named `default`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<AttachedRoute>,
    /// TCP routes. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_routes: Option<Unsupported>,
    /// Connection-level settings for every bind: time-outs, sizes, limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_policies: Option<FrontendPolicies>,
    /// Targeted policies. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Unsupported>,
    /// Workload discovery (testing). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<Unsupported>,
    /// Service discovery (testing). Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Unsupported>,
    /// Named, reusable backends, referenced by `backend: <name>` (or `/<name>`) from route
    /// backends and MCP targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<NamedBackend>,
    /// Route groups. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_groups: Option<Unsupported>,
    /// Simplified LLM mode. Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<Unsupported>,
    /// The MCP shorthand: one MCP endpoint on its own port (default 3000) or on `gateways`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<SimpleMcp>,
    /// UI attachment. Not supported yet (the admin UI is served on `config.adminAddr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<Unsupported>,
}

impl Config {
    /// The agentgateway top-level fields this gateway recognises but does not implement.
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        common::present([
            ("tcpRoutes", &self.tcp_routes),
            ("policies", &self.policies),
            ("workloads", &self.workloads),
            ("services", &self.services),
            ("routeGroups", &self.route_groups),
            ("llm", &self.llm),
            ("ui", &self.ui),
        ])
    }
}
