//! Policies that ask another service: shapes serde cannot express (one of `host`/`backend`,
//! the conditional form's rules).

use super::{Validator, check_host_port};
use crate::error::{FieldError, FieldPath};
use crate::model::{
    ExtAuthz, ExtAuthzProtocol, GUARDRAIL_PSEUDO_HEADERS, McpGuardrails, RateLimitKind, RemoteRateLimit, present,
};

/// Largest `includeRequestBody.maxRequestBytes`.
pub(crate) const MAX_AUTHZ_BODY: u32 = 1 << 20;

/// Most entries of a conditional policy (as in agentgateway).
pub(crate) const MAX_CONDITIONAL: usize = 64;

impl Validator {
    pub(super) fn remote_rate_limit(&mut self, at: &FieldPath, r: &RemoteRateLimit) {
        let Some(list) = &r.conditional else {
            if r.condition.is_some() {
                self.err(at.key("condition"), "`condition` belongs in the entries of `conditional`");
            }
            self.remote_rate_limit_entry(at, r);
            return;
        };
        if r.has_single_fields() || r.condition.is_some() {
            self.err(at.clone(), "with `conditional`, put the settings in its entries");
        }
        self.conditional_entries(&at.key("conditional"), list.iter().map(|e| e.condition.as_deref()));
        for (i, e) in list.iter().enumerate() {
            let at = at.key("conditional").index(i);
            if e.conditional.is_some() {
                self.err(at.key("conditional"), "conditional entries cannot nest");
            }
            self.remote_rate_limit_entry(&at, e);
        }
    }

    /// The conditional form's rules: 1 to 64 entries, the one without a condition last.
    pub(super) fn conditional_entries<'a>(
        &mut self,
        at: &FieldPath,
        conditions: impl Iterator<Item = Option<&'a str>>,
    ) {
        let conditions: Vec<Option<&str>> = conditions.collect();
        if conditions.is_empty() {
            self.err(at.clone(), "needs at least one entry");
        }
        if conditions.len() > MAX_CONDITIONAL {
            self.err(at.clone(), format!("at most {MAX_CONDITIONAL} entries"));
        }
        if let Some(i) = conditions.iter().position(Option::is_none)
            && i + 1 != conditions.len()
        {
            self.err(at.index(i), "an entry without a condition is the fallback and must be last");
        }
    }

    /// One of `host`/`backend`/`service` (the last refused).
    fn service(&mut self, at: &FieldPath, host: &Option<String>, backend: &Option<String>, service: bool, what: &str) {
        match (host, backend, service) {
            (Some(h), None, false) if h.starts_with("unix:") => {
                self.err(at.key("host"), "not supported yet (a Unix socket; use `host:port`)")
            }
            (Some(h), None, false) => {
                if let Err(msg) = check_host_port(h) {
                    self.err(at.key("host"), msg);
                }
            }
            (None, Some(_), false) | (None, None, true) => {}
            (None, None, false) => {
                self.err(at.clone(), format!("needs the {what}: `host: <host:port>` or `backend: <name>`"))
            }
            _ => self.err(at.clone(), "set one of `host`, `backend`, `service`"),
        }
    }

    pub(super) fn ext_authz(&mut self, at: &FieldPath, r: &ExtAuthz) {
        let Some(list) = &r.conditional else {
            if r.condition.is_some() {
                self.err(at.key("condition"), "`condition` belongs in the entries of `conditional`");
            }
            self.ext_authz_entry(at, r);
            return;
        };
        if r.has_single_fields() || r.condition.is_some() {
            self.err(at.clone(), "with `conditional`, put the settings in its entries");
        }
        self.conditional_entries(&at.key("conditional"), list.iter().map(|e| e.condition.as_deref()));
        for (i, e) in list.iter().enumerate() {
            let at = at.key("conditional").index(i);
            if e.conditional.is_some() {
                self.err(at.key("conditional"), "conditional entries cannot nest");
            }
            self.ext_authz_entry(&at, e);
        }
    }

    fn ext_authz_entry(&mut self, at: &FieldPath, r: &ExtAuthz) {
        self.unsupported(at, present([("service", &r.service), ("policies", &r.policies)]));
        self.service(at, &r.host, &r.backend, r.service.is_some(), "authorization service");
        if let Some(b) = &r.include_request_body
            && b.max_request_bytes.is_some_and(|n| n > MAX_AUTHZ_BODY)
        {
            self.err(at.key("includeRequestBody").key("maxRequestBytes"), format!("at most {MAX_AUTHZ_BODY}"));
        }
        if let Some(c) = &r.cache {
            if c.key.is_empty() {
                self.err(at.key("cache").key("key"), "needs at least one expression (an empty key never hits)");
            }
            if c.max_entries == Some(0) {
                self.err(at.key("cache").key("maxEntries"), "must be more than 0");
            }
        }
        if let Some(ExtAuthzProtocol::Http(h)) = &r.protocol {
            let at = at.key("protocol").key("http");
            for name in h.add_request_headers.keys() {
                let pseudo = matches!(name.as_str(), ":method" | ":path" | ":authority");
                if !pseudo && !is_header_name(name) {
                    self.err(
                        at.key("addRequestHeaders").key(name),
                        "not a header name (or `:method`, `:path`, `:authority`)",
                    );
                }
            }
            for (i, name) in h.include_response_headers.iter().enumerate() {
                if !is_header_name(name) {
                    self.err(at.key("includeResponseHeaders").index(i), "not a header name");
                }
            }
        }
    }

    fn remote_rate_limit_entry(&mut self, at: &FieldPath, r: &RemoteRateLimit) {
        self.unsupported(at, present([("service", &r.service), ("policies", &r.policies)]));
        self.service(at, &r.host, &r.backend, r.service.is_some(), "rate-limit service");
        if r.domain.is_empty() {
            self.err(at.key("domain"), "missing: the rate-limit domain the service's configuration uses");
        }
        if r.descriptors.is_empty() {
            self.err(at.key("descriptors"), "needs at least one descriptor");
        }
        for (i, d) in r.descriptors.iter().enumerate() {
            let at = at.key("descriptors").index(i);
            if d.kind == Some(RateLimitKind::Tokens) {
                self.errors.push(FieldError::not_supported(at.key("type")));
            }
            if d.entries.is_empty() {
                self.err(at.key("entries"), "needs at least one entry (rate-limit services refuse empty descriptors)");
            }
        }
    }
}

impl Validator {
    pub(super) fn mcp_guardrails(&mut self, at: &FieldPath, g: &McpGuardrails) {
        for (i, p) in g.processors.iter().enumerate() {
            let at = at.key("processors").index(i);
            self.unsupported(&at, present([("service", &p.service), ("policies", &p.policies)]));
            self.service(&at, &p.host, &p.backend, p.service.is_some(), "guardrail service");
            let Some(h) = &p.request_headers else { continue };
            for (field, names) in [("allowed", &h.allowed), ("disallowed", &h.disallowed)] {
                for (j, name) in names.iter().enumerate() {
                    let pseudo = GUARDRAIL_PSEUDO_HEADERS.contains(&name.as_str());
                    if !pseudo && !is_header_name(name) {
                        let message = "not a header name (or `:method`, `:path`, `:authority`, `:scheme`)";
                        self.err(at.key("requestHeaders").key(field).index(j), message);
                    }
                }
            }
        }
    }
}

/// A header name as HTTP allows it (token characters).
fn is_header_name(name: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty() && name.bytes().all(token)
}
