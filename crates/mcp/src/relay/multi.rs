//! Streamable HTTP for the multiplexer: `POST` (answers streamed as SSE, `initialize` as JSON
//! with the session id), `GET` (every target's server stream, merged), `DELETE`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::debug;

use super::{Backend, CallOptions, Relay, forward_headers, json_response};
use crate::body::{Body, BoxError};
use crate::error::RelayError;
use crate::jsonrpc;
use crate::local::LocalSession;
use crate::mux::{Mux, Out, Sess, sse_body, status_only};
use crate::session::SessionState;
use crate::sse::Decoder;
use crate::upstream::{MCP_SESSION_ID, Outgoing, Upstream};

/// Messages of a request body, checked and owned.
pub(super) struct Messages {
    pub(super) values: Vec<Value>,
    pub(super) is_init: bool,
    /// Sent as a JSON-RPC batch.
    pub(super) batch: bool,
}

pub(super) async fn read_messages<B>(relay: &Relay, body: B) -> Result<Messages, RelayError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let bytes = relay.read_request(body).await?;
    let (parsed, is_init) = super::parse_request(&bytes, relay.options.max_batch)?;
    parsed_messages(&parsed, is_init)
}

/// Owned values of parsed messages.
pub(super) fn parsed_messages(parsed: &jsonrpc::Body<'_>, is_init: bool) -> Result<Messages, RelayError> {
    // The envelope scan accepts what a full parse may not (a lone surrogate, `1e999`, deep
    // nesting): such a message is refused, not forwarded half-read.
    let values = parsed
        .messages
        .iter()
        .map(|m| serde_json::from_str(m.raw.get()))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| RelayError::Parse(jsonrpc::ParseError::Json(e.to_string())))?;
    Ok(Messages { values, is_init, batch: parsed.batch })
}

/// Counts the requests of a body (metrics, access log).
pub(super) fn observe_values(relay: &Relay, backend: &Backend, opts: &CallOptions, messages: &[Value]) {
    let n = messages.iter().filter(|m| is_request(m)).count();
    for m in messages.iter().filter(|m| is_request(m)) {
        let method = m["method"].as_str().unwrap_or_default();
        let name = m["params"]["name"].as_str();
        let tool = if method == "tools/call" { name } else { None };
        let target = match method {
            "tools/call" | "prompts/get" => super::target_of(backend, name),
            _ if backend.targets.len() == 1 => super::target_of(backend, None),
            _ => None,
        };
        relay.observe(opts, method, tool, target, n);
    }
}

fn is_request(m: &Value) -> bool {
    m.get("method").is_some() && m.get("id").is_some_and(|id| !id.is_null())
}

/// An output that nobody reads (messages sent during `initialize` have no stream yet).
fn discard() -> Out {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    Out::new(tx)
}

impl Relay {
    /// The local session for a session, when the backend needs one (counted against the
    /// caller's live-session quota when it is created here). `admitted`: the caller's
    /// new-session rate was charged already (an `initialize`); otherwise setting up a session
    /// this gateway does not hold (after a `DELETE`, an expiry, on another replica) starts
    /// stateful upstreams again, and is charged like a new session.
    pub(super) fn local_for(
        &self,
        backend: &Backend,
        state: &SessionState,
        opts: &CallOptions,
        (id, admitted): (Option<&Value>, bool),
    ) -> Result<Option<Arc<LocalSession>>, RelayError> {
        if !backend.has_stateful() {
            return Ok(None);
        }
        if let Some(local) = self.locals.get(&state.nonce) {
            return Ok(Some(local));
        }
        if !admitted {
            self.admit(&opts.caller, None)?;
        }
        self.locals
            .get_or_create(&state.nonce, None, &opts.caller, backend.has_stdio())
            .map(Some)
            .map_err(|e| self.refusal(e, id.map(Value::to_string)))
    }

