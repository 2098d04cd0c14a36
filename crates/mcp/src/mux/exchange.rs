//! Sending one message to one target and getting its answer, whatever the transport: a
//! Streamable HTTP `POST` (answered as JSON or SSE), or a message on a stateful connection
//! (answered on its stream). Unsolicited messages that arrive meanwhile go to the client.

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::time::Instant;

use super::{Mux, Out, Sess};
use crate::body::read_limited;
use crate::error::{FailureKind, UpstreamFailure};
use crate::sse::Decoder;
use crate::upstream::{Conn, HttpTarget, MCP_SESSION_ID, Outgoing, Upstream};

/// A target's answer to a request.
pub(super) struct Answer {
    /// The response message (with the id it was sent with).
    pub response: Value,
    /// For `initialize` over HTTP: the upstream's session id.
    pub session: Option<String>,
}

impl Mux<'_> {
    pub(super) fn fail(&self, idx: usize, kind: FailureKind) -> UpstreamFailure {
        UpstreamFailure { target: self.backend.targets[idx].name.clone(), kind }
    }

    /// Sends a request to target `idx` and waits for its response; messages the target sends
    /// meanwhile are written to `out` (rewritten for the client). Any list in the response is
    /// filtered by the caller's rules, whatever was asked.
    pub(super) async fn request(
        &self,
        sess: &Sess,
        idx: usize,
        msg: &Value,
        out: &Out,
    ) -> Result<Answer, UpstreamFailure> {
        let started = std::time::Instant::now();
        let span = self.relay.begin_upstream(self.opts);
        let answer = match &self.backend.targets[idx].upstream {
            Upstream::Http(http) => {
                self.ensure_http_session(sess, idx, http, out).await?;
                self.http_request(sess, idx, http, msg, out, span.as_ref().map(|s| s.traceparent())).await
            }
            Upstream::Sse(_) | Upstream::Stdio(_) => {
                let conn = self.conn(sess, idx).await?;
                self.conn_request(sess, idx, &conn, msg, out).await
            }
            Upstream::Local(server) => {
                let answer = server.handle(msg, &self.headers);
                let response = match self.deadline() {
                    Some((at, limit)) => tokio::time::timeout_at(at, answer)
                        .await
                        .map_err(|_| self.fail(idx, FailureKind::Timeout(limit)))?,
                    None => answer.await,
                };
                Ok(Answer { response, session: None })
            }
        };
        let name = &self.backend.targets[idx].name;
        self.relay.metrics.upstream_call(name, started.elapsed());
        let error = answer.as_ref().err().map(ToString::to_string);
        self.relay.end_upstream(self.opts, span, name, None, error);
        let mut answer = answer?;
        if let Some(authz) = &self.opts.authorizer {
            crate::authz::filter_result(&mut answer.response, &self.backend.targets[idx].name, authz.as_ref());
        }
        Ok(answer)
    }

    /// Sends a notification or a response (nothing comes back).
    pub(super) async fn notify(&self, sess: &Sess, idx: usize, msg: &Value, out: &Out) -> Result<(), UpstreamFailure> {
        let bytes = Bytes::from(serde_json::to_vec(msg).expect("JSON serialises"));
        match &self.backend.targets[idx].upstream {
            Upstream::Http(http) => {
                self.ensure_http_session(sess, idx, http, out).await?;
                let out_req = self.outgoing(sess, idx, bytes);
                let resp = self.send_http(idx, http, out_req).await?;
                let status = resp.status();
                let _ = resp.into_body().collect().await;
                if status.is_success() || status.is_client_error() {
                    Ok(())
                } else {
                    Err(self.fail(idx, FailureKind::Status(status)))
                }
            }
            Upstream::Sse(_) | Upstream::Stdio(_) => {
                let conn = self.conn(sess, idx).await?;
                conn.send(bytes).await.map_err(|e| self.fail(idx, FailureKind::Io(e.to_string())))
            }
            // Notifications and answers to a local server's requests (it sends none).
            Upstream::Local(_) => Ok(()),
        }
    }

    fn outgoing(&self, sess: &Sess, idx: usize, body: Bytes) -> Outgoing {
        let name = &self.backend.targets[idx].name;
        Outgoing { method: Method::POST, body, session: sess.upstream_session(name), headers: self.headers.clone() }
    }

    /// Ephemeral sessions (stateless mode) set up an upstream session on first use.
    async fn ensure_http_session(
        &self,
        sess: &Sess,
        idx: usize,
        http: &HttpTarget,
        out: &Out,
    ) -> Result<(), UpstreamFailure> {
        let name = &self.backend.targets[idx].name;
        if !sess.ephemeral || sess.lazy.lock().expect("lazy lock").iter().any(|t| &t.name == name) {
            return Ok(());
        }
        let init = sess.state.init.clone().unwrap_or(Value::Null);
        let req = serde_json::json!({"jsonrpc": "2.0", "id": "agw-init", "method": "initialize", "params": init});
        let answer = self.http_request(sess, idx, http, &req, out, None).await?;
        sess.lazy
            .lock()
            .expect("lazy lock")
            .push(crate::session::TargetSession { name: name.clone(), session: answer.session });
        let done = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let resp = self.send_http(idx, http, self.outgoing(sess, idx, done)).await?;
        let _ = resp.into_body().collect().await;
        Ok(())
    }

    async fn send_http(
        &self,
        idx: usize,
        http: &HttpTarget,
        out: Outgoing,
    ) -> Result<http::Response<hyper::body::Incoming>, UpstreamFailure> {
        let fut = http.client(&self.relay.client).send(http.request(out));
        let result = match self.deadline() {
            Some((at, limit)) => {
                tokio::time::timeout_at(at, fut).await.map_err(|_| self.fail(idx, FailureKind::Timeout(limit)))?
            }
            None => fut.await,
        };
        result.map_err(|e| {
            self.fail(
                idx,
                match e {
                    crate::upstream::SendError::Connect(d) => FailureKind::Connect(d),
                    crate::upstream::SendError::Other(d) => FailureKind::Io(d),
                },
            )
        })
    }

    /// The tighter of the request deadline and the backend timeout, from now.
    fn deadline(&self) -> Option<(Instant, std::time::Duration)> {
        let backend = self.opts.backend_timeout.map(|d| (Instant::now() + d, d));
        match (backend, self.opts.deadline) {
            (Some(b), Some(r)) => Some(if b.0 <= r.0 { b } else { r }),
            (b, r) => b.or(r),
        }
    }

    async fn http_request(
        &self,
        sess: &Sess,
        idx: usize,
        http: &HttpTarget,
        msg: &Value,
        out: &Out,
        traceparent: Option<http::HeaderValue>,
    ) -> Result<Answer, UpstreamFailure> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let bytes = Bytes::from(serde_json::to_vec(msg).expect("JSON serialises"));
        let had_session = sess.upstream_session(&self.backend.targets[idx].name).is_some();
        let mut outgoing = self.outgoing(sess, idx, bytes);
        if let Some(tp) = traceparent {
            outgoing.headers.insert(crate::trace::TRACEPARENT, tp);
        }
        let resp = self.send_http(idx, http, outgoing).await?;
        let status = resp.status();
        let session = resp.headers().get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
        if status == StatusCode::NOT_FOUND && had_session {
            return Err(self.fail(idx, FailureKind::SessionExpired));
        }
        if !status.is_success() {
            return Err(self.fail(idx, FailureKind::Status(status)));
        }
        let is_sse = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let limit = self.relay.limits.max_response;
        let deadline = self.opts.deadline;
        let mut body = resp.into_body();
        let mut response = None;
        if is_sse {
            let mut decoder = Decoder::new(limit);
            loop {
                while let Some(ev) = decoder.next_event().map_err(|e| self.fail(idx, FailureKind::TooLarge(e.limit)))? {
                    if !ev.is_message() {
                        continue;
                    }
                    let m: Value = serde_json::from_str(ev.data())
                        .map_err(|e| self.fail(idx, FailureKind::Garbage(e.to_string())))?;
                    if is_response_to(&m, &id) {
                        response = Some(m);
                    } else {
                        out.message(&self.outward(idx, m)).await;
                    }
                }
                if response.is_some() {
                    break;
                }
                let frame = match deadline {
                    Some((at, l)) => tokio::time::timeout_at(at, body.frame())
                        .await
                        .map_err(|_| self.fail(idx, FailureKind::Timeout(l)))?,
                    None => body.frame().await,
                };
                match frame {
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            decoder.feed(&data);
                        }
                    }
                    Some(Err(e)) => return Err(self.fail(idx, FailureKind::Io(crate::upstream::error_chain(&e)))),
                    None => break,
                }
            }
        } else {
            let bytes = read_limited(body, limit).await.map_err(|e| match e {
                crate::body::ReadError::TooLarge { limit } => self.fail(idx, FailureKind::TooLarge(limit)),
                crate::body::ReadError::Io(e) => self.fail(idx, FailureKind::Io(e.to_string())),
            })?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| self.fail(idx, FailureKind::Garbage(e.to_string())))?;
            let items = match v {
                Value::Array(items) => items,
                one => vec![one],
            };
            for m in items {
                if is_response_to(&m, &id) {
                    response = Some(m);
                } else {
                    out.message(&self.outward(idx, m)).await;
                }
            }
        }
        let response =
            response.ok_or_else(|| self.fail(idx, FailureKind::Io("the answer ended without a response".into())))?;
        Ok(Answer { response, session })
    }

    async fn conn_request(
        &self,
        sess: &Sess,
        idx: usize,
        conn: &Conn,
        msg: &Value,
        out: &Out,
    ) -> Result<Answer, UpstreamFailure> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let router = conn.router();
        let mut rx = router.expect(&id).map_err(|e| self.fail(idx, FailureKind::Io(e.to_string())))?;
        let bytes = Bytes::from(serde_json::to_vec(msg).expect("JSON serialises"));
        if let Err(e) = conn.send(bytes).await {
            router.forget(&id);
            return Err(self.fail(idx, FailureKind::Io(e.to_string())));
        }
        // While waiting, this request delivers the session's unsolicited messages, unless a
        // GET stream (or another request) already does.
        let mut events = match &sess.local {
            Some(local) => local.events_rx.try_lock().ok(),
            None => None,
        };
        let sleep = async {
            match self.opts.deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            let next_event = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut rx => {
                    return r.map(|response| Answer { response, session: None })
                        .map_err(|_| self.fail(idx, FailureKind::Io("the upstream closed the connection".into())));
                }
                ev = next_event.fuse() => match ev {
                    Some(ev) => {
                        let from = self.backend.targets.iter().position(|t| t.name == ev.target).unwrap_or(idx);
                        out.message(&self.outward(from, ev.message)).await;
                    }
                    None => events = None,
                },
                _ = &mut sleep => {
                    router.forget(&id);
                    let limit = self.opts.deadline.map(|(_, l)| l).unwrap_or_default();
                    return Err(self.fail(idx, FailureKind::Timeout(limit)));
                }
            }
        }
    }
}

fn is_response_to(m: &Value, id: &Value) -> bool {
    m.get("method").is_none() && m.get("id") == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
}
