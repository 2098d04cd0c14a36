//! Forwarding an upstream SSE stream to the client, event by event, as it arrives.
//!
//! Events are passed on byte for byte unless authorization has to change one. The relay
//! watches them: it notes which of the client's requests have been answered, so that if the
//! upstream fails mid-stream each unanswered request still gets a JSON-RPC error instead of
//! silence. With an authorizer, every message event is read in full and any list in it is
//! filtered, whatever request it answers (replayed and standalone streams included); an
//! event that cannot be read is not passed on. A stream the upstream ends cleanly is just
//! ended: under SSE polling the client resumes it with `Last-Event-ID`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::warn;

use std::sync::Arc;

use crate::authz::{self, Authorizer};
use crate::body::{Body, BoxError};
use crate::error::{FailureKind, RelayError, UpstreamFailure};
use crate::jsonrpc::{self, Kind};
use crate::sse::{Decoder, Event};

/// Changes to make while relaying: answers to put first, and the rules lists are filtered by.
pub(crate) struct Rewrite {
    /// Complete events sent before anything from the upstream.
    pub(crate) prefix: Vec<Bytes>,
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
}

struct State {
    target: String,
    rewrite: Rewrite,
    upstream: Incoming,
    decoder: Decoder,
    /// Ids of the client's requests not yet answered, parsed so that `1` and `1.0`-style
    /// spelling differences do not matter.
    pending: Vec<Value>,
    deadline: Option<(Instant, Duration)>,
    finished: bool,
}

/// Turns an upstream SSE body into the client's SSE body.
pub(super) fn relay_events(
    target: String,
    upstream: Incoming,
    pending: &[Box<RawValue>],
    max_event: usize,
    deadline: Option<(Instant, Duration)>,
    rewrite: Rewrite,
) -> Body {
    let pending = pending.iter().filter_map(|id| serde_json::from_str(id.get()).ok()).collect();
    let state =
        State { target, rewrite, upstream, decoder: Decoder::new(max_event), pending, deadline, finished: false };
    let frames = stream::unfold(state, |mut st| async move {
        let bytes = st.next_bytes().await?;
        Some((Ok::<_, BoxError>(Frame::data(bytes)), st))
    });
    BodyExt::boxed(StreamBody::new(frames))
}

impl State {
    /// The next bytes for the client, or `None` when the stream is over.
    async fn next_bytes(&mut self) -> Option<Bytes> {
        if !self.rewrite.prefix.is_empty() {
            let prefix: Vec<u8> = self.rewrite.prefix.drain(..).flat_map(|b| b.to_vec()).collect();
            return Some(Bytes::from(prefix));
        }
        loop {
            if self.finished {
                return None;
            }
            match self.decoder.next_event() {
                Ok(Some(event)) => match self.inspect(&event) {
                    Ok(None) => return Some(event.raw),
                    Ok(Some(rewritten)) => return Some(rewritten),
                    Err(detail) => return Some(self.fail(FailureKind::Garbage(detail))),
                },
                Ok(None) => {}
                Err(too_large) => return Some(self.fail(FailureKind::TooLarge(too_large.limit))),
            }
            match self.read_frame().await {
                Ok(Some(data)) => self.decoder.feed(&data),
                Ok(None) => {
                    self.finished = true;
                    return None;
                }
                Err(kind) => return Some(self.fail(kind)),
            }
        }
    }

    async fn read_frame(&mut self) -> Result<Option<Bytes>, FailureKind> {
        loop {
            let next = match self.deadline {
                Some((at, limit)) => match tokio::time::timeout_at(at, self.upstream.frame()).await {
                    Ok(f) => f,
                    Err(_) => return Err(FailureKind::Timeout(limit)),
                },
                None => self.upstream.frame().await,
            };
            match next {
                None => return Ok(None),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
                Some(Err(e)) => return Err(FailureKind::Io(crate::upstream::error_chain(&e))),
            }
        }
    }

    /// Notes answered requests; refuses events that are not JSON-RPC; returns a replacement
    /// for an event that had to change (a filtered list).
    fn inspect(&mut self, event: &Event) -> Result<Option<Bytes>, String> {
        let policed = self.rewrite.authorizer.is_some();
        if !event.is_message() || (self.pending.is_empty() && !policed) {
            return Ok(None);
        }
        let body = jsonrpc::Body::parse(event.data()).map_err(|e| format!("event is not JSON-RPC: {e}"))?;
        if let Some(authz) = &self.rewrite.authorizer
            && body.messages.iter().any(|m| m.kind == Kind::Notification && m.method() == Some(authz::LIST_CHANGED))
        {
            authz.list_changed(&self.target);
        }
        for msg in body.messages.iter().filter(|m| m.kind == Kind::Response) {
            if let Some(id) = msg.id.and_then(|id| serde_json::from_str::<Value>(id.get()).ok()) {
                // One answer settles one request.
                if let Some(at) = self.pending.iter().position(|p| *p == id) {
                    self.pending.swap_remove(at);
                }
            }
        }
        match &self.rewrite.authorizer {
            Some(authz) => self.filter_event(event, authz.as_ref()),
            None => Ok(None),
        }
    }

    fn filter_event(&self, event: &Event, authz: &dyn Authorizer) -> Result<Option<Bytes>, String> {
        if !authz::may_need_filtering(event.data().as_bytes())? {
            return Ok(None);
        }
        let mut value: Value =
            serde_json::from_str(event.data()).map_err(|e| format!("event cannot be checked: {e}"))?;
        let changed = authz::filter_all(&mut value, &self.target, authz);
        Ok(changed.then(|| {
            Event::encode_message(&serde_json::to_vec(&value).expect("JSON re-serialises"), event.id.as_deref())
        }))
    }

    /// Ends the stream with an error event for every unanswered request.
    fn fail(&mut self, kind: FailureKind) -> Bytes {
        self.finished = true;
        let failure = UpstreamFailure { target: self.target.clone(), kind };
        match failure.kind.detail() {
            Some(detail) => {
                warn!(target = %failure.target, error = %failure, detail, "upstream stream failed")
            }
            None => warn!(target = %failure.target, error = %failure, "upstream stream failed"),
        }
        let rpc = RelayError::Upstream(failure).to_rpc();
        let mut out = Vec::new();
        for id in self.pending.drain(..) {
            let raw = RawValue::from_string(id.to_string()).expect("ids re-serialise");
            out.extend_from_slice(&Event::encode_message(&jsonrpc::error_response(Some(&raw), &rpc), None));
        }
        Bytes::from(out)
    }
}
