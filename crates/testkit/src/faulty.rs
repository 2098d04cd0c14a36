//! Upstreams that misbehave on purpose, for failure tests. Each answers `initialize` properly
//! (so a session can be made through the gateway) and misbehaves on every other request.

use std::net::SocketAddr;
use std::time::Duration;

use agw_mcp::body::{self, Body, BoxError};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};

use crate::serve::{self, Server};

/// How the upstream misbehaves after `initialize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `200 text/html` with a web page.
    HtmlPage,
    /// `200 application/json` that is not JSON.
    BrokenJson,
    /// `500` with a body.
    ServerError,
    /// Never answers.
    Hang,
    /// Starts an SSE answer, then drops the connection mid-stream.
    ResetMidStream,
    /// An SSE event whose data is not JSON.
    GarbageEvent,
    /// One endless SSE event (no blank line), to hit the event size limit.
    EndlessEvent,
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("loopback")
}

/// Starts a misbehaving upstream at `/mcp`.
pub async fn serve(fault: Fault) -> std::io::Result<Server> {
    serve::app(loopback(), move |req| async move {
        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let msg: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if msg["method"] == "initialize" {
            let result = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {
                "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                "serverInfo": {"name": "faulty", "version": "1"}}});
            let mut r = with_type("application/json", body::full(result.to_string()));
            r.headers_mut().insert("mcp-session-id", "faulty-session".parse().unwrap());
            return r;
        }
        if msg.get("id").is_none() {
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::ACCEPTED;
            return r;
        }
        match fault {
            Fault::HtmlPage => with_type("text/html", body::full("<html><body>Welcome to nginx!</body></html>")),
            Fault::BrokenJson => with_type("application/json", body::full("{\"jsonrpc\": \"2.0\", \"id\": ")),
            Fault::ServerError => {
                let mut r = with_type("text/plain", body::full("internal stack trace: secret-path /srv/app"));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                with_type("text/plain", body::empty())
            }
            Fault::ResetMidStream => {
                let chunks: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                    Ok(Frame::data(Bytes::from_static(b"id: 1\nretry: 1000\ndata: \n\n"))),
                    Ok(Frame::data(Bytes::from_static(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n"))),
                    Err("upstream crashed".into()),
                ];
                let delayed = stream::iter(chunks).then(|c| async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    c
                });
                with_type("text/event-stream", BodyExt::boxed(StreamBody::new(delayed)))
            }
            Fault::GarbageEvent => with_type("text/event-stream", body::full("event: message\ndata: <html>oops</html>\n\n")),
            Fault::EndlessEvent => {
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let endless = stream::iter(std::iter::once(Bytes::from_static(b"data: ")).chain(std::iter::repeat(chunk)))
                    .map(|b| Ok::<_, BoxError>(Frame::data(b)));
                with_type("text/event-stream", BodyExt::boxed(StreamBody::new(endless)))
            }
        }
    })
    .await
}

fn with_type(ct: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert("content-type", ct.parse().unwrap());
    r
}

/// A loopback URL where nothing listens.
pub async fn refused_url() -> String {
    let l = tokio::net::TcpListener::bind(loopback()).await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}/mcp")
}
