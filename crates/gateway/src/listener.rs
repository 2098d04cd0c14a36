//! Accepting connections on a bind and taking each request through listener → route →
//! policies → backend.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agw_mcp::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::Shared;
use crate::backend;
use crate::error::GatewayError;
use crate::route::{self, Listener};

/// Serves one bind until `shutdown` fires, then lets open requests finish within `drain`.
pub(crate) async fn serve_bind(
    tcp: TcpListener,
    bind_index: usize,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(&shared, bind_index, peer, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(tcp);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        info!(
            port = bind_index,
            "drain time over; closing remaining connections"
        );
    }
}

/// One request, from arrival to response.
pub(crate) async fn handle(
    shared: &Shared,
    bind_index: usize,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let runtime = shared.runtime.load_full();
    let Some(bind) = runtime.binds.get(bind_index) else {
        return GatewayError::ShuttingDown.into_response();
    };
    let (parts, body) = req.into_parts();
    let host = route::request_host(&parts);
    let Some(listener) = Listener::select(&bind.listeners, &host) else {
        return GatewayError::NoListener.into_response();
    };
    let Some(route) = listener.route(&parts, &host) else {
        debug!(listener = %listener.name, path = parts.uri.path(), "no route");
        return GatewayError::NoRoute.into_response();
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let req = Request::from_parts(parts, body);
    let mut resp = backend::call(
        &route.backend,
        &route.policies,
        &shared.relay,
        &shared.client,
        peer,
        req,
    )
    .await;
    route.policies.response_headers.apply(resp.headers_mut());
    debug!(listener = %listener.name, route = %route.name, %method, path, status = resp.status().as_u16(), "request");
    resp
}
