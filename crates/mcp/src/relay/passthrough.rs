//! The fast path: one Streamable HTTP target, names unchanged. The client's bytes go
//! upstream as they came and the upstream's answer streams back as it comes; messages are read
//! (borrowed, not re-encoded) only to learn what they are.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::debug;

use super::{
    Backend, CallOptions, Relay, Target, accepted, check_json_rpc, effective_limit, empty_response, error_response,
    forward_headers, json_response, log_failure, media_type, sse_response, stream,
};
use std::sync::Arc;

use crate::authz::{self, Authorizer, Verdict};
use crate::body::{self, Body, BoxError, ReadError, read_limited};
use crate::error::{FailureKind, RelayError, UpstreamFailure};
use crate::guardrails;
use crate::jsonrpc::{self, Kind};
use crate::session::{SessionState, TargetSession};
use crate::sse::Event;
use crate::upstream::{MCP_SESSION_ID, Outgoing, SendError, Upstream};

/// What a POST turns into: what goes upstream, and what the gateway answers itself.
struct Plan {
    /// The body for the upstream (`None`: nothing to forward).
    forward: Option<Bytes>,
    /// Ids of the forwarded requests, which the upstream must answer.
    pending: Vec<Box<RawValue>>,
    /// The gateway's own answers to refused calls.
    denied: Vec<Bytes>,
}

impl Plan {
    /// Without an authorizer the body goes upstream as it came. With one, every message is
    /// parsed in full, checked, and what goes upstream is the gateway's own encoding of the
    /// messages it allowed (so the upstream runs exactly what was checked).
    fn new(
        msgs: &jsonrpc::Body<'_>,
        bytes: &Bytes,
        target: &str,
        authz: Option<&dyn Authorizer>,
    ) -> Result<Plan, RelayError> {
        let Some(authz) = authz else {
            let pending = msgs.requests().filter_map(|m| m.id.map(ToOwned::to_owned)).collect();
            return Ok(Plan { forward: Some(bytes.clone()), pending, denied: Vec::new() });
        };
        let mut kept = Vec::new();
        let mut denied = Vec::new();
        for m in &msgs.messages {
            let v: Value = serde_json::from_str(m.raw.get())
                .map_err(|e| RelayError::Parse(jsonrpc::ParseError::Json(e.to_string())))?;
            match authz::police(&v, target, authz) {
                Verdict::Allow => kept.push((m.kind, v)),
                // A refused notification is dropped: it would still run the call upstream.
                Verdict::Deny(answer) | Verdict::Hidden(answer) if m.kind == Kind::Request => {
                    denied.push(Bytes::from(answer.to_string()))
                }
                Verdict::Deny(_) | Verdict::Hidden(_) => {}
            }
        }
        let pending = kept
            .iter()
            .filter(|(kind, _)| *kind == Kind::Request)
            .filter_map(|(_, v)| RawValue::from_string(v["id"].to_string()).ok())
            .collect();
        let encoded: Vec<Vec<u8>> = kept.iter().map(|(_, v)| serde_json::to_vec(v).expect("JSON serialises")).collect();
        let forward = match (encoded.as_slice(), msgs.batch) {
            ([], _) => None,
            ([one], false) => Some(Bytes::from(one.clone())),
            (all, _) => Some(authz::join_array(all.iter().map(|b| &b[..]))),
        };
        Ok(Plan { forward, pending, denied })
    }

    /// The answer when nothing needs the upstream's: the refused calls' errors.
    fn answer_alone(&self, batch: bool) -> Bytes {
        match (&self.denied[..], batch) {
            ([one], false) => one.clone(),
            (all, _) => authz::join_array(all.iter().map(|b| &b[..])),
        }
    }

