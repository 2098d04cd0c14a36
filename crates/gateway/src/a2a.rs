//! The `a2a` route policy: agent-to-agent (A2A) traffic through a `host:` backend.
//!
//! - **Agent cards** (`GET …/.well-known/agent-card.json`, and the older `agent.json`): the
//!   answer is read (bounded) and every URL where the agent is reached is rewritten to the
//!   gateway's address — A2A v1.0's `supportedInterfaces[].url` and v0.3's top-level `url` and
//!   `additionalInterfaces[].url` — keeping each URL's path below the agent's base, so a
//!   client that discovers the agent through the gateway keeps talking through it.
//! - **Calls** (`POST` JSON-RPC): the body is read (bounded, as the MCP relay reads bodies),
//!   its `method`, task id and context id noted — for the access log, metrics and traces, and
//!   as `a2a.*` for `authorization` rules, which are then checked — and forwarded unchanged.
//!   Streaming answers (`SendStreamingMessage`, `message/stream`: SSE) stream through.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Uri};
use serde_json::{Value, json};
use tracing::debug;

use agw_http::body::{self, Body};

/// Largest agent card rewritten.
pub const MAX_CARD_BYTES: usize = 1 << 20;

const CARD_SUFFIXES: [&str; 2] = ["/.well-known/agent-card.json", "/.well-known/agent.json"];

/// What the gateway learned about one A2A call; in the response's extensions for telemetry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct A2aCall {
    pub method: String,
    pub task_id: Option<String>,
    pub context_id: Option<String>,
}

/// A2A methods as metric labels (v0.3 and v1.0 names): any other is `other`, so a client
/// cannot grow the label set.
const METHODS: [&str; 21] = [
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/cancel",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
];

impl A2aCall {
    /// The method as a metric label.
    pub fn method_label(&self) -> &'static str {
        METHODS.iter().find(|m| **m == self.method).copied().unwrap_or("other")
    }

    /// Reads a JSON-RPC request body; `None` if it is not one.
    pub fn of(body: &[u8]) -> Option<A2aCall> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(|s| s.chars().take(256).collect::<String>());
        let method = text(v.get("method"))?;
        let params = v.get("params");
        let p = |path: &[&str]| text(path.iter().try_fold(params?, |v, k| v.get(*k)));
        // `GetTask`/`CancelTask` (`tasks/get`, `tasks/cancel`) name the task `id`; a message
        // continuing a task carries `message.taskId`; v1.0 push-config calls use `taskId`.
        let task_id = p(&["message", "taskId"]).or_else(|| p(&["taskId"])).or_else(|| {
            let m = method.as_str();
            (m.contains("ask") || m.starts_with("tasks/")).then(|| p(&["id"])).flatten()
        });
        let context_id = p(&["message", "contextId"]).or_else(|| p(&["contextId"]));
        Some(A2aCall { method, task_id, context_id })
    }

    /// The `a2a` variable of rules.
    pub fn cel(&self) -> Value {
        json!({"method": self.method, "taskId": self.task_id, "contextId": self.context_id})
    }
}

/// What a request on an `a2a` route is.
#[derive(Debug)]
pub enum Kind {
    /// An agent card, to be rewritten: the public base URL of the agent, and the base path
    /// the upstream serves it under.
    Card {
        public_base: String,
        agent_path: String,
    },
    /// A JSON-RPC call.
    Call,
    Other,
}

/// Classifies a request; `origin_base` is `scheme://host` as the client reached the gateway.
pub fn classify(parts: &Parts, origin_base: &str) -> Kind {
    let path = parts.uri.path();
    if parts.method == Method::GET {
        if let Some(agent_path) = CARD_SUFFIXES.iter().find_map(|s| path.strip_suffix(s)) {
            return Kind::Card {
                public_base: format!("{origin_base}{agent_path}"),
                agent_path: agent_path.to_string(),
            };
        }
        return Kind::Other;
    }
    if parts.method == Method::POST {
        return Kind::Call;
    }
    Kind::Other
}

/// The path of `url` relative to the agent's base path `agent_path` (on a segment boundary),
/// or the whole path when it is not below it.
fn relative<'a>(path: &'a str, agent_path: &str) -> &'a str {
    let base = agent_path.trim_end_matches('/');
    if base.is_empty() {
        return path.trim_end_matches('/');
    }
    match path.strip_prefix(base) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_end_matches('/'),
        _ => path.trim_end_matches('/'),
    }
}

/// `url` as reached through the gateway: the public base plus its path below the agent's.
fn public_url(url: &str, public_base: &str, agent_path: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let rest = relative(uri.path(), agent_path);
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let base = public_base.trim_end_matches('/');
    // A2A servers publish their base URLs with a trailing slash (`http://host:41241/`).
    let slash = if rest.is_empty() && uri.path().ends_with('/') { "/" } else { "" };
    Some(format!("{base}{rest}{slash}{query}"))
}

/// Rewrites the URLs of an agent card in place; how many were rewritten.
pub fn rewrite_card(card: &mut Value, public_base: &str, agent_path: &str) -> Result<usize, &'static str> {
    let obj = card.as_object_mut().ok_or("the agent card is not a JSON object")?;
    let mut n = 0;
    let mut fix = |v: &mut Value| {
        if let Some(new) = v.as_str().and_then(|u| public_url(u, public_base, agent_path)) {
            *v = Value::String(new);
            n += 1;
        }
    };
    // v1.0
    for list in ["supportedInterfaces", "additionalInterfaces"] {
        if let Some(items) = obj.get_mut(list).and_then(Value::as_array_mut) {
            for iface in items {
                if let Some(u) = iface.get_mut("url") {
                    fix(u);
                }
            }
        }
    }
    // v0.3
    if let Some(u) = obj.get_mut("url") {
        fix(u);
    }
    if n == 0 {
        return Err("the agent card has no URL (`url` or `supportedInterfaces`)");
    }
    Ok(n)
}

/// Rewrites an agent card answer (a 2xx JSON body, uncompressed); other answers as they are.
/// A card that cannot be read or has no URL is a `502`: a client must not be sent around
/// the gateway.
pub async fn card_response(resp: Response<Body>, public_base: &str, agent_path: &str) -> Response<Body> {
    let compressed = resp.headers().get(header::CONTENT_ENCODING).is_some_and(|e| e != "identity");
    if !resp.status().is_success() || compressed {
        return resp;
    }
    let (mut parts, b) = resp.into_parts();
    let bytes = match read_card(b).await {
        Ok(bytes) => bytes,
        Err(e) => return bad_card(&format!("the agent card could not be read: {e}")),
    };
    let mut card: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return bad_card("the agent card is not JSON"),
    };
    if let Err(e) = rewrite_card(&mut card, public_base, agent_path) {
        return bad_card(e);
    }
    let out = Bytes::from(serde_json::to_vec(&card).expect("JSON serialises"));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::ETAG);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, body::full(out))
}

/// The card's bytes (at most [`MAX_CARD_BYTES`]). Frame by frame rather than through
/// `read_limited`: its error conversion makes the connection task's future one rustc cannot
/// prove `Send` for every lifetime.
async fn read_card(mut b: Body) -> Result<Bytes, String> {
    use http_body_util::BodyExt;
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = b.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_CARD_BYTES {
                return Err(format!("over {MAX_CARD_BYTES} bytes"));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

fn bad_card(why: &str) -> Response<Body> {
    debug!(error = why, "agent card not rewritten");
    let mut r = Response::new(body::full(json!({"error": why}).to_string()));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests;
