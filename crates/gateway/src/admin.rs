//! The admin server (`/ui/`, `/config_dump`) and the readiness server (`/healthz/ready`).

use std::convert::Infallible;
use std::sync::Arc;

use agw_mcp::body::{self, Body};
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Shared;

const UI_PAGE: &str = include_str!("admin/ui.html");

/// Serves a small HTTP app until shutdown. Admin endpoints are local tools: no draining.
async fn serve<F, Fut>(tcp: TcpListener, mut shutdown: watch::Receiver<bool>, app: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app(req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

pub(crate) async fn serve_admin(tcp: TcpListener, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    serve(tcp, shutdown, move |req| {
        let shared = shared.clone();
        async move { admin(&shared, req) }
    })
    .await
}

pub(crate) async fn serve_readiness(tcp: TcpListener, shutdown: watch::Receiver<bool>) {
    let ready = shutdown.clone();
    serve(tcp, shutdown, move |req| {
        let stopping = *ready.borrow();
        async move {
            match (req.method(), req.uri().path()) {
                (&Method::GET, "/healthz/ready") if !stopping => text(StatusCode::OK, "ready\n"),
                (&Method::GET, "/healthz/ready") => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
    })
    .await
}

fn admin(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/" | "/ui" => {
            let mut r = text(StatusCode::FOUND, "");
            r.headers_mut().insert(LOCATION, HeaderValue::from_static("/ui/"));
            r
        }
        "/ui/" => with_type(StatusCode::OK, UI_PAGE.to_string(), "text/html; charset=utf-8"),
        "/config_dump" => {
            let dump = &shared.runtime.load().dump;
            let body = serde_json::to_string_pretty(dump).unwrap_or_else(|_| "{}".into());
            with_type(StatusCode::OK, body, "application/json")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    with_type(status, s.to_string(), "text/plain; charset=utf-8")
}

fn with_type(status: StatusCode, s: String, ct: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(s));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}
