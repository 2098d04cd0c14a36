//! Serving test HTTP apps on loopback with hyper, stoppable from the test.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

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
    /// An HTTPS server: the server name (SNI) of each handshake that completed, in order.
    pub tls_names: Option<Arc<Mutex<Vec<Option<String>>>>>,
}

impl Server {
    /// `http://127.0.0.1:<port><path>` (`https://` for an HTTPS server).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls_names.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// The SNI names of the handshakes so far (HTTPS servers).
    pub fn tls_names(&self) -> Vec<Option<String>> {
        self.tls_names.as_ref().map(|n| n.lock().unwrap().clone()).unwrap_or_default()
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
    app_tls(addr, None, app).await
}

/// [`app`] over TLS with `tls` (see [`crate::tls::server_config`]) when given.
pub async fn app_tls<F, Fut>(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: F,
) -> std::io::Result<Server>
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let tcp = TcpListener::bind(addr).await?;
    let tls_names = tls.as_ref().map(|_| Arc::new(Mutex::new(Vec::new())));
    let names = tls_names.clone();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
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
            let builder = builder.clone();
            let (acceptor, names) = (acceptor.clone(), names.clone());
            let mut stop_conn = stopped.clone();
            tokio::spawn(async move {
                let serve = async move {
                    match acceptor {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            // A refused client certificate ends the connection here.
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            if let Some(names) = names {
                                names.lock().unwrap().push(stream.get_ref().1.server_name().map(str::to_string));
                            }
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stop_conn.changed() => {}
                }
            });
        }
    });
    Ok(Server { addr, stop, task: Some(task), tls_names })
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
    tower_at_tls(addr, None, path, service).await
}

/// [`tower_at`] over TLS when `tls` is given.
pub async fn tower_at_tls<S, B>(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    path: &'static str,
    service: S,
) -> std::io::Result<Server>
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
    app_tls(addr, tls, move |req: Request<Incoming>| {
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

/// A loopback server that answers with `answer` and keeps a record (`T`) of each request it
/// was asked, in order: the shape of the test kit's policy services.
pub struct Recording<T> {
    pub server: Server,
    seen: Arc<Mutex<Vec<T>>>,
}

impl<T: Clone + Send + 'static> Recording<T> {
    /// `answer` gets each request and the record to add to.
    pub async fn start<F, Fut>(answer: F) -> std::io::Result<Recording<T>>
    where
        F: Fn(Request<Incoming>, Arc<Mutex<Vec<T>>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let server = app(addr, move |req| answer(req, sink.clone())).await?;
        Ok(Recording { server, seen })
    }

    /// `host:port`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// What was asked so far.
    pub fn seen(&self) -> Vec<T> {
        self.seen.lock().expect("lock").clone()
    }
}
