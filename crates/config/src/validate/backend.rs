//! Backend and MCP target `policies`.

use super::Validator;
use crate::error::FieldPath;
use crate::model::BackendPolicies;

impl Validator {
    pub(super) fn backend_policies(&mut self, at: &FieldPath, p: &BackendPolicies, target: bool) {
        self.unsupported(at, p.unsupported());
        if target {
            for name in p.backend_only() {
                self.err(at.key(name), "not on an MCP target (agentgateway takes it on backends only)");
            }
        }
        self.header_modifiers(at, &p.request_header_modifier, &p.response_header_modifier);
        for (name, set) in [
            ("requestHeaderModifier", p.request_header_modifier.is_some()),
            ("responseHeaderModifier", p.response_header_modifier.is_some() && !target),
            ("backendAuth", p.backend_auth.is_some()),
        ] {
            if set {
                self.err(at.key(name), "not supported yet on backends and MCP targets (set it on the route)");
            }
        }
        if let Some(t) = &p.backend_tls {
            self.backend_tls(&at.key("backendTLS"), t);
        }
    }
}
