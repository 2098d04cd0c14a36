//! Legacy HTTP+SSE upstreams (protocol 2024-11-05): a long-lived `GET` whose first event
//! names the endpoint to `POST` messages to; every answer arrives on the event stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::HttpClient;
use super::conn::{ConnError, Router, ServerEvent};
use crate::body;
use crate::sse::Decoder;

/// How long to wait for the `endpoint` event.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open legacy SSE session.
#[derive(Debug)]
pub struct SseConn {
    pub router: Arc<Router>,
    client: HttpClient,
    endpoint: Uri,
    headers: HeaderMap,
    reader: JoinHandle<()>,
}

impl SseConn {
    /// Opens the event stream and waits for the endpoint.
    pub async fn open(
        target: &str,
        url: &Uri,
        client: HttpClient,
        headers: HeaderMap,
        max_event: usize,
        events: mpsc::Sender<ServerEvent>,
    ) -> Result<Arc<SseConn>, ConnError> {
        let mut req = Request::builder().method(Method::GET).uri(url.clone()).header(ACCEPT, "text/event-stream");
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let req = req.body(body::empty()).map_err(|e| ConnError::Write(e.to_string()))?;
        let resp = client.send(req).await.map_err(|e| ConnError::Write(e.to_string()))?;
        if resp.status() != StatusCode::OK {
            return Err(ConnError::Write(format!("GET {url} answered HTTP {}", resp.status())));
        }
        let mut body = resp.into_body();
        let router = Arc::new(Router::new(target.to_string(), events));
        let mut decoder = Decoder::new(max_event);

        // The first event names the endpoint.
        let endpoint = tokio::time::timeout(ENDPOINT_TIMEOUT, async {
            loop {
                while let Some(ev) = decoder.next_event().map_err(|e| ConnError::Write(e.to_string()))? {
                    if ev.event.as_deref() == Some("endpoint") {
                        return Ok::<String, ConnError>(ev.data().to_owned());
                    }
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            decoder.feed(&data);
                        }
                    }
                    Some(Err(e)) => return Err(ConnError::Write(e.to_string())),
                    None => return Err(ConnError::Closed),
                }
            }
        })
        .await
        .map_err(|_| ConnError::Write("no `endpoint` event from the SSE upstream".into()))??;
        let endpoint =
            resolve(url, endpoint.trim()).ok_or_else(|| ConnError::Write(format!("bad endpoint `{endpoint}`")))?;
        if endpoint.authority() != url.authority() {
            // An upstream must not send the gateway's messages (and credentials) elsewhere.
            return Err(ConnError::Write(format!("endpoint `{endpoint}` is not on the SSE server's host")));
        }

        let r = router.clone();
        let reader = tokio::spawn(async move {
            loop {
                loop {
                    match decoder.next_event() {
                        Ok(Some(ev)) if ev.is_message() => match serde_json::from_str::<Value>(ev.data()) {
                            Ok(Value::Array(batch)) => {
                                for m in batch {
                                    r.dispatch(m).await;
                                }
                            }
                            Ok(m) => r.dispatch(m).await,
                            Err(_) => warn!(target = %r.target, "SSE upstream sent an event that is not JSON; ignored"),
                        },
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            warn!(target = %r.target, error = %e, "SSE upstream stream refused");
                            r.close();
                            return;
                        }
                    }
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            decoder.feed(&data);
                        }
                    }
                    Some(Err(e)) => {
                        debug!(target = %r.target, error = %e, "SSE upstream stream failed");
                        break;
                    }
                    None => break,
                }
            }
            r.close();
        });
        Ok(Arc::new(SseConn { router, client, endpoint, headers, reader }))
    }

    /// POSTs one message (or batch) to the endpoint.
    pub async fn send(&self, message: Bytes) -> Result<(), ConnError> {
        if self.router.is_closed() {
            return Err(ConnError::Closed);
        }
        let mut req =
            Request::builder().method(Method::POST).uri(self.endpoint.clone()).header(CONTENT_TYPE, "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let req = req.body(body::full(message)).map_err(|e| ConnError::Write(e.to_string()))?;
        let resp = self.client.send(req).await.map_err(|e| ConnError::Write(e.to_string()))?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() { Ok(()) } else { Err(ConnError::Write(format!("POST answered HTTP {status}"))) }
    }

    pub async fn close(&self) {
        self.router.close();
        self.reader.abort();
    }
}

impl Drop for SseConn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Resolves the endpoint (usually a path with a session parameter) against the SSE URL.
fn resolve(base: &Uri, endpoint: &str) -> Option<Uri> {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        return endpoint.parse().ok();
    }
    let path = if endpoint.starts_with('/') {
        endpoint.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{endpoint}")
    };
    Uri::builder().scheme(base.scheme()?.clone()).authority(base.authority()?.clone()).path_and_query(path).build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_against_the_stream_url() {
        let base: Uri = "http://localhost:3001/sse".parse().unwrap();
        assert_eq!(resolve(&base, "/message?sessionId=1").unwrap(), "http://localhost:3001/message?sessionId=1");
        assert_eq!(resolve(&base, "message?sessionId=1").unwrap(), "http://localhost:3001/message?sessionId=1");
        assert_eq!(resolve(&base, "http://evil.example/m").unwrap().authority().unwrap(), "evil.example");
    }
}
