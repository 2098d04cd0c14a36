//! A gRPC unary call over HTTP/2 cleartext, for the policies that ask another service
//! (`remoteRateLimit`, `extAuthz`): one request message, one answer, a deadline and a size cap.
//!
//! Framing (gRPC over HTTP/2): each message is a 1-byte compression flag (always 0 here), a
//! 4-byte big-endian length and the protobuf bytes; the outcome is the `grpc-status` trailer
//! (or header, for an answer with no body). Connections are pooled per worker thread, like
//! upstream connections, and HTTP/2 multiplexes every call of a worker on one connection.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest answer accepted from a policy service (its message, framed).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Why a call failed. None of these carry what was sent.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("call failed: {0}")]
    Transport(String),
    #[error("answered HTTP {0}, not gRPC")]
    Http(u16),
    #[error("gRPC status {code}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Status { code: u32, message: String },
    #[error("answer larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("malformed answer: {0}")]
    Malformed(String),
}

type Pool = Client<HttpConnector, Full<Bytes>>;

thread_local! {
    static POOL: std::cell::OnceCell<Pool> = const { std::cell::OnceCell::new() };
}

/// This worker's pool of HTTP/2 connections to policy services.
fn pool() -> Pool {
    POOL.with(|p| {
        p.get_or_init(|| {
            let mut http = HttpConnector::new();
            http.set_connect_timeout(Some(CONNECT_TIMEOUT));
            http.set_nodelay(true);
            Client::builder(TokioExecutor::new())
                .http2_only(true)
                .pool_idle_timeout(Duration::from_secs(90))
                .build(http)
        })
        .clone()
    })
}

/// How long connecting to a policy service may take (within the call's deadline).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A gRPC service at `host:port`.
#[derive(Debug, Clone)]
pub struct Service {
    authority: http::uri::Authority,
}

impl Service {
    /// `host:port`, as validated by the config.
    pub fn new(host_port: &str) -> Result<Service, String> {
        host_port.parse().map(|authority| Service { authority }).map_err(|_| format!("`{host_port}` is not host:port"))
    }

    /// Calls `path` (`/package.Service/Method`) with `request`; the whole call, connecting
    /// included, ends within `deadline`.
    pub async fn call<Q: prost::Message, A: prost::Message + Default>(
        &self,
        path: &'static str,
        request: &Q,
        deadline: Duration,
    ) -> Result<A, GrpcError> {
        match tokio::time::timeout(deadline, self.exchange(path, request)).await {
            Ok(r) => r,
            Err(_) => Err(GrpcError::Timeout(deadline)),
        }
    }

    async fn exchange<Q: prost::Message, A: prost::Message + Default>(
        &self,
        path: &'static str,
        request: &Q,
    ) -> Result<A, GrpcError> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| GrpcError::Transport(e.to_string()))?;
        let mut req = Request::new(Full::new(frame(request)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        let resp = pool().request(req).await.map_err(|e| {
            let detail = agw_mcp::upstream::error_chain(&e);
            if e.is_connect() { GrpcError::Connect(detail) } else { GrpcError::Transport(detail) }
        })?;
        if !resp.status().is_success() {
            return Err(GrpcError::Http(resp.status().as_u16()));
        }
        let header_status = status_of(resp.headers());
        let collected = Limited::new(resp.into_body(), MAX_MESSAGE + 5).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                GrpcError::TooLarge
            } else {
                GrpcError::Transport(e.to_string())
            }
        })?;
        let status = collected.trailers().and_then(status_of).or(header_status);
        match status {
            Some((0, _)) => {}
            Some((code, message)) => return Err(GrpcError::Status { code, message }),
            None => return Err(GrpcError::Malformed("no grpc-status".into())),
        }
        let message = unframe(collected.to_bytes()).map_err(GrpcError::Malformed)?;
        A::decode(message).map_err(|e| GrpcError::Malformed(e.to_string()))
    }
}

/// `grpc-status` and `grpc-message` (the message cut short: it reaches the log).
fn status_of(h: &http::HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = h.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or("");
    Some((code, message.chars().take(200).collect()))
}

/// One message, framed (uncompressed).
pub fn frame<M: prost::Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.put_u8(0);
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Cannot fail: the buffer has room for the encoded length.
    let _ = m.encode(&mut out);
    out.freeze()
}

/// The one message of a unary body. A compressed message is refused (none is ever asked for).
pub fn unframe(mut body: Bytes) -> Result<Bytes, String> {
    if body.len() < 5 {
        return Err(format!("{} bytes, less than a gRPC frame header", body.len()));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err("compressed message".into());
    }
    if len > MAX_MESSAGE {
        return Err(format!("message of {len} bytes, more than {MAX_MESSAGE}"));
    }
    if body.len() < len {
        return Err(format!("message of {len} bytes cut at {}", body.len()));
    }
    Ok(body.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Probe {
        #[prost(string, tag = "1")]
        text: String,
    }

    #[test]
    fn frames_round_trip() {
        let m = Probe { text: "hello".into() };
        let framed = frame(&m);
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 7]);
        let back = Probe::decode(unframe(framed).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_frames_are_refused() {
        assert!(unframe(Bytes::from_static(&[0, 0, 0])).is_err());
        assert!(unframe(Bytes::from_static(&[1, 0, 0, 0, 0])).is_err());
        assert!(unframe(Bytes::from_static(&[0, 0, 0, 0, 9, 1])).is_err());
        assert!(unframe(Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff])).is_err());
    }
}
