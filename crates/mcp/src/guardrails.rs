//! The relay's plug point for `mcpGuardrails`: external processors asked about an MCP request
//! before it goes upstream (they may pass it, rewrite its `params` or refuse it) and about its
//! answer before the client gets it (pass, rewrite the `result`, or refuse). The gateway
//! implements [`Guardrails`] (gRPC to the processors, failure modes); the relay decides where
//! the checks run:
//!
//! - a request routed to one target (`tools/call`, `prompts/get`, `resources/*`,
//!   `completion/complete`) is checked per target, with the names the upstream knows (not
//!   prefixed), after `mcpAuthorization` allowed it; a rewritten request is checked by the
//!   rules again;
//! - any other request (the lists, `logging/setLevel`, `ping`, …) is checked once for the
//!   whole call: the request without its `params`, naming every target of the session, and the
//!   merged answer as the client would see it;
//! - `initialize` is not checked; a notification naming a request method whose request phase
//!   is on is dropped (it has no answer to carry a refusal).
//!
//! Only the multiplexer runs the checks: a single-target backend's body holding a message a
//! processor wants takes the multiplexer's path (see `relay/passthrough.rs`).

use std::future::Future;
use std::pin::Pin;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::jsonrpc::ErrorObject;

pub use agw_config::model::REQUEST_PHASE_NEVER;

/// What a processor decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Outcome {
    /// Go on as is.
    #[default]
    Pass,
    /// Go on with this instead: the request's `params`, or the answer's `result`. Already
    /// checked by [`valid_params`] / [`valid_result`].
    Mutated(Value),
    /// Answer the call with this error.
    Reject(ErrorObject),
}

/// A request phase's decision, and the changes to the headers of the upstream request that
/// carries the call (made on a pass or a rewrite).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decided {
    pub outcome: Outcome,
    pub headers: HeaderEdits,
}

/// Header changes asked by processors, in order: a name set several times gets every value
/// (the first replaces what was there), then removals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderEdits {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Adds one processor's changes; names a processor may not touch are left out.
    pub fn extend(&mut self, set: impl IntoIterator<Item = (HeaderName, HeaderValue)>, remove: Vec<HeaderName>) {
        self.set.extend(set.into_iter().filter(|(n, _)| editable(n)));
        self.remove.extend(remove.into_iter().filter(editable));
    }

    /// Applies the changes to the headers forwarded upstream (a target's own credentials and
    /// header modifier, the session and the content headers are set after them).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let mut seen: Vec<&HeaderName> = Vec::new();
        for (n, v) in &self.set {
            if seen.contains(&n) {
                headers.append(n.clone(), v.clone());
            } else {
                headers.insert(n.clone(), v.clone());
                seen.push(n);
            }
        }
        for n in &self.remove {
            headers.remove(n);
        }
    }
}

/// Headers a processor may not change: about the connection or the message's framing, or the
/// upstream session's.
fn editable(n: &HeaderName) -> bool {
    !matches!(
        n.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
            | "content-type"
            | "accept"
            | "mcp-session-id"
    )
}

/// One MCP call as the processors see it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The JSON-RPC method.
    pub method: &'a str,
    /// The targets it goes to, by name: one for a routed call, the session's for the rest.
    pub targets: &'a [&'a str],
}

/// A boxed future, as an object-safe trait needs.
pub type Check<'a, T = Outcome> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// External processors bound to one client request (its headers, its CEL variables).
pub trait Guardrails: Send + Sync + std::fmt::Debug {
    /// Whether some processor checks `method`'s requests.
    fn runs_request(&self, method: &str) -> bool;
    /// Whether some processor checks `method`'s answers.
    fn runs_response(&self, method: &str) -> bool;
    /// The request phase; `params` is `None` for a call checked once for all its targets.
    fn check_request<'a>(&'a self, call: Call<'a>, params: Option<&'a Value>) -> Check<'a, Decided>;
    /// The response phase, on the answer's `result`.
    fn check_response<'a>(&'a self, call: Call<'a>, result: &'a Value) -> Check<'a>;
}

/// Whether `method`'s request phase runs at all (not for the methods agentgateway skips).
pub fn request_phase_runs(g: &dyn Guardrails, method: &str) -> bool {
    !REQUEST_PHASE_NEVER.contains(&method) && g.runs_request(method)
}

/// Whether a processor wants to see a client message of `method` (`notification`: sent
/// without an id): the relay then handles the body in full.
pub fn wants(g: &dyn Guardrails, method: &str, notification: bool) -> bool {
    if notification {
        return drops_notification(g, method);
    }
    method != "initialize" && (request_phase_runs(g, method) || g.runs_response(method))
}

/// Whether a notification is dropped: a request method (not `notifications/…`) whose request
/// phase is on, sent without an id, would run upstream unchecked.
pub fn drops_notification(g: &dyn Guardrails, method: &str) -> bool {
    !method.starts_with("notifications/") && g.runs_request(method)
}

