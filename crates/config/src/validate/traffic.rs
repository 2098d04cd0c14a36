//! Shapes of the traffic policies that serde cannot express, and routes that answer without a
//! backend.

use super::Validator;
use crate::error::FieldPath;
use crate::model::{AuthorityRewrite, DirectResponse, Retry, Route, RoutePolicies, present};

/// Most entries of a conditional `directResponse`.
const MAX_CONDITIONAL: usize = 64;
/// Largest `buffer.*.maxBytes`.
const MAX_BUFFER: u64 = 64 << 20;
/// Most retries of one request.
pub(crate) const MAX_RETRIES: u8 = 10;

impl Validator {
    pub(super) fn traffic(&mut self, at: &FieldPath, p: &RoutePolicies) {
        if let Some(d) = &p.direct_response {
            self.direct_response(&at.key("directResponse"), d);
        }
        if let Some(r) = &p.request_redirect {
            let at = at.key("requestRedirect");
            if let Some(s) = &r.scheme
                && s != "http"
                && s != "https"
            {
                self.err(at.key("scheme"), format!("`{s}`: expected `http` or `https`"));
            }
            if let Some(s) = r.status
                && !(300..400).contains(&s)
            {
                self.err(at.key("status"), format!("{s} is not a redirect status (3xx)"));
            }
            if matches!(r.authority, Some(AuthorityRewrite::Auto)) {
                self.err(at.key("authority"), "`auto` applies to `urlRewrite` only");
            }
        }
        if let Some(m) = &p.request_mirror
            && !(0.0..=1.0).contains(&m.percentage)
        {
            self.err(at.key("requestMirror").key("percentage"), "must be between 0.0 and 1.0");
        }
        if let Some(r) = &p.retry {
            self.retry(&at.key("retry"), r);
        }
        if let Some(b) = &p.buffer {
            for (side, body) in [("request", &b.request), ("response", &b.response)] {
                if let Some(n) = body.as_ref().and_then(|b| b.max_bytes)
                    && !(1..=MAX_BUFFER).contains(&n)
                {
                    self.err(at.key("buffer").key(side).key("maxBytes"), "must be between 1 and 64 MiB");
                }
            }
        }
        if let Some(t) = &p.transformations {
            let at = at.key("transformations");
            self.unsupported(&at, present([("conditional", &t.conditional)]));
            for (side, tr) in [("request", &t.request), ("response", &t.response)] {
                if let Some(tr) = tr {
                    self.unsupported(&at.key(side), present([("metadata", &tr.metadata)]));
                }
            }
        }
    }

    fn direct_response(&mut self, at: &FieldPath, d: &DirectResponse) {
        let status_ok = |s: u16| (100..600).contains(&s);
        match &d.conditional {
            Some(entries) => {
                if d.status.is_some() || d.body.is_some() || d.body_expression.is_some() || !d.headers.is_empty() {
                    self.err(at.clone(), "either `conditional` or `status` (with `body`…), not both");
                }
                if entries.is_empty() {
                    self.err(at.key("conditional"), "needs at least one entry");
                }
                if entries.len() > MAX_CONDITIONAL {
                    self.err(at.key("conditional"), format!("at most {MAX_CONDITIONAL} entries"));
                }
                for (i, e) in entries.iter().enumerate() {
                    let at = at.key("conditional").index(i);
                    if e.condition.is_none() && i + 1 != entries.len() {
                        self.err(at.clone(), "an entry without a condition is the fallback and must be last");
                    }
                    if !status_ok(e.status) {
                        self.err(at.key("status"), format!("{} is not an HTTP status", e.status));
                    }
                    if e.body.is_some() && e.body_expression.is_some() {
                        self.err(at.key("bodyExpression"), "either `body` or `bodyExpression`, not both");
                    }
                }
            }
            None => match d.status {
                None => self.err(at.clone(), "needs `status` (or `conditional`)"),
                Some(s) if !status_ok(s) => self.err(at.key("status"), format!("{s} is not an HTTP status")),
                Some(_) => {
                    if d.body.is_some() && d.body_expression.is_some() {
                        self.err(at.key("bodyExpression"), "either `body` or `bodyExpression`, not both");
                    }
                }
            },
        }
    }

    fn retry(&mut self, at: &FieldPath, r: &Retry) {
        match r.attempts {
            Some(0) => self.err(at.key("attempts"), "must be at least 1"),
            Some(n) if n > MAX_RETRIES => self.err(at.key("attempts"), format!("at most {MAX_RETRIES}")),
            _ => {}
        }
        for (i, c) in r.codes.iter().enumerate() {
            if !(100..600).contains(c) {
                self.err(at.key("codes").index(i), format!("{c} is not an HTTP status"));
            }
        }
    }

    /// A route without backends must answer every request itself; several backends are a
    /// weighted split between `host:` backends.
    pub(super) fn route_backends(&mut self, at: &FieldPath, r: &Route) {
        let answers_all = r.policies.as_ref().is_some_and(|p| {
            p.request_redirect.is_some()
                || p.direct_response.as_ref().is_some_and(|d| {
                    d.conditional.as_ref().is_none_or(|c| c.last().is_some_and(|e| e.condition.is_none()))
                })
        });
        match r.backends.len() {
            0 if !answers_all => self.err(
                at.key("backends"),
                "a route needs a backend (or a `directResponse` or `requestRedirect` that answers every request)",
            ),
            0 | 1 => {}
            _ => {
                for (i, b) in r.backends.iter().enumerate() {
                    let at = at.key("backends").index(i);
                    // A `backend:` reference is checked once it is written in place (resolve).
                    if b.host.is_none() && b.backend.is_none() {
                        self.err(
                            at.clone(),
                            "several backends on one route must all be `host:` backends (a weighted split)",
                        );
                    }
                    if b.weight == Some(0) && r.backends.iter().all(|b| b.weight == Some(0)) && i == 0 {
                        self.err(at.key("weight"), "at least one backend needs a weight above 0");
                    }
                    if let Some(p) = &b.policies
                        && (p.request_header_modifier.is_some()
                            || p.response_header_modifier.is_some()
                            || p.backend_auth.is_some())
                    {
                        self.err(
                            at.key("policies"),
                            "not supported yet with several backends on a route (only `backendTLS`); put them on the route",
                        );
                    }
                }
            }
        }
    }
}