    /// Filters lists in a JSON answer and adds the refused calls' errors. An answer that
    /// cannot be read in full is not passed on (it could hide a list): each pending request
    /// gets an error instead.
    fn rewrite_json(&self, bytes: Bytes, target: &str, authz: Option<&dyn Authorizer>) -> Result<Bytes, String> {
        let Some(authz) = authz else { return Ok(bytes) };
        if self.denied.is_empty() && !authz::may_need_filtering(&bytes)? {
            return Ok(bytes);
        }
        let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("answer cannot be checked: {e}"))?;
        let mut changed = authz::filter_all(&mut value, target, authz);
        if !self.denied.is_empty() {
            let mut all = match value {
                Value::Array(items) => items,
                one => vec![one],
            };
            all.extend(self.denied.iter().filter_map(|d| serde_json::from_slice::<Value>(d).ok()));
            value = Value::Array(all);
            changed = true;
        }
        Ok(if changed { Bytes::from(serde_json::to_vec(&value).expect("JSON re-serialises")) } else { bytes })
    }
}

impl Relay {
    pub(super) async fn post<B>(
        &self,
        backend: &Arc<Backend>,
        parts: &Parts,
        body: B,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let bytes = self.read_request(body).await?;
        let (msgs, is_init) = super::parse_request(&bytes, self.options.max_batch)?;
        let (state, new_session) = if is_init {
            let init = &msgs.messages[0];
            self.admit(&opts.caller, init.id)?;
            let new = SessionState {
                owner: opts.caller.owner.clone(),
                version: init.param_str("protocolVersion").map(|v| crate::metrics::cut(&v).to_string()),
                ..SessionState::default_for(&backend.key)
            };
            (None, Some(new))
        } else {
            let state = self.session(&parts.headers, backend, &opts.caller)?;
            super::check_batch(msgs.batch, &parts.headers, &state)?;
            (Some(state), None)
        };
        if let Some(g) = opts.guardrails.as_deref()
            && msgs
                .messages
                .iter()
                .any(|m| m.method().is_some_and(|method| guardrails::wants(g, method, m.kind == Kind::Notification)))
        {
            // A processor must see a message or its answer whole: the multiplexer's path
            // (the session ids of both paths are alike).
            let messages = super::multi::parsed_messages(&msgs, is_init)?;
            super::multi::observe_values(self, backend, opts, &messages.values);
            return self.multi_post_messages(backend.clone(), parts, messages, opts).await;
        }
        let target = &backend.targets[0];
        let n = msgs.requests().count();
        for m in msgs.requests() {
            let method = m.method().unwrap_or_default();
            let tool = super::tool_name(Some(method), m.params);
            self.observe(opts, method, tool.as_deref(), Some(&target.name), n);
        }
        if let (Some(guard), Some(state)) = (&backend.tools, &state)
            && msgs
                .requests()
                .filter_map(|m| super::tool_name(m.method(), m.params))
                .any(|tool| guard.needs_list(&target.name, &tool))
        {
            let headers = forward_headers(&parts.headers, &opts.extra_headers);
            self.list_tools_for_pinning(backend, state, headers, opts).await;
        }
        let plan = Plan::new(&msgs, &bytes, &target.name, opts.authorizer.as_deref())?;
        let Some(forward) = plan.forward.clone() else {
            // Every request was refused here; nothing goes upstream.
            return Ok(json_response(StatusCode::OK, plan.answer_alone(msgs.batch)));
        };
        let out = Outgoing {
            method: Method::POST,
            body: forward,
            session: state.as_ref().and_then(|s| s.upstream_session(&target.name)).map(str::to_string),
            headers: forward_headers(&parts.headers, &opts.extra_headers),
        };
        match self.forward_post(target, out, new_session, &plan, opts).await {
            Ok(resp) => Ok(resp),
            Err(failure) => {
                log_failure(&failure);
                let rpc = RelayError::Upstream(failure).to_rpc();
                let mut answers = plan.denied.clone();
                answers.extend(plan.pending.iter().map(|id| jsonrpc::error_response(Some(id), &rpc)));
                Ok(json_response(
                    StatusCode::OK,
                    if answers.len() == 1 && !msgs.batch {
                        answers.remove(0)
                    } else {
                        authz::join_array(answers.iter().map(|b| &b[..]))
                    },
                ))
            }
        }
    }

