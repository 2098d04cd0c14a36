//! The admin server (`/ui/`, `/config_dump`, `/logging`), the readiness server
//! (`/healthz/ready`) and the metrics server (`/metrics`).

use std::sync::Arc;

use agw_http::body::{self, Body};
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Shared;

mod api;

const UI_PAGE: &str = include_str!("admin/ui.html");

/// Serves a small HTTP app until shutdown. Admin endpoints are local tools: no draining.
async fn serve<F, Fut>(tcp: TcpListener, mut shutdown: watch::Receiver<bool>, app: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    // The same per-connection watchdog as traffic ports: a client that connects and sends
    // nothing must not keep the admin or readiness port's descriptors.
    let (builder, timeouts) = crate::conn::admin_builder();
    loop {
        let stream = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let serve = crate::conn::Serve {
            builder: &builder,
            timeouts,
            grace: std::time::Duration::ZERO,
            shutdown: shutdown.clone(),
            metrics: None,
        };
        let conn = crate::conn::serve(stream, crate::conn::ConnState::new(), serve, app.clone());
        let mut stop = shutdown.clone();
        // Admin endpoints are local tools: no draining.
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
        async move {
            // DNS rebinding: a web page whose name now resolves to this machine reaches the
            // admin server with that name in `Host`. Only IP addresses and `localhost` are
            // answered (rebinding needs a DNS name), on any bind address.
            if !admin_host(&req) {
                return text(
                    StatusCode::FORBIDDEN,
                    "the admin server answers only to an IP address or localhost (DNS rebinding protection)\n",
                );
            }
            if req.uri().path().starts_with("/ui/api/") { api::handle(&shared, req).await } else { admin(&shared, req) }
        }
    })
    .await
}

pub(crate) async fn serve_stats(tcp: TcpListener, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    serve(tcp, shutdown, move |req| {
        let shared = shared.clone();
        async move {
            match (req.method(), req.uri().path()) {
                (&Method::GET, "/metrics") => {
                    let metrics = shared.relay.metrics();
                    metrics.local_sessions.set(i64::try_from(shared.relay.locals().len()).unwrap_or(i64::MAX));
                    with_type(StatusCode::OK, metrics.encode(), "text/plain; version=0.0.4; charset=utf-8")
                }
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
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
    if req.uri().path() == "/logging" {
        return logging(shared, &req);
    }
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

/// `GET /logging` shows the log filter; `POST /logging?level=<filter>` replaces it (e.g.
/// `debug`, or `info,access=off`). A browser page on another origin cannot change it.
fn logging(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    let Some(control) = &shared.log_level else {
        return text(StatusCode::NOT_IMPLEMENTED, "the log level cannot be changed in this process\n");
    };
    match *req.method() {
        Method::GET => with_type(StatusCode::OK, format!("{}\n", control.get()), "text/plain; charset=utf-8"),
        Method::POST | Method::PUT => {
            if !same_origin(req) {
                return text(StatusCode::FORBIDDEN, "cross-origin requests may not change the log level\n");
            }
            let level = req
                .uri()
                .query()
                .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "level").map(|(_, v)| v));
            let Some(level) = level else {
                return text(StatusCode::BAD_REQUEST, "give the new filter as ?level=, e.g. ?level=debug\n");
            };
            match control.set(&level) {
                Ok(()) => {
                    tracing::info!(filter = %level, "log level changed");
                    with_type(StatusCode::OK, format!("{}\n", control.get()), "text/plain; charset=utf-8")
                }
                Err(e) => with_type(
                    StatusCode::BAD_REQUEST,
                    format!("invalid log filter: {e}\n"),
                    "text/plain; charset=utf-8",
                ),
            }
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

/// `Host` (or, in HTTP/2, the URI's authority) is an IP address or `localhost`.
fn admin_host(req: &Request<Incoming>) -> bool {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// No `Origin`, or the admin server's own (`Host`).
pub(super) fn same_origin(req: &Request<Incoming>) -> bool {
    let Some(origin) = req.headers().get(http::header::ORIGIN) else { return true };
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    origin.to_str().ok().and_then(|o| o.split_once("://")).is_some_and(|(_, authority)| authority == host)
}

fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    with_type(status, s.to_string(), "text/plain; charset=utf-8")
}

fn with_type(status: StatusCode, s: String, ct: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(s));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    // The admin page must not be framed by another site (clickjacking).
    r.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    r.headers_mut().insert("content-security-policy", HeaderValue::from_static("frame-ancestors 'none'"));
    r
}
