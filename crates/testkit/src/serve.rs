//! Serving test HTTP apps on loopback with hyper, stoppable from the test.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use agw_mcp::body::{self, Body};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running test server. Dropping it stops it and closes its connections.
pub struct Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting and closes every connection at once (as a crash would).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves `app` on `addr` until the returned server is stopped or dropped.
pub async fn app<F, Fut>(addr: SocketAddr, app: F) -> std::io::Result<Server>
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let tcp = TcpListener::bind(addr).await?;
    let addr = tcp.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let app = Arc::new(app);
    let task = tokio::spawn(async move {
        let mut stopped_accept = stopped.clone();
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let stream = tokio::select! {
                r = tcp.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                _ = stopped_accept.changed() => break,
            };
            // Answers go out as several small writes (an SSE event, then the end of the chunked
            // body): with Nagle's algorithm on, each waits for the client's delayed ACK (~40 ms
            // per call on a keep-alive connection).
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app(req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            let mut stop_conn = stopped.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = conn => {}
                    _ = stop_conn.changed() => {}
                }
            });
        }
    });
    Ok(Server { addr, stop, task: Some(task) })
}

/// Serves a tower service (e.g. rmcp's `StreamableHttpService`) at exactly `path`.
pub async fn tower_at<S, B>(addr: SocketAddr, path: &'static str, service: S) -> std::io::Result<Server>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<body::BoxError>,
{
    app(addr, move |req: Request<Incoming>| {
        let mut service = service.clone();
        async move {
            if req.uri().path() != path {
                let mut r = Response::new(body::full("not found"));
                *r.status_mut() = StatusCode::NOT_FOUND;
                return r;
            }
            match tower_service::Service::call(&mut service, req).await {
                Ok(resp) => resp.map(|b| b.map_err(Into::into).boxed()),
                Err(never) => match never {},
            }
        }
    })
    .await
}
