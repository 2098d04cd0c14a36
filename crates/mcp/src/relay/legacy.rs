//! The legacy HTTP+SSE client transport (protocol 2024-11-05): `GET …/sse` opens a stream
//! whose first event names where to `POST` messages (`…/sse?sessionId=…`); every answer
//! arrives on the stream. The stream is bound to this gateway, so the session lives here.

use bytes::Bytes;
use http::Response;
use http::StatusCode;
use http::request::Parts;
use http_body::Body as HttpBody;
use tokio::sync::mpsc;
use tracing::debug;

use super::multi::read_messages;
use super::{Backend, CallOptions, Relay, forward_headers};
use crate::body::{Body, BoxError};
use crate::error::RelayError;
use crate::local::Legacy;
use crate::mux::{Mux, Out, Sess, sse_body, status_only};
use crate::session::SessionState;

impl Relay {
    pub(super) async fn legacy_open(
        &self,
        backend: &std::sync::Arc<Backend>,
        parts: &Parts,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError> {
        // A legacy stream is a new session: it counts against the caller's quotas.
        self.admit(&opts.caller, None)?;
        let key = SessionState::new_nonce();
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let local = self
            .locals
            .get_or_create(
                &key,
                Some(Legacy { state: Default::default(), out: tx.clone() }),
                &opts.caller,
                backend.has_stdio(),
            )
            .map_err(|e| self.refusal(e, None))?;
        // Messages are posted back to the stream's own path, as agentgateway does: a route
        // that matched `GET …/sse` (the `mcp:` shorthand on a gateway matches only `/mcp`,
        // `/sse` and `/.well-known`) matches the `POST` too. `…/message` is accepted as well.
        let endpoint = format!("event: endpoint\ndata: {}?sessionId={key}\n\n", parts.uri.path());
        tx.send(Bytes::from(endpoint)).await.map_err(|_| RelayError::BodyRead)?;
        // The stream also carries what stateful upstreams send on their own.
        let (relay, backend, opts) = (self.clone(), backend.clone(), opts.clone());
        let headers = forward_headers(&parts.headers, &opts.extra_headers);
        tokio::spawn(async move {
            let mux = Mux::new(&relay, &backend, &opts, headers);
            let out = Out::new(tx.clone());
            {
                let mut events = local.events_rx.lock().await;
                loop {
                    tokio::select! {
                        ev = events.recv() => match ev {
                            Some(ev) => {
                                let idx = backend.targets.iter().position(|t| t.name == ev.target).unwrap_or(0);
                                if !out.message(&mux.outward(idx, ev.message)).await {
                                    break;
                                }
                            }
                            None => break,
                        },
                        _ = tx.closed() => break,
                    }
                }
            }
            debug!(session = %local.key, "legacy SSE client went away");
            relay.locals.remove(&local.key).await;
        });
        Ok(sse_body(rx))
    }

    pub(super) async fn legacy_post<B>(
        &self,
        backend: &std::sync::Arc<Backend>,
        parts: &Parts,
        body: B,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let key = parts.uri.query().and_then(|q| form_query(q, "sessionId")).ok_or(RelayError::SessionRequired)?;
        let local = self.locals.peek(&key).ok_or(RelayError::SessionUnknown)?;
        let Some(legacy) = &local.legacy else { return Err(RelayError::SessionUnknown) };
        if local.owner != opts.caller.owner {
            // The stream's id in another caller's hands: as if it did not exist (and it does
            // not keep the session alive either).
            self.refused("owner");
            return Err(RelayError::SessionUnknown);
        }
        local.touch();
        let super::multi::Messages { values: messages, is_init, batch } = read_messages(self, body).await?;
        if let Some(state) = legacy.state.lock().expect("legacy state lock").as_ref() {
            super::check_batch(batch, &parts.headers, state)?;
        }
        super::multi::observe_values(self, backend, opts, &messages);
        let out = Out::new(legacy.out.clone());
        let (relay, backend, opts) = (self.clone(), backend.clone(), opts.clone());
        let headers = forward_headers(&parts.headers, &opts.extra_headers);
        tokio::spawn(async move {
            let mux = Mux::new(&relay, &backend, &opts, headers);
            let Some(legacy) = &local.legacy else { return };
            if is_init {
                let answer = match mux.initialize(&messages[0], Some(local.clone()), &out).await {
                    Ok((response, state)) => {
                        *legacy.state.lock().expect("legacy state lock") = Some(state);
                        response
                    }
                    Err(error) => error,
                };
                out.message(&answer).await;
                return;
            }
            let Some(state) = legacy.state.lock().expect("legacy state lock").clone() else {
                for m in messages.iter().filter(|m| m.get("id").is_some() && m.get("method").is_some()) {
                    let e = serde_json::json!({"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32600, "message": "send `initialize` first"}});
                    out.message(&e).await;
                }
                return;
            };
            let sess = Sess { state, local: Some(local.clone()), ephemeral: false, lazy: Default::default() };
            for m in &messages {
                if m.get("method").is_some() && m.get("id").is_some_and(|id| !id.is_null()) {
                    mux.request_one(&sess, m, &out).await;
                } else {
                    mux.forward_one(&sess, m, &out).await;
                }
            }
        });
        Ok(status_only(StatusCode::ACCEPTED))
    }
}

fn form_query(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}