    pub(super) async fn multi_post<B>(
        &self,
        backend: Arc<Backend>,
        parts: &Parts,
        body: B,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let messages = read_messages(self, body).await?;
        observe_values(self, &backend, opts, &messages.values);
        self.multi_post_messages(backend, parts, messages, opts).await
    }

    /// A `POST`'s messages, read and counted already.
    pub(super) async fn multi_post_messages(
        &self,
        backend: Arc<Backend>,
        parts: &Parts,
        Messages { values: messages, is_init, batch }: Messages,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError> {
        let headers = forward_headers(&parts.headers, &opts.extra_headers);
        if is_init {
            let id = messages[0].get("id");
            let raw_id = id.and_then(|i| serde_json::value::to_raw_value(i).ok());
            self.admit(&opts.caller, raw_id.as_deref())?;
            let mux = Mux::new(self, &backend, opts, headers);
            let nonce = SessionState::new_nonce();
            let probe = SessionState { nonce: nonce.clone(), ..SessionState::default_for(&backend.key) };
            let local = self.local_for(&backend, &probe, opts, (id, true))?;
            let out = discard();
            return Ok(match mux.initialize(&messages[0], local.clone(), &out).await {
                Ok((response, mut state)) => {
                    state.owner = opts.caller.owner.clone();
                    let mut r = json_response(StatusCode::OK, Bytes::from(response.to_string()));
                    if backend.stateless {
                        // Nothing to keep: the upstream sessions were for this request only.
                        mux.end(&Sess { state, local, ephemeral: true, lazy: Default::default() }).await;
                    } else {
                        state.nonce = nonce;
                        let id = self.codec.encode(&state);
                        r.headers_mut()
                            .insert(MCP_SESSION_ID, HeaderValue::from_str(&id).expect("base64url is a valid header"));
                    }
                    r
                }
                Err(error) => {
                    if let Some(l) = &local {
                        self.locals.remove(&l.key).await;
                    }
                    json_response(StatusCode::OK, Bytes::from(error.to_string()))
                }
            });
        }
        let sess = if backend.stateless {
            let state = SessionState::default_for(&backend.key);
            // Every stateless request sets up its stateful upstreams (stdio children) anew: each
            // counts as a new session (`local_for` charges it).
            super::check_batch(batch, &parts.headers, &state)?;
            let probe = SessionState { nonce: SessionState::new_nonce(), ..state.clone() };
            let local = self.local_for(&backend, &probe, opts, (None, false))?;
            Sess {
                state: SessionState { init: Some(default_init(parts)), ..state },
                local,
                ephemeral: true,
                lazy: Default::default(),
            }
        } else {
            let state = self.session(&parts.headers, &backend, &opts.caller)?;
            super::check_batch(batch, &parts.headers, &state)?;
            let local = self.local_for(&backend, &state, opts, (None, false))?;
            Sess { state, local, ephemeral: false, lazy: Default::default() }
        };
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let out = Out::new(tx);
        if !messages.iter().any(is_request) {
            let mux = Mux::new(self, &backend, opts, headers);
            for m in &messages {
                mux.forward_one(&sess, m, &out).await;
            }
            if sess.ephemeral {
                // Its throwaway upstreams (children, sessions) end with the request.
                mux.end(&sess).await;
            }
            return Ok(status_only(StatusCode::ACCEPTED));
        }
        let relay = self.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            let mux = Mux::new(&relay, &backend, &opts, headers);
            for m in &messages {
                if is_request(m) {
                    mux.request_one(&sess, m, &out).await;
                } else {
                    mux.forward_one(&sess, m, &out).await;
                }
            }
            if sess.ephemeral {
                mux.end(&sess).await;
            }
        });
        Ok(sse_body(rx))
    }

    /// The server stream: every HTTP target's `GET` stream and the stateful targets' messages,
    /// merged into one.
    pub(super) async fn multi_get(
        &self,
        backend: Arc<Backend>,
        parts: &Parts,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError> {
        if backend.stateless {
            return Ok(status_only(StatusCode::METHOD_NOT_ALLOWED));
        }
        let state = self.session(&parts.headers, &backend, &opts.caller)?;
        let local = self.local_for(&backend, &state, opts, (None, false))?;
        let headers = forward_headers(&parts.headers, &opts.extra_headers);
        let mut streams = Vec::new();
        for (idx, t) in backend.targets.iter().enumerate() {
            let (Upstream::Http(http), Some(s)) = (&t.upstream, state.upstream_session(&t.name)) else { continue };
            let out = Outgoing {
                method: Method::GET,
                body: Bytes::new(),
                session: Some(s.to_string()),
                headers: headers.clone(),
            };
            // The stream lives as long as the session; only the wait for its headers is bounded.
            let opened =
                tokio::time::timeout(self.options.request_timeout, http.client(&self.client).send(http.request(out)))
                    .await;
            match opened {
                Ok(Ok(resp)) if resp.status() == StatusCode::OK => streams.push((idx, resp.into_body())),
                Ok(Ok(resp)) if resp.status() == StatusCode::NOT_FOUND => return Err(RelayError::SessionUnknown),
                Ok(Ok(resp)) => debug!(target = %t.name, status = %resp.status(), "no server stream"),
                Ok(Err(e)) => debug!(target = %t.name, error = %e, "no server stream"),
                Err(_) => debug!(target = %t.name, "no server stream: no answer in time"),
            }
        }
        if streams.is_empty() && local.is_none() {
            return Ok(status_only(StatusCode::METHOD_NOT_ALLOWED));
        }
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        for (idx, mut upstream) in streams {
            let (relay, backend, opts, tx, headers) =
                (self.clone(), backend.clone(), opts.clone(), tx.clone(), headers.clone());
            tokio::spawn(async move {
                let mux = Mux::new(&relay, &backend, &opts, headers);
                let out = Out::new(tx);
                let mut decoder = Decoder::new(relay.limits.max_response);
                while let Some(Ok(frame)) = upstream.frame().await {
                    let Ok(data) = frame.into_data() else { continue };
                    decoder.feed(&data);
                    while let Ok(Some(ev)) = decoder.next_event() {
                        let Ok(m) = serde_json::from_str::<Value>(ev.data()) else { continue };
                        if !out.message(&mux.outward(idx, m)).await {
                            return;
                        }
                    }
                }
            });
        }
        if let Some(local) = local {
            let (relay, backend, opts) = (self.clone(), backend.clone(), opts.clone());
            tokio::spawn(async move {
                let mux = Mux::new(&relay, &backend, &opts, headers);
                let out = Out::new(tx);
                // This stream now delivers the session's unsolicited messages.
                let mut events = local.events_rx.lock().await;
                while let Some(ev) = events.recv().await {
                    let idx = backend.targets.iter().position(|t| t.name == ev.target).unwrap_or(0);
                    if !out.message(&mux.outward(idx, ev.message)).await {
                        return;
                    }
                }
            });
        }
        Ok(sse_body(rx))
    }

    pub(super) async fn multi_delete(
        &self,
        backend: &Backend,
        parts: &Parts,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError> {
        if backend.stateless {
            return Ok(status_only(StatusCode::METHOD_NOT_ALLOWED));
        }
        let state = self.session(&parts.headers, backend, &opts.caller)?;
        let local = self.locals.get(&state.nonce);
        let mux = Mux::new(self, backend, opts, forward_headers(&parts.headers, &opts.extra_headers));
        mux.end(&Sess { state, local, ephemeral: false, lazy: Default::default() }).await;
        Ok(status_only(StatusCode::OK))
    }
}

/// `initialize` params for upstream sessions made without a client session (stateless mode).
fn default_init(parts: &Parts) -> Value {
    let version =
        parts.headers.get(crate::upstream::MCP_PROTOCOL_VERSION).and_then(|v| v.to_str().ok()).unwrap_or("2025-06-18");
    serde_json::json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "agentgateway", "version": env!("CARGO_PKG_VERSION")}})
}
