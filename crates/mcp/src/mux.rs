//! The multiplexing relay: one MCP endpoint in front of several targets, or in front of a
//! target that is not plain Streamable HTTP (stdio, legacy SSE).
//!
//! Messages are routed by name: tools and prompts are `<target>_<name>`, resources
//! `<target>+<uri>` (when prefixing). `initialize` and list requests go to every target and
//! their answers are merged. Requests a target sends to the client (sampling, elicitation,
//! roots) get ids that name the target (`"<target>:<id>"`), so two targets using the same id
//! never collide and the client's reply goes back to the right one. Every answer to the client
//! is an SSE stream, except `initialize` (JSON, with the session id).

mod exchange;
mod guarded;
pub mod merge;
pub mod naming;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::HeaderValue;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::apps::{self, Edit};
use crate::authz::{self, ItemKind, Verdict};
use crate::body::Body;
use crate::error::{FailureKind, RelayError, UpstreamFailure};
use crate::guardrails;
use crate::jsonrpc::{ErrorObject, code};
use crate::local::LocalSession;
use crate::relay::{Backend, CallOptions, FailureMode, Relay};
use crate::session::{SessionState, TargetSession};
use crate::sse::Event;
use crate::upstream::sse::SseConn;
use crate::upstream::stdio::StdioConn;
use crate::upstream::{Conn, Upstream};
use naming::{Naming, Route, Sep};

/// Methods routed to one target by the item they name.
const ROUTED: [&str; 6] = [
    "tools/call",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
];

/// Pages of a list fetched from one target before giving up (a runaway cursor loop).
const MAX_PAGES: usize = 100;

/// Where messages for the client go: SSE events on the response (or on a legacy stream).
#[derive(Clone, Debug)]
pub(crate) struct Out {
    tx: mpsc::Sender<Bytes>,
}

impl Out {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> Out {
        Out { tx }
    }

    /// Writes one message; `false` once the client is gone.
    pub(crate) async fn message(&self, m: &Value) -> bool {
        let data = serde_json::to_vec(m).expect("JSON serialises");
        self.tx.send(Event::encode_message(&data, None)).await.is_ok()
    }
}

/// One session as the relay sees it during a request.
pub(crate) struct Sess {
    pub(crate) state: SessionState,
    pub(crate) local: Option<Arc<LocalSession>>,
    /// No session: upstream sessions are made for this request and ended after it.
    pub(crate) ephemeral: bool,
    /// Upstream sessions made during this request (ephemeral sessions only).
    pub(crate) lazy: std::sync::Mutex<Vec<TargetSession>>,
}

impl Sess {
    /// The upstream session id of target `name`: from the session id, or made just now.
    pub(crate) fn upstream_session(&self, name: &str) -> Option<String> {
        if let Some(s) = self.state.upstream_session(name) {
            return Some(s.to_string());
        }
        self.lazy.lock().expect("lazy lock").iter().find(|t| t.name == name).and_then(|t| t.session.clone())
    }
}

/// The relay for one request on one backend.
pub(crate) struct Mux<'a> {
    pub(crate) relay: &'a Relay,
    pub(crate) backend: &'a Backend,
    pub(crate) opts: &'a CallOptions,
    /// Client headers that go upstream.
    pub(crate) headers: HeaderMap,
    pub(crate) naming: Naming,
}

fn error_message(id: &Value, error: ErrorObject) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

fn failure_message(id: &Value, f: UpstreamFailure) -> Value {
    let rpc = RelayError::Upstream(f).to_rpc();
    error_message(id, rpc)
}

/// Why a name a client sent reaches no target.
enum Unrouted {
    /// No such item (or target): answered like a missing item.
    Unknown,
    /// A name that cannot be valid here (a malformed `ui://` URI); the message says why.
    Invalid(String),
}

impl Unrouted {
    fn answer(self, kind: ItemKind, exposed: &str, id: &Value) -> Value {
        match self {
            Unrouted::Unknown => authz::unknown(kind, exposed, id),
            Unrouted::Invalid(message) => {
                error_message(id, ErrorObject { code: code::INVALID_PARAMS, message, data: None })
            }
        }
    }
}

