//! Policies that ask another service: shapes serde cannot express (one of `host`/`backend`,
//! the conditional form's rules).

use super::{Validator, check_host_port};
use crate::error::{FieldError, FieldPath};
use crate::model::{RateLimitKind, RemoteRateLimit, present};

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

    fn remote_rate_limit_entry(&mut self, at: &FieldPath, r: &RemoteRateLimit) {
        self.unsupported(at, present([("service", &r.service), ("policies", &r.policies)]));
        match (&r.host, &r.backend, &r.service) {
            (Some(h), None, None) => {
                if let Err(msg) = check_host_port(h) {
                    self.err(at.key("host"), msg);
                }
            }
            (None, Some(_), None) | (None, None, Some(_)) => {}
            (None, None, None) => {
                self.err(at.clone(), "needs the rate-limit service: `host: <host:port>` or `backend: <name>`")
            }
            _ => self.err(at.clone(), "set one of `host`, `backend`, `service`"),
        }
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
