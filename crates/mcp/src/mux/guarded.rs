//! `mcpGuardrails` in the multiplexer (see [`crate::guardrails`]): a call routed to one target
//! is checked at that target, with the upstream's names; any other request once, for all the
//! session's targets, its merged answer as the client will see it.

use serde_json::Value;

use super::{Mux, Out, Sess, error_message, failure_message};
use crate::authz::{self, ItemKind, Verdict};
use crate::guardrails::{self, Call, Guardrails, HeaderEdits, Outcome};
use crate::upstream::Upstream;

impl<'a> Mux<'a> {
    /// This request's relay with processors' changes to the upstream headers, when the
    /// targets it reaches (`idx`: one; else all) are Streamable HTTP: a stateful connection
    /// (stdio, legacy SSE) outlives the call, and carries no per-call headers.
    fn with_edits(&self, edits: &HeaderEdits, idx: Option<usize>) -> Option<Mux<'a>> {
        let http = |t: &crate::relay::Target| matches!(t.upstream, Upstream::Http(_));
        let reached = match idx {
            Some(i) => http(&self.backend.targets[i]),
            None => self.backend.targets.iter().all(http),
        };
        if edits.is_empty() || !reached {
            return None;
        }
        let mut headers = self.headers.clone();
        edits.apply(&mut headers);
        Some(Mux::new(self.relay, self.backend, self.opts, headers))
    }

    /// A request not routed to one target: the request phase without `params` (a rewrite has
    /// nothing to replace and is ignored, as agentgateway), the answer, the response phase.
    pub(super) async fn guarded_dispatch(&self, g: &dyn Guardrails, sess: &Sess, msg: &Value, out: &Out) -> Value {
        let method = msg["method"].as_str().unwrap_or_default();
        let names: Vec<&str> =
            self.session_targets(sess).into_iter().map(|i| self.backend.targets[i].name.as_str()).collect();
        let call = Call { method, targets: &names };
        let mut edited = None;
        if guardrails::request_phase_runs(g, method) {
            let decided = g.check_request(call, None).await;
            match decided.outcome {
                Outcome::Pass => {}
                Outcome::Mutated(_) => tracing::debug!(method, "a guardrail rewrote a call without params; ignored"),
                Outcome::Reject(e) => return error_message(&msg["id"], e),
            }
            edited = self.with_edits(&decided.headers, None);
        }
        let mut response = edited.as_ref().unwrap_or(self).dispatch(sess, msg, out).await;
        guardrails::check_answer(g, call, &mut response).await;
        response
    }

    /// A call to target `idx` the rules allowed (`forwarded`, with the upstream's names): the
    /// request phase (a rewrite is judged by the rules again), the call, the response phase.
    pub(super) async fn guarded_request(
        &self,
        g: &dyn Guardrails,
        sess: &Sess,
        idx: usize,
        forwarded: &Value,
        (kind, exposed): (ItemKind, &str),
        out: &Out,
    ) -> Value {
        let id = &forwarded["id"];
        let method = forwarded["method"].as_str().unwrap_or_default();
        let names = [self.backend.targets[idx].name.as_str()];
        let call = Call { method, targets: &names };
        let mut rewritten = None;
        let mut edited = None;
        if guardrails::request_phase_runs(g, method) {
            let decided = g.check_request(call, forwarded.get("params")).await;
            match decided.outcome {
                Outcome::Pass => {}
                Outcome::Mutated(params) => {
                    let mut m = forwarded.clone();
                    m["params"] = params;
                    match self.police(idx, &m) {
                        Verdict::Allow => {}
                        Verdict::Deny(refused) => return refused,
                        Verdict::Hidden(_) => return authz::unknown(kind, exposed, id),
                    }
                    rewritten = Some(m);
                }
                Outcome::Reject(e) => return error_message(id, e),
            }
            edited = self.with_edits(&decided.headers, Some(idx));
        }
        let sent = rewritten.as_ref().unwrap_or(forwarded);
        let mut response = match edited.as_ref().unwrap_or(self).request(sess, idx, sent, out).await {
            Ok(a) => a.response,
            Err(f) => return failure_message(id, f),
        };
        guardrails::check_answer(g, call, &mut response).await;
        response
    }
}
