//! `buffer`: the request body is read (up to `maxBytes`) before the backend gets it, the
//! response body before the client does. A read request body goes on with its
//! `Content-Length`, and `retry` may replay it (up to `maxBytes` instead of 64 KiB). With
//! `failOpen`, a longer body goes on as the bytes read followed by the rest, streaming.

use std::pin::Pin;
use std::task::{Context, Poll};

use agw_config::model::{self, BufferFailureMode};
use agw_http::body::{Body, BoxError};
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING, UPGRADE};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;

use crate::error::GatewayError;
use crate::listener::Admitted;

/// `maxBytes` unless configured (agentgateway's default `maxBufferSize`).
const DEFAULT_MAX: usize = 2 << 20;

#[derive(Debug)]
pub(crate) struct Buffer {
    request: Option<Side>,
    response: Option<Side>,
}

#[derive(Debug, Clone, Copy)]
struct Side {
    max: usize,
    open: bool,
}

/// On a request whose body `buffer` read whole: how much `retry` may replay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buffered(pub(crate) u64);

impl Buffer {
    pub(crate) fn resolve(b: &model::Buffer) -> Buffer {
        let side = |s: &model::BufferBody| Side {
            max: s.max_bytes.map_or(DEFAULT_MAX, |n| usize::try_from(n).unwrap_or(DEFAULT_MAX)),
            open: s.failure_mode == Some(BufferFailureMode::FailOpen),
        };
        Buffer { request: b.request.as_ref().map(side), response: b.response.as_ref().map(side) }
    }

    pub(crate) fn has_response(&self) -> bool {
        self.response.is_some()
    }

    pub(crate) async fn request(&self, parts: &mut Parts, body: Admitted) -> Result<Admitted, GatewayError> {
        let Some(side) = self.request else { return Ok(body) };
        if parts.headers.contains_key(UPGRADE) {
            return Ok(body);
        }
        let mut body = body;
        match read_prefix(&mut body, side.max).await {
            Ok(Read::Whole(bytes)) => {
                parts.headers.remove(TRANSFER_ENCODING);
                parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                parts.extensions.insert(Buffered(side.max as u64));
                Ok(Admitted::Read(Some(bytes)))
            }
            Ok(Read::Partial(head)) if side.open => {
                Ok(Admitted::Prefixed(Box::new(Prefixed { head: Some(head), rest: body })))
            }
            Ok(Read::Partial(_)) => Err(GatewayError::BodyTooLarge),
            Err(_) => Err(GatewayError::BadRequestBody),
        }
    }

    pub(crate) async fn response(&self, resp: Response<Body>) -> Response<Body> {
        let Some(side) = self.response else { return resp };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return resp;
        }
        let (mut parts, mut body) = resp.into_parts();
        match read_prefix(&mut body, side.max).await {
            Ok(Read::Whole(bytes)) => {
                parts.headers.remove(TRANSFER_ENCODING);
                parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                Response::from_parts(parts, agw_http::body::full(bytes))
            }
            Ok(Read::Partial(head)) if side.open => {
                Response::from_parts(parts, Prefixed { head: Some(head), rest: body }.boxed())
            }
            Ok(Read::Partial(_)) => {
                tracing::warn!(limit = side.max, "response body larger than buffer.response.maxBytes");
                GatewayError::UpstreamFailed.into_response()
            }
            Err(e) => {
                tracing::warn!(error = %e, "response body could not be read");
                GatewayError::UpstreamFailed.into_response()
            }
        }
    }
}

enum Read {
    /// The whole body.
    Whole(Bytes),
    /// More than the limit: the bytes read so far (at least the limit); the rest is still in
    /// the body.
    Partial(Bytes),
}

/// Reads until the end or until more than `limit` bytes have come.
async fn read_prefix<B>(body: &mut B, limit: usize) -> Result<Read, BoxError>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
            if out.len() > limit {
                return Ok(Read::Partial(out.freeze()));
            }
        }
    }
    Ok(Read::Whole(out.freeze()))
}

/// Bytes already read, then the rest of the body.
pub(crate) struct Prefixed<B> {
    head: Option<Bytes>,
    rest: B,
}

impl<B> http_body::Body for Prefixed<B>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }
}
