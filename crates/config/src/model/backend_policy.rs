//! `policies` on a route backend, a named backend or an MCP target (agentgateway's backend
//! policies). They take precedence over the route's policies of the same kind, and an MCP
//! target's over its backend's: route < backend < target, one kind at a time.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Unsupported, present};
use super::policy::{BackendAuth, HeaderModifier};
use super::tls::BackendTls;

/// Policies of one backend or MCP target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendPolicies {
    /// Headers to add, set or remove on requests to this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// Headers to add, set or remove on this backend's responses (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// TLS to this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<BackendTls>,
    /// Credentials for this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_auth: Option<BackendAuth>,

    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformations: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Unsupported>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_tunnel: Option<Unsupported>,
    /// Not supported yet (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<Unsupported>,
    /// Not supported yet (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Unsupported>,
    /// Not supported yet (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_authz: Option<Unsupported>,
    /// Not supported yet here: use the route's `authorization` (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Unsupported>,
    /// Not supported yet here: use the route's `mcpAuthorization` (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_authorization: Option<Unsupported>,
    /// External MCP processors (see the route's `mcpGuardrails`); replaces the route's (not on
    /// MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_guardrails: Option<super::guardrails::McpGuardrails>,
    /// Not supported yet (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a: Option<Unsupported>,
    /// Not supported yet (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_routing: Option<Unsupported>,
    /// Not supported yet (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<Unsupported>,
    /// Not supported yet (not on MCP targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<Unsupported>,
}

impl BackendPolicies {
    /// The agentgateway fields recognised here but not implemented.
    pub fn unsupported(&self) -> impl Iterator<Item = (&'static str, &Unsupported)> {
        present([
            ("transformations", &self.transformations),
            ("http", &self.http),
            ("tcp", &self.tcp),
            ("backendTunnel", &self.backend_tunnel),
            ("requestRedirect", &self.request_redirect),
            ("health", &self.health),
            ("extAuthz", &self.ext_authz),
            ("authorization", &self.authorization),
            ("mcpAuthorization", &self.mcp_authorization),
            ("a2a", &self.a2a),
            ("inferenceRouting", &self.inference_routing),
            ("sessionAffinity", &self.session_affinity),
            ("ai", &self.ai),
        ])
    }

    /// Fields agentgateway accepts on backends but not on MCP targets.
    pub fn backend_only(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.response_header_modifier.is_some() {
            out.push("responseHeaderModifier");
        }
        if self.mcp_guardrails.is_some() {
            out.push("mcpGuardrails");
        }
        let rest = [
            ("requestRedirect", &self.request_redirect),
            ("health", &self.health),
            ("extAuthz", &self.ext_authz),
            ("authorization", &self.authorization),
            ("mcpAuthorization", &self.mcp_authorization),
            ("a2a", &self.a2a),
            ("inferenceRouting", &self.inference_routing),
            ("sessionAffinity", &self.session_affinity),
            ("ai", &self.ai),
        ];
        out.extend(rest.into_iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k));
        out
    }
}
