//! Backend and MCP target `policies`.

use super::Validator;
use crate::error::FieldPath;
use crate::model::{BackendAuth, BackendPolicies};

impl Validator {
    pub(super) fn backend_policies(&mut self, at: &FieldPath, p: &BackendPolicies, target: bool) {
        self.unsupported(at, p.unsupported());
        if target {
            for name in p.backend_only() {
                self.err(at.key(name), "not on an MCP target (agentgateway takes it on backends only)");
            }
        }
        self.header_modifiers(at, &p.request_header_modifier, &p.response_header_modifier);
        if let Some(b) = &p.backend_auth {
            let at = at.key("backendAuth");
            self.backend_auth(&at, b);
            if b.passthrough.is_some() {
                self.err(at.key("passthrough"), "not supported yet on backends and MCP targets (set it on the route)");
            }
            if target && b.jwt_sign.is_some() {
                self.err(at.key("jwtSign"), "not supported yet on MCP targets (set it on the route or the backend)");
            }
        }
        if let Some(t) = &p.backend_tls {
            self.backend_tls(&at.key("backendTLS"), t);
        }
    }
}

impl Validator {
    /// One kind (`passthrough`, `key`, …) at most, `credentials` with any; a `{file}` is read
    /// when the gateway is built.
    pub(super) fn backend_auth(&mut self, at: &FieldPath, b: &BackendAuth) {
        self.unsupported(at, b.unsupported());
        let kinds = usize::from(b.passthrough.is_some())
            + usize::from(b.key.is_some())
            + usize::from(b.jwt_sign.is_some())
            + b.unsupported().count();
        let credentials = b.credentials.as_ref();
        if kinds > 1 {
            self.err(
                at.clone(),
                "one kind of backend auth at a time (`passthrough`, `key`, …; `credentials` may go with any)",
            );
        } else if kinds == 0 && credentials.is_none_or(|c| c.is_empty()) {
            self.err(at.clone(), "needs a kind (`passthrough`, `key`) or `credentials`");
        }
    }
}