    async fn forward_post(
        &self,
        target: &Target,
        out: Outgoing,
        // For `initialize`: the new session (without targets), whose id the answer carries.
        init: Option<SessionState>,
        plan: &Plan,
        opts: &CallOptions,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let had_session = out.session.is_some();
        let resp = self.send(target, out, opts).await?;
        let status = resp.status();
        let fail = |kind| UpstreamFailure { target: target.name.clone(), kind };
        let session_header = if let Some(mut state) = init.filter(|_| status.is_success()) {
            self.metrics.sessions_started.inc();
            let upstream = resp.headers().get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
            state.targets = vec![TargetSession { name: target.name.clone(), session: upstream }];
            Some(HeaderValue::from_str(&self.codec.encode(&state)).expect("base64url is a valid header"))
        } else {
            None
        };
        let mut response = match status {
            // Only notifications went upstream; the refused requests still need their answers.
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT if !plan.denied.is_empty() => {
                json_response(StatusCode::OK, plan.answer_alone(true))
            }
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT => accepted(),
            s if s.is_success() => match media_type(resp.headers()).as_deref() {
                Some("text/event-stream") => {
                    let rewrite = stream::Rewrite {
                        prefix: plan.denied.iter().map(|d| Event::encode_message(d, None)).collect(),
                        authorizer: opts.authorizer.clone(),
                    };
                    let events = stream::relay_events(
                        target.name.clone(),
                        resp.into_body(),
                        &plan.pending,
                        self.limits.max_response,
                        opts.deadline,
                        rewrite,
                    );
                    sse_response(events)
                }
                Some("application/json") => {
                    let bytes = self.read_upstream(target, resp.into_body(), opts).await?;
                    check_json_rpc(&bytes).map_err(|e| fail(FailureKind::Garbage(e)))?;
                    let bytes = plan
                        .rewrite_json(bytes, &target.name, opts.authorizer.as_deref())
                        .map_err(|e| fail(FailureKind::Garbage(e)))?;
                    json_response(StatusCode::OK, bytes)
                }
                other => {
                    return Err(fail(FailureKind::Garbage(format!("unexpected content type {other:?}"))));
                }
            },
            StatusCode::NOT_FOUND if had_session => {
                debug!(target = %target.name, "upstream session expired");
                return Ok(error_response(&RelayError::SessionUnknown, &[]));
            }
            s if s.is_client_error() => self.pass_through(target, resp, opts).await?,
            s => return Err(fail(FailureKind::Status(s))),
        };
        if let Some(v) = session_header {
            response.headers_mut().insert(MCP_SESSION_ID, v);
        }
        Ok(response)
    }

