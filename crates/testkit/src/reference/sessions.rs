//! rmcp's local session manager, plus a note of which HTTP request stream carries which
//! JSON-RPC request, so that `test_reconnection` can close its own stream (SSE polling).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::Stream;
use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::RequestContext;
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use tokio::sync::Mutex;

#[derive(Default)]
pub(super) struct Sessions {
    inner: LocalSessionManager,
    /// (session id, JSON-RPC id) → rmcp's HTTP request id.
    streams: Mutex<HashMap<(String, String), u64>>,
}

impl Sessions {
    /// Ends the SSE stream that carries the request of `c`, asking the client to come back
    /// after 500 ms with `Last-Event-ID`.
    pub(super) async fn close_request_stream(&self, c: &RequestContext<RoleServer>) {
        let session = c
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(session) = session else { return };
        let key = (session.clone(), c.id.to_string());
        let Some(http_id) = self.streams.lock().await.get(&key).copied() else {
            return;
        };
        let handle = self.inner.sessions.read().await.get(&SessionId::from(session)).cloned();
        if let Some(handle) = handle {
            let _ = handle.close_sse_stream(http_id, Some(Duration::from_millis(500))).await;
        }
    }
}

impl SessionManager for Sessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        m: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, m).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.streams.lock().await.retain(|(s, _), _| s.as_str() != id.as_ref());
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let handle = self
            .inner
            .sessions
            .read()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| LocalSessionManagerError::SessionNotFound(id.clone()))?;
        let receiver = handle.establish_request_wise_channel().await?;
        if let (ClientJsonRpcMessage::Request(req), Some(http_id)) = (&message, receiver.http_request_id) {
            let mut streams = self.streams.lock().await;
            // Only the latest requests matter; keep a long-running server's memory bounded.
            if streams.len() >= 10_000 {
                streams.clear();
            }
            streams.insert((id.to_string(), req.id.to_string()), http_id);
        }
        handle.push_message(message, receiver.http_request_id).await?;
        Ok(tokio_stream::wrappers::ReceiverStream::new(receiver.inner))
    }

    async fn accept_message(&self, id: &SessionId, m: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.inner.accept_message(id, m).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last).await
    }
}
