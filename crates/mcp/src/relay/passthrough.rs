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
use crate::authz::{self, Authorizer, ListKind, ListRequests};
use crate::body::{self, Body, BoxError, ReadError, read_limited};
use crate::error::{FailureKind, RelayError, UpstreamFailure};
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
    /// Forwarded list requests, whose answers are filtered.
    lists: ListRequests,
}

impl Plan {
    fn new(msgs: &jsonrpc::Body<'_>, bytes: &Bytes, target: &str, authz: Option<&dyn Authorizer>) -> Plan {
        let Some(authz) = authz else {
            let pending = msgs.requests().filter_map(|m| m.id.map(ToOwned::to_owned)).collect();
            return Plan { forward: Some(bytes.clone()), pending, denied: Vec::new(), lists: Vec::new() };
        };
        let mut kept = Vec::new();
        let mut denied = Vec::new();
        let mut lists = Vec::new();
        for m in &msgs.messages {
            if m.kind == Kind::Request {
                if let Some(answer) = authz::denied_call(m, target, authz) {
                    denied.push(answer);
                    continue;
                }
                if let (Some(kind), Some(id)) = (m.method().and_then(ListKind::of), m.id.and_then(authz::raw_id)) {
                    lists.push((id, kind));
                }
            }
            kept.push(m);
        }
        let pending =
            kept.iter().filter(|m| m.kind == Kind::Request).filter_map(|m| m.id.map(ToOwned::to_owned)).collect();
        let forward = match (kept.len(), denied.is_empty()) {
            (0, _) => None,
            (_, true) => Some(bytes.clone()),
            _ => Some(authz::join_array(kept.iter().map(|m| m.raw.get().as_bytes()))),
        };
        Plan { forward, pending, denied, lists }
    }

    /// The answer when nothing needs the upstream's: the refused calls' errors.
    fn answer_alone(&self, batch: bool) -> Bytes {
        match (&self.denied[..], batch) {
            ([one], false) => one.clone(),
            (all, _) => authz::join_array(all.iter().map(|b| &b[..])),
        }
    }

    /// Filters list answers and adds the refused calls' errors to a JSON answer.
    fn rewrite_json(&self, bytes: Bytes, target: &str, authz: Option<&dyn Authorizer>) -> Bytes {
        let Some(authz) = authz.filter(|_| !self.lists.is_empty() || !self.denied.is_empty()) else { return bytes };
        let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else { return bytes };
        let mut changed = false;
        let messages: Vec<&mut Value> = match &mut value {
            Value::Array(items) => items.iter_mut().collect(),
            one => vec![one],
        };
        for m in messages {
            if let Some(kind) = authz::list_kind_of(m, &self.lists) {
                changed |= authz::filter_list(m, kind, target, authz);
            }
        }
        if !self.denied.is_empty() {
            let mut all = match value {
                Value::Array(items) => items,
                one => vec![one],
            };
            all.extend(self.denied.iter().filter_map(|d| serde_json::from_slice::<Value>(d).ok()));
            value = Value::Array(all);
            changed = true;
        }
        if changed { Bytes::from(serde_json::to_vec(&value).expect("JSON re-serialises")) } else { bytes }
    }
}

impl Relay {
    pub(super) async fn post<B>(
        &self,
        backend: &Backend,
        parts: &Parts,
        body: B,
        opts: &CallOptions,
    ) -> Result<Response<Body>, RelayError>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let bytes = read_limited(body, self.limits.max_request).await.map_err(|e| match e {
            ReadError::TooLarge { limit } => RelayError::BodyTooLarge { limit },
            ReadError::Io(_) => RelayError::BodyRead,
        })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| RelayError::Parse(jsonrpc::ParseError::Json("body is not UTF-8".into())))?;
        let msgs = jsonrpc::Body::parse(text)?;
        let is_init = msgs.messages.iter().any(|m| m.kind == Kind::Request && m.method() == Some("initialize"));
        if is_init && msgs.batch {
            return Err(RelayError::InitializeInBatch);
        }
        let state = if is_init { None } else { Some(self.session(&parts.headers, backend)?) };
        let target = &backend.targets[0];
        let plan = Plan::new(&msgs, &bytes, &target.name, opts.authorizer.as_deref());
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
        match self.forward_post(target, out, is_init.then_some(backend.key.as_str()), &plan, opts).await {
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
        // `Some(backend key)` for `initialize`, which gets a session id.
        init: Option<&str>,
        plan: &Plan,
        opts: &CallOptions,
    ) -> Result<Response<Body>, UpstreamFailure> {
        let had_session = out.session.is_some();
        let resp = self.send(target, out, opts).await?;
        let status = resp.status();
        let fail = |kind| UpstreamFailure { target: target.name.clone(), kind };
        let session_header = if let Some(backend_key) = init.filter(|_| status.is_success()) {
            let upstream = resp.headers().get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
            let state = SessionState {
                targets: vec![TargetSession { name: target.name.clone(), session: upstream }],
                backend: backend_key.to_string(),
                init: None,
                nonce: String::new(),
            };
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
                        lists: plan.lists.clone(),
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
                    json_response(StatusCode::OK, plan.rewrite_json(bytes, &target.name, opts.authorizer.as_deref()))
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
        let state = self.session(&parts.headers, backend)?;
        let target = &backend.targets[0];
        let out = Outgoing {
            method: Method::GET,
            body: Bytes::new(),
            session: state.upstream_session(&target.name).map(str::to_string),
            headers: forward_headers(&parts.headers, &opts.extra_headers),
        };
        // The standalone stream lives as long as the session: the request timeout does not
        // apply to it, only the wait for its headers.
        let opts = CallOptions { deadline: None, ..opts.clone() };
        let resp = self.send(target, out, &opts).await?;
        let status = resp.status();
        if status == StatusCode::OK && media_type(resp.headers()).as_deref() == Some("text/event-stream") {
            let rewrite = stream::Rewrite { prefix: Vec::new(), lists: Vec::new(), authorizer: None };
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
        if status.is_client_error() || status.is_success() {
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
        let state = self.session(&parts.headers, backend)?;
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
        out: Outgoing,
        opts: &CallOptions,
    ) -> Result<Response<Incoming>, UpstreamFailure> {
        let Upstream::Http(http) = &target.upstream else {
            return Err(UpstreamFailure {
                target: target.name.clone(),
                kind: FailureKind::Io("not a Streamable HTTP target".into()),
            });
        };
        let fut = self.client.send(http.request(out));
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