    pub(super) async fn get(
        &self,
        backend: &Backend,
        parts: &Parts,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError> {
        let state = self.session(&parts.headers, backend, &opts.caller)?;
        let target = &backend.targets[0];
        let out = Outgoing {
            method: Method::GET,
            body: Bytes::new(),
            session: state.upstream_session(&target.name).map(str::to_string),
            headers: forward_headers(&parts.headers, &opts.extra_headers),
        };
        // The standalone stream lives as long as the session: the request timeout does not
        // apply to it, only the wait for its headers.
        let opts = CallOptions {
            deadline: None,
            backend_timeout: opts.backend_timeout.or(Some(self.options.request_timeout)),
            ..opts.clone()
        };
        let resp = self.send(target, out, &opts).await?;
        let status = resp.status();
        if status == StatusCode::OK && media_type(resp.headers()).as_deref() == Some("text/event-stream") {
            // Filtered too: a replay (`Last-Event-ID`) can carry answers to list requests.
            let rewrite = stream::Rewrite { prefix: Vec::new(), authorizer: opts.authorizer.clone() };
            return Ok(sse_response(stream::relay_events(
                target.name.clone(),
                resp.into_body(),
                &[],
                self.limits.max_response,
                None,
                rewrite,
            )));
        }
        if status == StatusCode::NOT_FOUND && state.upstream_session(&target.name).is_some() {
            return Err(RelayError::SessionUnknown);
        }
        if status.is_client_error() || (status.is_success() && opts.authorizer.is_none()) {
            return Ok(self.pass_through(target, resp, &opts).await?);
        }
        Err(UpstreamFailure { target: target.name.clone(), kind: FailureKind::Status(status) }.into())
    }

    pub(super) async fn delete(
        &self,
        backend: &Backend,
        parts: &Parts,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError> {
        let state = self.session(&parts.headers, backend, &opts.caller)?;
        let target = &backend.targets[0];
        let Some(session) = state.upstream_session(&target.name) else {
            // Nothing to end upstream: the session lived only in the id.
            return Ok(empty_response(StatusCode::OK));
        };
        let out = Outgoing {
            method: Method::DELETE,
            body: Bytes::new(),
            session: Some(session.to_string()),
            headers: forward_headers(&parts.headers, &opts.extra_headers),
        };
        let resp = self.send(target, out, opts).await?;
        match resp.status() {
            s if s.is_success() => Ok(empty_response(s)),
            StatusCode::NOT_FOUND => Err(RelayError::SessionUnknown),
            s if s.is_client_error() => Ok(self.pass_through(target, resp, opts).await?),
            s => Err(UpstreamFailure { target: target.name.clone(), kind: FailureKind::Status(s) }.into()),
        }
    }

    /// Sends to the upstream, bounded by the backend timeout and the request deadline.
    async fn send(
        &self,
        target: &Target,
        mut out: Outgoing,
        opts: &CallOptions,
    ) -> Result<Response<Incoming>, UpstreamFailure> {
        let span = self.begin_upstream(opts);
        if let Some(s) = &span {
            out.headers.insert(crate::trace::TRACEPARENT, s.traceparent());
        }
        let Upstream::Http(http) = &target.upstream else {
            return Err(UpstreamFailure {
                target: target.name.clone(),
                kind: FailureKind::Io("not a Streamable HTTP target".into()),
            });
        };
        let started = std::time::Instant::now();
        let fut = http.client(&self.client).send(http.request(out));
        let (limit, at) = effective_limit(opts);
        let result = match at {
            Some(at) => match tokio::time::timeout_at(at, fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(UpstreamFailure { target: target.name.clone(), kind: FailureKind::Timeout(limit) });
                }
            },
            None => fut.await,
        };
        self.metrics.upstream_call(&target.name, started.elapsed());
        match &result {
            Ok(r) => self.end_upstream(opts, span, &target.name, Some(r.status().as_u16()), None),
            Err(e) => self.end_upstream(opts, span, &target.name, None, Some(e.to_string())),
        }
        result.map_err(|e| UpstreamFailure {
            target: target.name.clone(),
            kind: match e {
                SendError::Connect(d) => FailureKind::Connect(d),
                SendError::Other(d) => FailureKind::Io(d),
            },
        })
    }

    async fn read_upstream(
        &self,
        target: &Target,
        body: Incoming,
        opts: &CallOptions,
    ) -> Result<Bytes, UpstreamFailure> {
        let fail = |kind| UpstreamFailure { target: target.name.clone(), kind };
        let read = read_limited(body, self.limits.max_response);
        let result = match opts.deadline {
            Some((at, limit)) => {
                tokio::time::timeout_at(at, read).await.map_err(|_| fail(FailureKind::Timeout(limit)))?
            }
            None => read.await,
        };
        result.map_err(|e| match e {
            ReadError::TooLarge { limit } => fail(FailureKind::TooLarge(limit)),
            ReadError::Io(e) => fail(FailureKind::Io(crate::upstream::error_chain(e.as_ref()))),
        })
    }

    /// Forwards an upstream answer that is not ours to interpret (e.g. a 400 with its reason).
    async fn pass_through(
        &self,
        target: &Target,
        resp: Response<Incoming>,
        opts: &CallOptions,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let (parts, body) = resp.into_parts();
        let bytes = self.read_upstream(target, body, opts).await?;
        let mut out = Response::new(body::full(bytes));
        *out.status_mut() = parts.status;
        if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
            out.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        for name in [http::header::WWW_AUTHENTICATE, ALLOW, http::header::RETRY_AFTER] {
            for v in parts.headers.get_all(&name) {
                out.headers_mut().append(name.clone(), v.clone());
            }
        }
        Ok(out)
    }
}