impl<'a> Mux<'a> {
    pub(crate) fn new(relay: &'a Relay, backend: &'a Backend, opts: &'a CallOptions, headers: HeaderMap) -> Mux<'a> {
        let naming = Naming::new(backend.prefix_mode, backend.targets.iter().map(|t| t.name.clone()).collect());
        Mux { relay, backend, opts, headers, naming }
    }

    fn multiplexed(&self) -> bool {
        self.backend.targets.len() > 1
    }

    /// A message from target `idx` as the client must see it: lists in it filtered; its
    /// requests get ids naming the target; resource URIs in notifications get the target
    /// prefix.
    pub(crate) fn outward(&self, idx: usize, mut m: Value) -> Value {
        let target = &self.backend.targets[idx].name;
        if let Some(authz) = &self.opts.authorizer {
            authz::notice(&m, target, authz.as_ref());
            authz::filter_all(&mut m, target, authz.as_ref());
        }
        if !self.multiplexed() && !self.naming.prefix {
            return m;
        }
        if m.get("method").is_some()
            && let Some(id) = m.get("id").cloned()
        {
            m["id"] = Value::String(format!("{target}:{id}"));
        }
        if m.get("method").and_then(Value::as_str) == Some("notifications/resources/updated")
            && let Some(uri) = m["params"]["uri"].as_str()
        {
            m["params"]["uri"] = Value::String(self.naming.expose(target, uri, Sep::Uri));
        }
        m
    }

    /// The target a client's response is for, and the id the target used.
    fn inward_response(&self, id: &Value) -> Option<(usize, Value)> {
        if !self.multiplexed() && !self.naming.prefix {
            return Some((0, id.clone()));
        }
        let (target, original) = id.as_str()?.split_once(':')?;
        let idx = self.backend.targets.iter().position(|t| t.name == target)?;
        Some((idx, serde_json::from_str(original).ok()?))
    }

    /// Targets that are part of the session, by index.
    fn session_targets(&self, sess: &Sess) -> Vec<usize> {
        (0..self.backend.targets.len())
            .filter(|i| sess.ephemeral || sess.state.has_target(&self.backend.targets[*i].name))
            .collect()
    }

    /// The session's connection to stateful target `idx`, opened (and initialized with the
    /// session's stored `initialize` params) if this gateway does not hold one yet.
    pub(crate) async fn conn(&self, sess: &Sess, idx: usize) -> Result<Conn, UpstreamFailure> {
        let target = &self.backend.targets[idx];
        let local = sess.local.as_ref().ok_or_else(|| self.fail_io(idx, "no local session"))?;
        if let Some(c) = local.conn(&target.name).await {
            return Ok(c);
        }
        let conn = self.open_conn(idx, local).await?;
        local.insert_conn(&target.name, conn.clone()).await;
        // A replica (or a restart) that never saw this session sets the upstream up again.
        if let Some(init) = &sess.state.init {
            let req = json!({"jsonrpc": "2.0", "id": "agw-init", "method": "initialize", "params": init});
            let answer = self.conn_init(idx, &conn, &req).await?;
            if answer.get("error").is_some() {
                return Err(self.fail_io(idx, "the upstream refused to initialize"));
            }
            let done = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
            conn.send(done).await.map_err(|e| self.fail_io(idx, &e.to_string()))?;
        }
        Ok(conn)
    }

    /// `initialize` on a fresh connection (its answer is not streamed: nothing else is
    /// pending on it yet).
    async fn conn_init(&self, idx: usize, conn: &Conn, req: &Value) -> Result<Value, UpstreamFailure> {
        let rx = conn.router().expect(&req["id"]).map_err(|e| self.fail_io(idx, &e.to_string()))?;
        conn.send(Bytes::from(req.to_string())).await.map_err(|e| self.fail_io(idx, &e.to_string()))?;
        tokio::time::timeout(std::time::Duration::from_secs(30), rx)
            .await
            .map_err(|_| self.fail(idx, FailureKind::Timeout(std::time::Duration::from_secs(30))))?
            .map_err(|_| self.fail_io(idx, "the upstream closed the connection"))
    }

    fn fail_io(&self, idx: usize, detail: &str) -> UpstreamFailure {
        UpstreamFailure { target: self.backend.targets[idx].name.clone(), kind: FailureKind::Io(detail.to_string()) }
    }

    async fn open_conn(&self, idx: usize, local: &LocalSession) -> Result<Conn, UpstreamFailure> {
        let target = &self.backend.targets[idx];
        match &target.upstream {
            Upstream::Stdio(spec) => {
                StdioConn::spawn(&target.name, spec, local.events_tx.clone(), self.relay.metrics.stdio_children.clone())
                    .map(Conn::Stdio)
                    .map_err(|e| self.fail(idx, FailureKind::Connect(e.to_string())))
            }
            Upstream::Sse(sse) => SseConn::open(
                &target.name,
                &sse.url,
                sse.client(&self.relay.client).clone(),
                {
                    let mut headers = self.headers.clone();
                    if let Some(t) = &sse.headers {
                        t.apply(&mut headers);
                    }
                    headers
                },
                self.relay.limits.max_response,
                local.events_tx.clone(),
            )
            .await
            .map(Conn::Sse)
            .map_err(|e| self.fail(idx, FailureKind::Connect(e.to_string()))),
            Upstream::Http(_) | Upstream::Local(_) => Err(self.fail_io(idx, "not a stateful upstream")),
        }
    }

    /// `initialize`: to every target at once; the session holds those that answered.
    pub(crate) async fn initialize(
        &self,
        msg: &Value,
        local: Option<Arc<LocalSession>>,
        out: &Out,
    ) -> Result<(Value, SessionState), Value> {
        let id = msg["id"].clone();
        let mut state = SessionState {
            targets: Vec::new(),
            backend: self.backend.key.clone(),
            init: msg.get("params").cloned(),
            nonce: SessionState::new_nonce(),
            owner: String::new(),
            version: None,
        };
        let sess = Sess {
            state: SessionState { init: None, ..state.clone() },
            local,
            ephemeral: false,
            lazy: Default::default(),
        };
        let all: Vec<usize> = (0..self.backend.targets.len()).collect();
        let sess = &sess;
        let answers = join_all(all.iter().map(|&i| async move {
            let result = match &self.backend.targets[i].upstream {
                Upstream::Http(_) | Upstream::Local(_) => self.request(sess, i, msg, out).await,
                _ => match self.conn(sess, i).await {
                    Ok(conn) => {
                        self.conn_init(i, &conn, msg).await.map(|response| exchange::Answer { response, session: None })
                    }
                    Err(e) => Err(e),
                },
            };
            (i, result)
        }))
        .await;
        let mut results = Vec::new();
        let mut first_failure = None;
        for (i, r) in answers {
            let name = self.backend.targets[i].name.clone();
            match r {
                Ok(a) if a.response.get("result").is_some() => {
                    results.push((self.backend.targets[i].name.as_str(), a.response["result"].clone()));
                    state.targets.push(TargetSession { name, session: a.session });
                }
                Ok(a) => {
                    debug!(target = %name, "initialize refused: {}", a.response);
                    first_failure.get_or_insert(a.response);
                }
                Err(f) => {
                    warn!(target = %name, error = %f, detail = f.kind.detail().unwrap_or(""), "initialize failed");
                    first_failure.get_or_insert(failure_message(&id, f));
                }
            }
        }
        let closed = self.backend.failure_mode == FailureMode::FailClosed;
        if let Some(f) = first_failure
            && (closed || results.is_empty())
        {
            return Err(f);
        }
        let result = merge::initialize(&results);
        Ok((json!({"jsonrpc": "2.0", "id": id, "result": result}), state))
    }

    /// Checks that hold whatever the target: refused messages get this answer.
    fn screen(&self, msg: &Value) -> Option<Value> {
        self.opts.authorizer.as_ref().and(authz::screen(msg))
    }

    /// Checks a message about to go to target `idx` (names as the upstream knows them).
    fn police(&self, idx: usize, msg: &Value) -> Verdict {
        match &self.opts.authorizer {
            Some(authz) => authz::police(msg, &self.backend.targets[idx].name, authz.as_ref()),
            None => Verdict::Allow,
        }
    }

    /// Handles one client request (not `initialize`); the response goes to `out`.
    pub(crate) async fn request_one(&self, sess: &Sess, msg: &Value, out: &Out) {
        if let Some(refused) = self.screen(msg) {
            out.message(&refused).await;
            return;
        }
        let method = msg["method"].as_str().unwrap_or_default();
        // A call routed to one target is checked there (`checked_request`); any other once,
        // for all the session's targets.
        let response = match self.opts.guardrails.as_deref().filter(|_| !ROUTED.contains(&method)) {
            Some(g) => self.guarded_dispatch(g, sess, msg, out).await,
            None => self.dispatch(sess, msg, out).await,
        };
        out.message(&response).await;
    }

    /// The answer to one request (not `initialize`), by method.
    async fn dispatch(&self, sess: &Sess, msg: &Value, out: &Out) -> Value {
        let id = msg["id"].clone();
        let method = msg["method"].as_str().unwrap_or_default();
        match method {
            "ping" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
                self.list(sess, msg, out).await
            }
            "tools/call" | "prompts/get" => self.routed(sess, msg, out, Sep::Name).await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                self.routed(sess, msg, out, Sep::Uri).await
            }
            "completion/complete" => self.complete(sess, msg, out).await,
            "logging/setLevel" => self.everyone(sess, msg, out, true).await,
            _ => self.everyone(sess, msg, out, false).await,
        }
    }

    /// A call routed to one target by the item's name.
    async fn routed(&self, sess: &Sess, msg: &Value, out: &Out, sep: Sep) -> Value {
        let id = msg["id"].clone();
        let method = msg["method"].as_str().unwrap_or_default();
        let (kind, field) = match method {
            "tools/call" => (ItemKind::Tool, "name"),
            "prompts/get" => (ItemKind::Prompt, "name"),
            _ => (ItemKind::Resource, "uri"),
        };
        let Some(exposed) = msg["params"][field].as_str() else {
            return error_message(
                &id,
                ErrorObject {
                    code: code::INVALID_PARAMS,
                    message: format!("Invalid params: `{field}` must be a string"),
                    data: None,
                },
            );
        };
        let (idx, name) = match self.locate(sess, exposed, kind, sep, out).await {
            Ok(found) => found,
            Err(why) => return why.answer(kind, exposed, &id),
        };
        let mut forwarded = msg.clone();
        forwarded["params"][field] = Value::String(name);
        let mut response = self.checked_request(sess, idx, &forwarded, (kind, exposed), out).await;
        self.expose_result(idx, method, &mut response);
        response
    }

    /// A routed call's answer as the client must see it: the `ui://` resource a tool result
    /// names (MCP Apps), and the URIs of the contents read, spelled as they are listed.
    fn expose_result(&self, idx: usize, method: &str, response: &mut Value) {
        if !self.naming.ui_authority {
            return; // names are the upstream's (`ui_authority` is set whenever prefixing)
        }
        let target = &self.backend.targets[idx].name;
        let Some(result) = response.get_mut("result") else { return };
        match method {
            "tools/call" => {
                apps::edit_meta_uris(result, |uri| apps::encode(target, uri).map_or(Edit::Keep, Edit::Replace));
            }
            "resources/read" => {
                let contents = result.get_mut("contents").and_then(Value::as_array_mut).into_iter().flatten();
                for content in contents.filter_map(Value::as_object_mut) {
                    if let Some(uri) = content.get("uri").and_then(Value::as_str) {
                        let exposed = self.naming.expose(target, uri, Sep::Uri);
                        content.insert("uri".into(), Value::String(exposed));
                    }
                }
            }
            _ => {}
        }
    }

    /// Sends a message naming one item to its target once the rules allow it; a hidden item
    /// is answered as unknown under the name the client knows it by (`exposed`).
    async fn checked_request(
        &self,
        sess: &Sess,
        idx: usize,
        forwarded: &Value,
        (kind, exposed): (ItemKind, &str),
        out: &Out,
    ) -> Value {
        let id = &forwarded["id"];
        if kind == ItemKind::Tool
            && let Some(guard) = &self.backend.tools
            && let Some(name) = forwarded["params"]["name"].as_str()
            && guard.needs_list(&self.backend.targets[idx].name, name)
        {
            // Pinning judges a call by the definition last listed: list it now.
            match self.fetch_all(sess, idx, "tools/list", out).await {
                Ok(_) => guard.listed(&self.backend.targets[idx].name),
                Err(e) => debug!(error = %e, "tools/list before a pinned call failed"),
            }
        }
        match self.police(idx, forwarded) {
            Verdict::Allow => {}
            Verdict::Deny(refused) => return refused,
            Verdict::Hidden(_) => return authz::unknown(kind, exposed, id),
        }
        match self.opts.guardrails.as_deref() {
            Some(g) => self.guarded_request(g, sess, idx, forwarded, (kind, exposed), out).await,
            None => match self.request(sess, idx, forwarded, out).await {
                Ok(a) => a.response,
                Err(f) => failure_message(id, f),
            },
        }
    }

    /// Which target serves an exposed name, and its upstream name.
    async fn locate(
        &self,
        sess: &Sess,
        exposed: &str,
        kind: ItemKind,
        sep: Sep,
        out: &Out,
    ) -> Result<(usize, String), Unrouted> {
        let targets = self.session_targets(sess);
        match self.naming.route(exposed, sep) {
            Route::To(idx, name) if targets.contains(&idx) => return Ok((idx, name.into_owned())),
            Route::To(..) | Route::Unknown => return Err(Unrouted::Unknown),
            Route::Invalid(why) => return Err(Unrouted::Invalid(why)),
            Route::Lookup => {}
        }
        if let [only] = targets.as_slice() {
            return Ok((*only, exposed.to_string()));
        }
        // Unprefixed names across targets (`prefixMode: never`): look the name up; a name
        // that several targets use is ambiguous and refused.
        let list_method = match kind {
            ItemKind::Tool => "tools/list",
            ItemKind::Prompt => "prompts/list",
            ItemKind::Resource | ItemKind::ResourceTemplate => "resources/list",
        };
        let (_, name_field) = list_fields(list_method);
        let mut owners = Vec::new();
        for idx in targets {
            let items = self.fetch_all(sess, idx, list_method, out).await.unwrap_or_default();
            if items.iter().any(|i| i[name_field].as_str() == Some(exposed)) {
                owners.push(idx);
            }
        }
        match owners.as_slice() {
            [one] => Ok((*one, exposed.to_string())),
            _ => Err(Unrouted::Unknown),
        }
    }

    /// Every page of a list from one target.
    async fn fetch_all(&self, sess: &Sess, idx: usize, method: &str, out: &Out) -> Result<Vec<Value>, Value> {
        let (list_field, _) = list_fields(method);
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0..MAX_PAGES {
            let mut params = Map::new();
            if let Some(c) = &cursor {
                params.insert("cursor".into(), Value::String(c.clone()));
            }
            let req = json!({"jsonrpc": "2.0", "id": format!("agw-list-{page}"), "method": method, "params": params});
            let answer = self.request(sess, idx, &req, out).await.map_err(|f| failure_message(&Value::Null, f))?;
            let Some(result) = answer.response.get("result") else { return Err(answer.response) };
            items.extend(result[list_field].as_array().cloned().unwrap_or_default());
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
                _ => return Ok(items),
            }
        }
        Ok(items)
    }

    /// A list request: every target's items (all pages), filtered, prefixed, merged.
    async fn list(&self, sess: &Sess, msg: &Value, out: &Out) -> Value {
        let id = msg["id"].clone();
        let method = msg["method"].as_str().unwrap_or_default();
        let (list_field, name_field) = list_fields(method);
        let sep = if method.starts_with("resources/") { Sep::Uri } else { Sep::Name };
        let targets = self.session_targets(sess);
        let answers =
            join_all(targets.iter().map(|&i| async move { (i, self.fetch_all(sess, i, method, out).await) })).await;
        let mut merged = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (idx, answer) in answers {
            let items = match answer {
                Ok(items) => items,
                Err(e) if self.backend.failure_mode == FailureMode::FailClosed => {
                    return error_message(
                        &id,
                        serde_json::from_value(e["error"].clone()).unwrap_or(ErrorObject {
                            code: code::INTERNAL_ERROR,
                            message: "upstream failed".into(),
                            data: None,
                        }),
                    );
                }
                Err(_) => continue,
            };
            // The items are filtered already: every answer from a target is (see `request`).
            let target = &self.backend.targets[idx].name;
            for mut item in items {
                if let Some(name) = item[name_field].as_str() {
                    let exposed = self.naming.expose(target, name, sep);
                    *seen.entry(exposed.clone()).or_default() += 1;
                    item[name_field] = Value::String(exposed);
                }
                if list_field == "tools" && self.naming.ui_authority {
                    // MCP Apps: the host reads the tool's UI resource back through us.
                    apps::edit_meta_uris(&mut item, |uri| apps::encode(target, uri).map_or(Edit::Keep, Edit::Replace));
                }
                merged.push(item);
            }
        }
        if !self.naming.prefix && self.multiplexed() {
            // `prefixMode: never`: a name several targets use cannot be called; not listed.
            merged.retain(|i| i[name_field].as_str().is_none_or(|n| seen.get(n) == Some(&1)));
        }
        json!({"jsonrpc": "2.0", "id": id, "result": {list_field: merged}})
    }

    /// `completion/complete`: routed by the prompt or resource it completes.
    async fn complete(&self, sess: &Sess, msg: &Value, out: &Out) -> Value {
        let id = msg["id"].clone();
        let r = &msg["params"]["ref"];
        let (field, sep, kind) = match r["type"].as_str() {
            Some("ref/prompt") => ("name", Sep::Name, ItemKind::Prompt),
            _ => ("uri", Sep::Uri, ItemKind::Resource),
        };
        let Some(exposed) = r[field].as_str() else {
            // No item named: nothing to route by. Under rules, refused (nothing to check).
            if let Some(authz) = &self.opts.authorizer
                && let Verdict::Deny(refused) | Verdict::Hidden(refused) = authz::police(msg, "", authz.as_ref())
            {
                return refused;
            }
            return self.everyone(sess, msg, out, false).await;
        };
        let (idx, name) = match self.locate(sess, exposed, kind, sep, out).await {
            Ok(found) => found,
            Err(why) => return why.answer(kind, exposed, &id),
        };
        let mut forwarded = msg.clone();
        forwarded["params"]["ref"][field] = Value::String(name);
        self.checked_request(sess, idx, &forwarded, (kind, exposed), out).await
    }

    /// A request every target gets; `empty`: answer `{}` when all succeed, else the first
    /// successful answer.
    async fn everyone(&self, sess: &Sess, msg: &Value, out: &Out, empty: bool) -> Value {
        let id = msg["id"].clone();
        let targets = self.session_targets(sess);
        let answers = join_all(targets.iter().map(|&i| async move { self.request(sess, i, msg, out).await })).await;
        let mut first_ok = None;
        let mut first_err = None;
        for a in answers {
            match a {
                Ok(a) if a.response.get("result").is_some() => {
                    first_ok.get_or_insert(a.response);
                }
                Ok(a) => {
                    first_err.get_or_insert(a.response);
                }
                Err(f) => {
                    first_err.get_or_insert(failure_message(&id, f));
                }
            }
        }
        match (first_ok, first_err) {
            (Some(_), None) if empty => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            (Some(ok), _) => ok,
            (None, Some(err)) => err,
            (None, None) => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        }
    }

    /// A notification or response from the client: to its target, or to every target.
    pub(crate) async fn forward_one(&self, sess: &Sess, msg: &Value, out: &Out) {
        if self.screen(msg).is_some() {
            debug!("a client message was refused by authorization; dropped");
            return;
        }
        if self.opts.authorizer.is_some()
            && let Some(method) = msg.get("method").and_then(Value::as_str)
            && authz::is_policed(method)
        {
            // A notification naming a policed method would still run it on a lenient
            // upstream, and there is no answer to carry a refusal: dropped.
            debug!(method, "a notification with a policed method was dropped");
            return;
        }
        if let Some(g) = &self.opts.guardrails
            && let Some(method) = msg.get("method").and_then(Value::as_str)
            && guardrails::drops_notification(g.as_ref(), method)
        {
            debug!(method, "a notification with a guarded method was dropped");
            return;
        }
        let is_response = msg.get("method").is_none();
        if is_response {
            let Some((idx, original)) = msg.get("id").and_then(|id| self.inward_response(id)) else {
                warn!("a client response names no target; dropped");
                return;
            };
            let mut m = msg.clone();
            m["id"] = original;
            if let Err(f) = self.notify(sess, idx, &m, out).await {
                warn!(error = %f, "client response not delivered");
            }
            return;
        }
        for idx in self.session_targets(sess) {
            if let Err(f) = self.notify(sess, idx, msg, out).await {
                debug!(error = %f, "notification not delivered");
            }
        }
    }

    /// Ends a session's upstream sessions (HTTP `DELETE`, closing stateful connections).
    pub(crate) async fn end(&self, sess: &Sess) {
        for (idx, t) in self.backend.targets.iter().enumerate() {
            if let (Upstream::Http(http), Some(s)) = (&t.upstream, sess.upstream_session(&t.name)) {
                let out = crate::upstream::Outgoing {
                    method: http::Method::DELETE,
                    body: Bytes::new(),
                    session: Some(s.to_string()),
                    headers: self.headers.clone(),
                };
                let limit = self.relay.options.request_timeout;
                match tokio::time::timeout(limit, http.client(&self.relay.client).send(http.request(out))).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => debug!(target = idx, error = %e, "upstream DELETE failed"),
                    Err(_) => debug!(target = idx, "upstream DELETE not answered in time"),
                }
            }
        }
        if let Some(local) = &sess.local {
            self.relay.locals.remove(&local.key).await;
        }
    }
}