/// The field naming the item a routed method is about.
fn item_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    }
}

/// Whether rewritten `params` may replace `original`: an object naming the same item (a
/// processor may not send a call elsewhere), with a `tools/call`'s `arguments` an object.
pub fn valid_params(method: &str, original: Option<&Value>, mutated: &Value) -> Result<(), String> {
    let Some(obj) = mutated.as_object() else { return Err("params must be an object".into()) };
    if let Some(field) = item_field(method) {
        let before = original.and_then(|o| o.get(field));
        if obj.get(field) != before {
            return Err(format!("params.{field} may not change"));
        }
    }
    if method == "tools/call" && obj.get("arguments").is_some_and(|a| !a.is_object()) {
        return Err("params.arguments must be an object".into());
    }
    Ok(())
}

/// Whether a rewritten `result` has the shape `method`'s answer needs: an object, whose list
/// (for the list methods) or `content` (`tools/call`) is an array, and `contents`
/// (`resources/read`) or `messages` (`prompts/get`) too.
pub fn valid_result(method: &str, result: &Value) -> Result<(), String> {
    let Some(obj) = result.as_object() else { return Err("result must be an object".into()) };
    let required = match method {
        "tools/list" => Some("tools"),
        "prompts/list" => Some("prompts"),
        "resources/list" => Some("resources"),
        "resources/templates/list" => Some("resourceTemplates"),
        "tools/call" => Some("content"),
        "resources/read" => Some("contents"),
        "prompts/get" => Some("messages"),
        _ => None,
    };
    match required {
        Some(field) if !obj.get(field).is_some_and(Value::is_array) => Err(format!("result.{field} must be an array")),
        _ => Ok(()),
    }
}

/// Runs the response phase on an answer (`{"jsonrpc", "id", "result"}`): the result is
/// replaced, or the answer becomes the error. Errors are not checked.
pub async fn check_answer(g: &dyn Guardrails, call: Call<'_>, answer: &mut Value) {
    if !g.runs_response(call.method) {
        return;
    }
    let Some(result) = answer.get("result") else { return };
    match g.check_response(call, result).await {
        Outcome::Pass => {}
        Outcome::Mutated(r) => answer["result"] = r,
        Outcome::Reject(e) => {
            let id = answer.get("id").cloned().unwrap_or(Value::Null);
            *answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": e});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_edits_replace_then_append_and_leave_framing_alone() {
        let h = |s: &'static str| HeaderName::from_static(s);
        let v = |s: &'static str| HeaderValue::from_static(s);
        let mut edits = HeaderEdits::default();
        edits.extend(
            [(h("x-tag"), v("1")), (h("x-tag"), v("2")), (h("mcp-session-id"), v("stolen")), (h("host"), v("evil"))],
            vec![h("user-agent"), h("content-type")],
        );
        let mut headers = HeaderMap::new();
        headers.insert(h("x-tag"), v("old"));
        headers.insert(h("user-agent"), v("sdk"));
        headers.insert(h("content-type"), v("application/json"));
        edits.apply(&mut headers);
        let tags: Vec<_> = headers.get_all("x-tag").iter().collect();
        assert_eq!(tags, [v("1"), v("2")]);
        assert!(!headers.contains_key("user-agent"));
        assert_eq!(headers["content-type"], "application/json");
        assert!(!headers.contains_key("mcp-session-id") && !headers.contains_key("host"));
    }

    #[test]
    fn rewrites_keep_the_item_and_the_shape() {
        let call = json!({"name": "echo", "arguments": {"message": "x"}});
        assert!(valid_params("tools/call", Some(&call), &json!({"name": "echo", "arguments": {}})).is_ok());
        assert!(valid_params("tools/call", Some(&call), &json!({"name": "echo"})).is_ok());
        assert!(valid_params("tools/call", Some(&call), &json!({"name": "printEnv"})).is_err(), "another tool");
        assert!(valid_params("tools/call", Some(&call), &json!({"arguments": {}})).is_err(), "no name");
        assert!(valid_params("tools/call", Some(&call), &json!({"name": "echo", "arguments": [1]})).is_err());
        assert!(valid_params("tools/call", Some(&call), &json!("echo")).is_err());
        let read = json!({"uri": "file:///a"});
        assert!(valid_params("resources/read", Some(&read), &json!({"uri": "file:///b"})).is_err());
        assert!(valid_params("logging/setLevel", None, &json!({"level": "debug"})).is_ok());

        assert!(valid_result("tools/list", &json!({"tools": []})).is_ok());
        assert!(valid_result("tools/list", &json!({"tools": {}})).is_err());
        assert!(valid_result("tools/call", &json!({"content": [{"type": "text", "text": "x"}]})).is_ok());
        assert!(valid_result("tools/call", &json!({"isError": true})).is_err());
        assert!(valid_result("tools/call", &json!([])).is_err());
        assert!(valid_result("logging/setLevel", &json!({})).is_ok());
    }
}