impl Relay {
    /// Lists the tools of a passthrough backend's target through the client's session, so that
    /// tool-definition pinning sees their current definitions before judging a call.
    pub(crate) async fn list_tools_for_pinning(
        &self,
        backend: &Backend,
        state: &SessionState,
        headers: HeaderMap,
        opts: &CallOptions,
    ) {
        let mux = Mux::new(self, backend, opts, headers);
        let sess = Sess { state: state.clone(), local: None, ephemeral: false, lazy: Default::default() };
        // Whatever else the target sends meanwhile has no client stream to go to.
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        match mux.fetch_all(&sess, 0, "tools/list", &Out::new(tx)).await {
            Ok(_) => {
                if let (Some(guard), Some(target)) = (&backend.tools, backend.targets.first()) {
                    guard.listed(&target.name);
                }
            }
            Err(e) => debug!(error = %e, "tools/list before a pinned call failed"),
        }
    }
}

pub(crate) fn list_fields(method: &str) -> (&'static str, &'static str) {
    match method {
        "tools/list" => ("tools", "name"),
        "prompts/list" => ("prompts", "name"),
        "resources/list" => ("resources", "uri"),
        _ => ("resourceTemplates", "uriTemplate"),
    }
}

/// An SSE response fed by `rx`.
pub(crate) fn sse_body(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    use http_body_util::{BodyExt, StreamBody};
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, crate::body::BoxError>(http_body::Frame::data(bytes)), rx))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub(crate) fn status_only(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(crate::body::empty());
    *r.status_mut() = status;
    r
}
