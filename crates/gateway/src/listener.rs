//! Accepting connections on a bind and taking each request through listener → route →
//! policies → backend.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agw_config::model::AuditMode;
use agw_http::body::{self, Body};
use agw_mcp::authz::Authorizer;
use agw_mcp::metrics::{AuthnLabels, HttpLabels, McpCall, Metrics, RouteLabels};
use agw_mcp::trace::{Attr, Kind, SpanContext, SpanData};
use agw_policy::cors::Cors;
use http::header::{CONTENT_TYPE, HeaderValue, ORIGIN};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::Shared;
use crate::a2a;
use crate::auth::{self, Authn, Identity, Origin};
use crate::authz;
use crate::backend;
use crate::conn;
use crate::error::GatewayError;
use crate::ext_authz::{self, ExtAuthzPolicy};
use crate::oauth;
use crate::ratelimit::{self, RateLimits};
use crate::remote_ratelimit::{self, RemoteRateLimits};
use crate::resolve::{Policies, Runtime};
use crate::route::{self, Listener};
use crate::telemetry::{self, Telemetry};

pub(crate) mod tls;

/// Serves one bind (`port` as configured) until `shutdown` fires, then lets open requests
/// finish within `drain`.
pub(crate) async fn serve_bind(
    tcp: TcpListener,
    port: u16,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    // Metrics and logs name the port really listened on (the config may say 0).
    let actual = tcp.local_addr().map_or(port, |a| a.port());
    let worker = conn::Worker::current(&shared.main_worker);
    let metrics = shared.relay.metrics().clone();
    let mut conns = JoinSet::new();
    let listening = shared.listening.enter();
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
            // Finished connections are reaped as they end.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = shutdown.changed() => break,
        };
        // A reload applies to connections accepted after it.
        let runtime = shared.runtime.load();
        let settings = runtime.frontend.clone();
        let Some(open) = worker.open(settings.max_connections_per_worker, &metrics) else {
            drop(stream);
            continue;
        };
        settings.prepare(&stream);
        let tls = runtime.binds.iter().find(|b| b.port == port).and_then(|b| b.tls.clone());
        drop(runtime);
        let ctx = ConnCtx {
            shared: shared.clone(),
            ports: (port, actual),
            peer,
            stop: shutdown.clone(),
            settings,
            tls: None,
        };
        let (grace, shutdown, metrics) = (drain, shutdown.clone(), metrics.clone());
        conns.spawn(async move {
            let _open = open;
            match tls {
                None => serve_conn(stream, ctx, grace, shutdown, metrics).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok((stream, session)) => {
                        let ctx = ConnCtx { tls: Some(session), ..ctx };
                        serve_conn(stream, ctx, grace, shutdown, metrics).await;
                    }
                    // A client's doing (a scanner, a wrong CA, a cut connection): not a warning.
                    Err(e) => debug!(peer = %peer, error = %e, "TLS handshake refused"),
                },
            }
        });
    }
    drop(tcp);
    drop(listening);
    let drained = tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        info!(port, open = conns.len(), "drain time over; closing remaining connections");
    }
}

/// Serves HTTP on an accepted (and, on HTTPS binds, handshaken) connection.
async fn serve_conn<S>(stream: S, ctx: ConnCtx, grace: Duration, shutdown: watch::Receiver<bool>, metrics: Arc<Metrics>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = ctx.settings.clone();
    let ctx = Arc::new(ctx);
    let app = move |req| serve_request(ctx.clone(), req);
    let serve = conn::Serve {
        builder: &settings.builder,
        timeouts: settings.timeouts,
        grace,
        shutdown,
        metrics: Some(metrics),
    };
    conn::serve(stream, conn::ConnState::new(), serve, app).await;
}

/// What every request of one connection shares (one reference count per request).
struct ConnCtx {
    shared: Arc<Shared>,
    /// The bind's port as configured, and as really listened on.
    ports: (u16, u16),
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    settings: Arc<conn::Settings>,
    /// Set on HTTPS binds.
    tls: Option<tls::Session>,
}

async fn serve_request(ctx: Arc<ConnCtx>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let (body, cut) = conn::GuardedBody::new(body, &ctx.settings, ctx.shared.relay.metrics().clone());
    let req = Request::from_parts(parts, body);
    handle(&ctx, (req, &cut)).await
}

/// The answer to a request whose body was too slow, whatever the backend made of the cut body;
/// the connection is not kept (the rest of the body may still be on its way).
fn body_timed_out(version: http::Version) -> Response<Body> {
    let mut resp = GatewayError::RequestBodyTimeout.into_response();
    if version < http::Version::HTTP_2 {
        resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Where a request went, noted on the way for the access log and metrics.
#[derive(Debug, Default)]
struct Trail {
    port: u16,
    listener: Option<String>,
    route: Option<String>,
    /// The JWT `sub` (or Basic user) of an authenticated caller.
    subject: Option<String>,
    /// This request's span, when traces are exported.
    trace: Option<SpanContext>,
    /// What the telemetry expressions see; only when some are configured.
    cel: Option<Box<telemetry::Captured>>,
}

/// One request, from arrival to response, counted and logged.
async fn handle(
    ctx: &ConnCtx,
    (req, body_cut): (Request<conn::GuardedBody>, &std::sync::atomic::AtomicBool),
) -> Response<Body> {
    let (shared, peer, actual_port) = (&*ctx.shared, ctx.peer, ctx.ports.1);
    let started = std::time::Instant::now();
    let method = req.method().clone();
    // The path only: a query string can hold a credential (`jwtAuth` query location).
    let path = req.uri().path().to_string();
    let mut trail = Trail { port: actual_port, ..Trail::default() };
    // One view of the config for the whole request: a reload in between cannot pair one
    // version's telemetry with another's routes.
    let runtime = shared.runtime.load_full();
    let telemetry = &*runtime.telemetry;
    let req = if telemetry.needs_inputs() {
        let (parts, body) = req.into_parts();
        trail.cel = telemetry.capture(&parts, peer);
        Request::from_parts(parts, body)
    } else {
        req
    };
    let span = shared
        .relay
        .tracer()
        .and_then(|_| telemetry.sample(req.headers(), trail.cel.as_deref()))
        .map(|s| (s, std::time::SystemTime::now()));
    trail.trace = span.map(|((ctx, _), _)| ctx);
    let version = req.version();
    let mut resp = route_request(ctx, &runtime, req, &mut trail).await;
    if body_cut.load(std::sync::atomic::Ordering::Relaxed) {
        resp = body_timed_out(version);
    }
    if method == Method::GET && is_event_stream(&resp) {
        // A standalone SSE stream never ends by itself: at shutdown it ends cleanly, so the
        // client sees the end of the stream (and reconnects elsewhere) instead of a cut.
        resp = resp.map(|b| EndsOnShutdown::wrap(b, ctx.stop.clone()));
    }
    let took = started.elapsed();
    let status = resp.status().as_u16();
    let metrics = shared.relay.metrics();
    let listener = trail.listener.take().unwrap_or_default();
    let route = trail.route.take().unwrap_or_default();
    let mcp = resp.extensions().get::<McpCall>();
    let a2a = resp.extensions().get::<a2a::A2aCall>();
    telemetry.finish(trail.cel.as_deref_mut(), status, mcp);
    let captured = trail.cel.as_deref();
    let done = Done {
        trail: &trail,
        peer,
        listener: &listener,
        route: &route,
        method: &method,
        path: &path,
        status,
        took,
        mcp,
        a2a,
        trace: span.map(|((ctx, _), _)| ctx),
    };
    log_request(shared, telemetry, &done, captured);
    if let Some(((context, parent), start)) = span {
        record_span(shared, telemetry, &done, (context, parent, start), captured);
    }
    metrics
        .requests
        .get_or_create(&HttpLabels {
            bind: trail.port,
            listener: listener.clone(),
            route: route.clone(),
            method: agw_mcp::metrics::http_method_label(&method),
            status,
        })
        .inc();
    if let Some(call) = a2a {
        let labels = agw_mcp::metrics::A2aLabels { route: route.clone(), method: call.method_label(), status };
        metrics.a2a_calls.get_or_create(&labels).inc();
    }
    metrics
        .request_duration
        .get_or_create(&RouteLabels { bind: trail.port, listener, route })
        .observe(took.as_secs_f64());
    resp
}

/// A finished request, as the access log and its OTLP export see it.
struct Done<'a> {
    trail: &'a Trail,
    peer: SocketAddr,
    listener: &'a str,
    route: &'a str,
    method: &'a Method,
    path: &'a str,
    status: u16,
    took: Duration,
    mcp: Option<&'a McpCall>,
    a2a: Option<&'a a2a::A2aCall>,
    trace: Option<SpanContext>,
}

/// The access-log line (target `access`) and, with `accessLog.otlp`, its OTLP record.
fn log_request(shared: &Shared, telemetry: &Telemetry, d: &Done<'_>, captured: Option<&telemetry::Captured>) {
    let (trail, mcp) = (d.trail, d.mcp);
    if telemetry.log_this(captured) {
        let keep = |name: &str| telemetry.keeps(name);
        info!(
            target: "access",
            bind = keep("bind").then_some(trail.port),
            listener = keep("listener").then_some(d.listener),
            route = keep("route").then_some(d.route),
            peer = keep("peer").then_some(tracing::field::display(d.peer)),
            http.method = keep("http.method").then_some(d.method.as_str()),
            http.path = keep("http.path").then_some(d.path),
            http.status = keep("http.status").then_some(d.status),
            duration_ms = keep("duration_ms").then_some((d.took.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
            mcp.method = mcp.map(|c| c.method.as_str()).filter(|_| keep("mcp.method")),
            mcp.target = mcp.and_then(|c| c.target.as_deref()).filter(|_| keep("mcp.target")),
            mcp.tool = mcp.and_then(|c| c.tool.as_deref()).filter(|_| keep("mcp.tool")),
            mcp.requests = mcp.map(|c| c.requests).filter(|n| *n > 1 && keep("mcp.requests")),
            a2a.method = d.a2a.map(|c| c.method.as_str()).filter(|_| keep("a2a.method")),
            a2a.task_id = d.a2a.and_then(|c| c.task_id.as_deref()).filter(|_| keep("a2a.task_id")),
            a2a.context_id = d.a2a.and_then(|c| c.context_id.as_deref()).filter(|_| keep("a2a.context_id")),
            jwt.sub = trail.subject.as_deref().filter(|_| keep("jwt.sub")),
            fields = telemetry.added_fields(captured),
            "request"
        );
    }
    let Some(exporter) = shared.access_exporter.as_ref().filter(|_| telemetry.exports_logs()) else { return };
    let mut builtin: Vec<(&'static str, Attr)> = vec![
        ("bind", i64::from(trail.port).into()),
        ("listener", d.listener.into()),
        ("route", d.route.into()),
        ("peer", d.peer.to_string().into()),
        ("http.method", d.method.as_str().into()),
        ("http.path", d.path.into()),
        ("http.status", i64::from(d.status).into()),
        ("duration_ms", i64::try_from(d.took.as_millis()).unwrap_or(i64::MAX).into()),
    ];
    if let Some(c) = mcp {
        builtin.push(("mcp.method", c.method.as_str().into()));
        builtin.extend(c.target.as_deref().map(|t| ("mcp.target", t.into())));
        builtin.extend(c.tool.as_deref().map(|t| ("mcp.tool", t.into())));
        builtin.extend((c.requests > 1).then(|| ("mcp.requests", i64::try_from(c.requests).unwrap_or(0).into())));
    }
    if let Some(c) = d.a2a {
        builtin.push(("a2a.method", c.method.as_str().into()));
        builtin.extend(c.task_id.as_deref().map(|t| ("a2a.task_id", t.into())));
        builtin.extend(c.context_id.as_deref().map(|t| ("a2a.context_id", t.into())));
    }
    builtin.extend(trail.subject.as_deref().map(|s| ("jwt.sub", s.into())));
    if let Some(record) = telemetry.log_record(builtin, captured, d.trace) {
        exporter.record(record);
    }
}

/// The request's server span, unless `tracing.filter` drops it.
fn record_span(
    shared: &Shared,
    telemetry: &Telemetry,
    d: &Done<'_>,
    (context, parent, start): (SpanContext, Option<[u8; 8]>, std::time::SystemTime),
    captured: Option<&telemetry::Captured>,
) {
    if let Some(tracer) = shared.relay.tracer()
        && telemetry.export_span(captured)
    {
        let mut attributes: Vec<(&'static str, Attr)> = vec![
            ("http.request.method", d.method.as_str().into()),
            ("url.path", d.path.into()),
            ("http.response.status_code", i64::from(d.status).into()),
            ("server.port", i64::from(d.trail.port).into()),
            ("client.address", d.peer.ip().to_string().into()),
        ];
        if !d.route.is_empty() {
            attributes.push(("http.route", d.route.into()));
        }
        if let Some(c) = d.mcp {
            attributes.push(("mcp.method.name", c.method.as_str().into()));
            if let Some(t) = &c.target {
                attributes.push(("mcp.target", t.as_str().into()));
            }
            if let Some(t) = &c.tool {
                attributes.push(("gen_ai.tool.name", t.as_str().into()));
            }
        }
        if let Some(c) = d.a2a {
            attributes.push(("a2a.method", c.method.as_str().into()));
            if let Some(t) = &c.task_id {
                attributes.push(("a2a.task.id", t.as_str().into()));
            }
        }
        if let Some(sub) = &d.trail.subject {
            attributes.push(("enduser.id", sub.as_str().into()));
        }
        let name = match d.mcp {
            Some(McpCall { method, tool: Some(tool), .. }) => format!("{method} {tool}"),
            Some(c) => c.method.clone(),
            None if d.a2a.is_some() => d.a2a.map(|c| c.method.clone()).unwrap_or_default(),
            None if d.route.is_empty() => d.method.as_str().to_string(),
            None => format!("{} {}", d.method.as_str(), d.route),
        };
        tracer.record(SpanData {
            name,
            kind: Kind::Server,
            context,
            parent,
            start,
            end: std::time::SystemTime::now(),
            attributes: telemetry.span_attributes(attributes, captured),
            error: (d.status >= 500).then(|| format!("HTTP {}", d.status)),
        });
    }
}

async fn route_request(
    ctx: &ConnCtx,
    runtime: &Arc<Runtime>,
    req: Request<conn::GuardedBody>,
    trail: &mut Trail,
) -> Response<Body> {
    let (shared, port, peer) = (&*ctx.shared, ctx.ports.0, ctx.peer);
    // The route's `requestTimeout` counts from here (an injected `delay` included).
    let arrived = tokio::time::Instant::now();
    let telemetry = &*runtime.telemetry;
    // A port that a reload removed answers like a stopping gateway while it drains.
    let Some(bind) = runtime.binds.iter().find(|b| b.port == port) else {
        return GatewayError::ShuttingDown.into_response();
    };
    let (mut parts, body) = req.into_parts();
    // Before anything reads the path: routing, policies and backends all see the normal form.
    if let Err(e) = normalize_path(&mut parts) {
        debug!(path = parts.uri.path(), error = %e, "request path refused");
        return e.into_response();
    }
    let host = route::request_host(&parts);
    let Some(listener) = Listener::select(&bind.listeners, &host) else {
        return GatewayError::NoListener.into_response();
    };
    trail.listener = Some(listener.name.clone());
    if let Some(session) = &ctx.tls
        && *session.listener != *listener.name
    {
        // The handshake (SNI) chose another listener, whose certificate and client checks
        // this connection went through: this host must be asked on a connection of its own.
        debug!(sni_listener = %session.listener, host, "request for another listener than the TLS handshake's");
        return GatewayError::MisdirectedRequest.into_response();
    }
    let origin = auth::request_origin(&parts.headers, ctx.tls.is_some(), runtime.trust_forwarded);
    let cors_origin = parts.headers.get(ORIGIN).cloned();
    let listener_cors = listener.policies.cors.as_ref();

    // Before any authentication: CORS preflights (browsers send them without credentials) and
    // `mcpAuthentication`'s public endpoints (how a client learns where and how to get a
    // token: RFC 9728 and RFC 8414 metadata, client registration).
    if let Some(resp) = listener_cors.and_then(|c| preflight(c, &parts)) {
        return resp;
    }
    if let Some(endpoint) = oauth::endpoint(listener, &parts, &host, &origin) {
        return endpoint.answer(&parts, body, &origin).await;
    }
    // The route is chosen by what the client sent, before credentials are taken off.
    let route = listener.route(&parts, &host);
    trail.route = route.map(|r| r.name.clone());
    if let Some(r) = route {
        telemetry.route_chosen(trail.cel.as_deref_mut(), r);
    }
    let route_cors = route.and_then(|r| r.policies.cors.as_ref());
    if let Some(resp) = route_cors.and_then(|c| preflight(c, &parts)) {
        return resp;
    }
    let mut identity = Identity { client_cert: ctx.tls.as_ref().and_then(|t| t.client.clone()), ..Identity::default() };
    let metrics = shared.relay.metrics();
    if let Err(resp) = authenticate(&listener.policies.authn, &mut parts, &mut identity, &origin, metrics).await {
        // The route's CORS too: otherwise a browser cannot read the challenge.
        return decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref());
    }
    let Some(route) = route else {
        debug!(listener = %listener.name, path = parts.uri.path(), "no route");
        return decorate(GatewayError::NoRoute.into_response(), &[listener_cors], cors_origin.as_ref());
    };
    let policies = &route.policies;
    // `oidc`: a browser session, or the way to one (the gateway answers: sign-in redirect,
    // callback, logout); a signed-in caller needs no other route authentication.
    if let Some(oidc) = &policies.oidc
        && let Err(resp) = oidc.apply(&mut parts, &mut identity, !policies.authn.is_empty()).await
    {
        return decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref());
    }
    let signed_in = policies.oidc.is_some() && identity.jwt.is_some();
    if !signed_in && let Err(resp) = authenticate(&policies.authn, &mut parts, &mut identity, &origin, metrics).await {
        return decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref());
    }
    trail.subject = authz::authenticated_subject(&identity);
    let checks = [listener.policies.ext_authz.as_deref(), policies.ext_authz.as_deref()];
    let (authz_headers, body) =
        match external_authz(ctx, route, checks, (&mut parts, &host), &mut identity, Admitted::Streaming(body)).await {
            Ok(a) => a,
            Err(resp) => return decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref()),
        };
    telemetry.identify(trail.cel.as_deref_mut(), &parts, &identity);
    let authorizer = match authorize(listener, policies, &parts, (&host, peer), &identity, (runtime.audit, metrics)) {
        Ok(a) => a,
        Err(e) => return decorate(e.into_response(), &[route_cors, listener_cors], cors_origin.as_ref()),
    };

    let limited = Limits {
        local: [listener.policies.rate_limits.as_deref(), policies.rate_limits.as_deref()],
        remote: policies.remote_rate_limits.as_deref(),
    };
    let (admitted, body) = match admit(shared, route, limited, (&mut parts, &host, peer), &identity, body).await {
        Ok(a) => a,
        Err(resp) => return decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref()),
    };

    // `a2a`: a call's body is read for its method and task (then the rules about them); an
    // agent card is rewritten on the way back.
    let (a2a_kind, a2a_call, body) = if policies.a2a {
        let kind = a2a::classify(&parts, &format!("{}://{}", origin.scheme, origin.host));
        match kind {
            a2a::Kind::Call => match read_whole(shared, body).await {
                Ok(bytes) => (kind, a2a::A2aCall::of(&bytes), Admitted::Read(Some(bytes))),
                Err(resp) => return decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref()),
            },
            kind => (kind, None, body),
        }
    } else {
        (a2a::Kind::Other, None, body)
    };
    if policies.a2a
        && let Err(e) = authorize_a2a(
            listener,
            policies,
            (&parts, &host, peer),
            &identity,
            a2a_call.as_ref(),
            (runtime.audit, metrics),
        )
    {
        let mut resp = e.into_response();
        if let Some(call) = a2a_call {
            resp.extensions_mut().insert(call);
        }
        return decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref());
    }

    let cx = Traffic { ctx, route, host: &host, identity: &identity, arrived };
    let (body, traffic_inputs) = match traffic(cx, &mut parts, body).await {
        Ok(passed) => passed,
        Err(mut resp) => {
            policies.response_headers.apply(resp.headers_mut());
            return decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref());
        }
    };
    let guardrails = policies.mcp_guardrails.as_ref().map(|g| {
        let v = authz::request_vars(&parts, &host, peer, &identity, g.uses());
        g.bind(&parts, &host, ctx.tls.is_some(), agw_policy::expr::Inputs::from(v))
    });
    parts.extensions.insert(identity);
    parts.extensions.insert(backend::Arrived(arrived));
    let req = Request::from_parts(parts, body);
    let hooks = backend::Hooks { authorizer, guardrails, trace: trail.trace };
    let mut resp = backend::call(&route.backend, policies, (&shared.relay, &shared.client), peer, hooks, req).await;
    if let (Some(t), Some(inputs)) = (&policies.traffic, &traffic_inputs) {
        resp = crate::traffic::after_backend(t, resp, inputs).await;
    }
    if let a2a::Kind::Card { public_base, agent_path } = &a2a_kind {
        resp = a2a::card_response(resp, public_base, agent_path).await;
    }
    if let Some(call) = a2a_call {
        resp.extensions_mut().insert(call);
    }
    if let Some(status) = admitted.status {
        status.write_headers(resp.headers_mut());
    }
    if let Some(remote) = admitted.remote {
        resp.headers_mut().extend(remote.response_headers);
    }
    for (name, value) in authz_headers {
        resp.headers_mut().append(name, value);
    }
    policies.response_headers.apply(resp.headers_mut());
    decorate(resp, &[route_cors, listener_cors], cors_origin.as_ref())
}

/// What the traffic policies need to know about a request.
struct Traffic<'a> {
    ctx: &'a ConnCtx,
    route: &'a route::Route,
    host: &'a str,
    identity: &'a Identity,
    /// When the route's `requestTimeout` started.
    arrived: tokio::time::Instant,
}

/// The route's traffic policies before the backend ([`crate::traffic`]): the body to send on
/// and the variables the response side evaluates with, or the answer given here.
async fn traffic(
    cx: Traffic<'_>,
    parts: &mut Parts,
    body: Admitted,
) -> Result<(Admitted, Option<agw_policy::expr::Inputs>), Response<Body>> {
    let Some(t) = &cx.route.policies.traffic else { return Ok((body, None)) };
    let context = crate::traffic::Context {
        route: cx.route,
        host: cx.host,
        peer: cx.ctx.peer,
        identity: cx.identity,
        tls: cx.ctx.tls.is_some(),
        deadline: cx.route.policies.request_timeout.map(|d| cx.arrived + d),
        client: &cx.ctx.shared.client,
    };
    let passed = crate::traffic::before_backend(t, parts, body, context).await?;
    Ok((passed.body, Some(passed.inputs)))
}

/// The request body after the rate limits: as it came, or read whole (an MCP body whose
/// messages keyed limits counted).
pub(crate) enum Admitted {
    Streaming(conn::GuardedBody),
    Read(Option<bytes::Bytes>),
    /// `buffer` with `failOpen` read part of it: those bytes, then the rest.
    Prefixed(Box<crate::traffic::buffer::Prefixed<Admitted>>),
}

impl http_body::Body for Admitted {
    type Data = bytes::Bytes;
    type Error = agw_http::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            Admitted::Streaming(b) => Pin::new(b).poll_frame(cx),
            Admitted::Read(bytes) => Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b)))),
            Admitted::Prefixed(p) => Pin::new(p.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Admitted::Streaming(b) => b.is_end_stream(),
            Admitted::Read(bytes) => bytes.is_none(),
            Admitted::Prefixed(p) => p.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Admitted::Streaming(b) => b.size_hint(),
            Admitted::Read(bytes) => http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Admitted::Prefixed(_) => http_body::SizeHint::default(),
        }
    }
}

/// A request body read whole (bounded like the relay's), unless an earlier step did.
async fn read_whole(shared: &Shared, body: Admitted) -> Result<bytes::Bytes, Response<Body>> {
    match body {
        Admitted::Read(bytes) => Ok(bytes.unwrap_or_default()),
        other => shared.relay.read_body(other).await,
    }
}

/// `extAuthz` of the listener, then the route's: the response headers the services add, and
/// the body (read whole when a check sends it or names the MCP requests in it).
async fn external_authz(
    ctx: &ConnCtx,
    route: &route::Route,
    checks: [Option<&ExtAuthzPolicy>; 2],
    (parts, host): (&mut Parts, &str),
    identity: &mut Identity,
    mut body: Admitted,
) -> Result<(Vec<(http::HeaderName, HeaderValue)>, Admitted), Response<Body>> {
    let mut response_headers = Vec::new();
    for check in checks.into_iter().flatten() {
        let mcp = match &route.backend {
            crate::resolve::Backend::Mcp(b) if parts.method == Method::POST => Some(b),
            _ => None,
        };
        body = match body {
            Admitted::Streaming(b) if check.wants_body(mcp.is_some()) => {
                Admitted::Read(Some(ctx.shared.relay.read_body(b).await?))
            }
            other => other,
        };
        let bytes = match &body {
            Admitted::Read(b) => b.clone(),
            Admitted::Streaming(_) | Admitted::Prefixed(_) => None,
        };
        let calls = match (mcp, bytes.as_ref().and_then(|b| serde_json::from_slice(b).ok())) {
            (Some(b), Some(parsed)) => {
                let targets: Vec<String> = b.targets.iter().map(|t| t.name.clone()).collect();
                let prefixed = b.prefix_mode != agw_mcp::mux::naming::PrefixMode::Never && targets.len() > 1
                    || b.prefix_mode == agw_mcp::mux::naming::PrefixMode::Always;
                ext_authz::mcp_calls(&parsed, &targets, prefixed)
            }
            _ => Vec::new(),
        };
        let v = authz::request_vars(parts, host, ctx.peer, identity, check.uses());
        let inputs = agw_policy::expr::Inputs::from(v);
        let subject =
            ext_authz::Subject { parts, host, peer: ctx.peer, tls: ctx.tls.is_some(), inputs, body: bytes.as_ref() };
        let allowed = check.check(&ctx.shared.client, &subject, &calls).await?;
        ext_authz::apply(&allowed, &mut parts.headers, identity);
        response_headers.extend(allowed.response_headers);
    }
    Ok((response_headers, body))
}

/// The rate limits a request meets: `localRateLimit` of the listener and the route, then the
/// route's `remoteRateLimit`.
struct Limits<'a> {
    local: [Option<&'a RateLimits>; 2],
    remote: Option<&'a RemoteRateLimits>,
}

/// What the rate limits let through: the tightest local route-wide limit's state and the
/// remote service's answer, for the response headers.
#[derive(Default)]
struct Admission {
    status: Option<ratelimit::Status>,
    remote: Option<remote_ratelimit::Allowed>,
}

/// Applies the rate limits: what goes into the response headers, or the refusal (429, or
/// JSON-RPC errors for limits that count MCP requests).
async fn admit(
    shared: &Shared,
    route: &route::Route,
    limits: Limits<'_>,
    (parts, host, peer): (&mut Parts, &str, SocketAddr),
    identity: &Identity,
    body: Admitted,
) -> Result<(Admission, Admitted), Response<Body>> {
    let local: Vec<&RateLimits> = limits.local.into_iter().flatten().collect();
    if local.is_empty() && limits.remote.is_none() {
        return Ok((Admission::default(), body));
    }
    let uses =
        local.iter().fold(limits.remote.map(RemoteRateLimits::uses).unwrap_or_default(), |u, l| u.union(l.uses()));
    let v = authz::request_vars(parts, host, peer, identity, uses);
    let inputs = agw_policy::expr::Inputs::from(v);
    let counts_messages = parts.method == Method::POST
        && matches!(route.backend, crate::resolve::Backend::Mcp(_))
        && (local.iter().any(|l| l.keyed()) || limits.remote.is_some_and(RemoteRateLimits::per_message));
    let (body, parsed) = match body {
        Admitted::Streaming(b) if counts_messages => {
            let bytes = shared.relay.read_body(b).await?;
            // A body that is not JSON is the relay's to answer; no limit counts its messages.
            let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
            (Admitted::Read(Some(bytes)), parsed)
        }
        Admitted::Read(Some(bytes)) if counts_messages => {
            let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
            (Admitted::Read(Some(bytes)), parsed)
        }
        other => (other, None),
    };
    let messages = parsed.as_ref().map(ratelimit::Messages::of);
    let batch = parsed.as_ref().is_some_and(|p| p.is_array());
    let now = tokio::time::Instant::now();
    let mut admission = Admission::default();
    for l in local {
        match l.check(&inputs, messages.as_ref(), now) {
            Ok(Some(s)) => admission.status = Some(ratelimit::Status::tighter(admission.status, s)),
            Ok(None) => {}
            Err(e) => {
                debug!(limit = %e.limit, retry_after = e.status.reset, "rate limited");
                return Err(match (&e.key, &messages) {
                    (Some(_), Some(m)) if !m.requests.is_empty() => ratelimit::jsonrpc_refusal(&e, m, batch),
                    _ => ratelimit::too_many_requests(&e),
                });
            }
        }
    }
    if let Some(remote) = limits.remote {
        let allowed = remote.check(&inputs, messages.as_ref(), batch).await?;
        for (name, value) in &allowed.request_headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        admission.remote = Some(allowed);
    }
    Ok((admission, body))
}

/// Rewrites the request's path to its normal form ([`crate::path`]); scheme, authority and
/// query stay as sent.
fn normalize_path(parts: &mut Parts) -> Result<(), GatewayError> {
    let std::borrow::Cow::Owned(path) = crate::path::normalize(parts.uri.path())? else {
        return Ok(());
    };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    // Cannot fail: the path is the normal form of a valid one and the query is unchanged.
    uri.path_and_query = http::uri::PathAndQuery::try_from(path_and_query).ok();
    parts.uri = http::Uri::from_parts(uri).map_err(|_| GatewayError::BadPath(crate::path::PathError::InvalidEscape))?;
    Ok(())
}

fn is_event_stream(resp: &Response<Body>) -> bool {
    resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"))
}

/// A response body that ends (cleanly, like a finished stream) once shutdown begins.
struct EndsOnShutdown {
    inner: Body,
    done: bool,
    /// Behind a mutex only to be `Sync` as bodies must be; polled through `get_mut`.
    stop: std::sync::Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl EndsOnShutdown {
    fn wrap(inner: Body, mut stop: watch::Receiver<bool>) -> Body {
        let stop: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        http_body_util::BodyExt::boxed(EndsOnShutdown { inner, done: false, stop: std::sync::Mutex::new(stop) })
    }
}

impl http_body::Body for EndsOnShutdown {
    type Data = bytes::Bytes;
    type Error = agw_http::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Ok(stop) = this.stop.get_mut()
            && stop.as_mut().poll(cx).is_ready()
        {
            this.done = true;
            return Poll::Ready(None);
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }
}

/// HTTP-level `authorization` (listener and route rules together: 403 when refused), and the
/// MCP authorizer for the relay when the route has `mcpAuthorization`.
fn authorize(
    listener: &Listener,
    policies: &Policies,
    parts: &Parts,
    (host, peer): (&str, SocketAddr),
    identity: &Identity,
    (audit, metrics): (AuditMode, &Arc<Metrics>),
) -> Result<Option<Arc<dyn Authorizer>>, GatewayError> {
    let http_rules = match (&listener.policies.authorization, &policies.authorization) {
        (None, None) => None,
        (Some(a), None) | (None, Some(a)) => Some(a.clone()),
        (Some(a), Some(b)) => Some(a.merged(b)),
    };
    if http_rules.is_none() && policies.mcp_authorization.is_none() {
        return Ok(None);
    }
    let uses = match (&http_rules, &policies.mcp_authorization) {
        (Some(h), Some(m)) => h.uses().union(m.uses()),
        (Some(r), None) | (None, Some(r)) => r.uses(),
        (None, None) => return Ok(None),
    };
    let vars = authz::request_vars(parts, host, peer, identity, uses);
    let subject = authz::subject(identity);
    // Rules about the A2A call wait until its body is read (`authorize_a2a`).
    if let Some(rules) = http_rules.as_ref().filter(|r| !defers_to_a2a(policies, r))
        && authz::check_http(rules, &vars, &subject, parts, audit, metrics).is_err()
    {
        return Err(GatewayError::Forbidden);
    }
    Ok(policies.mcp_authorization.as_ref().map(|rules| {
        authz::McpAuthorizer::new(rules, vars, subject, audit, Some(metrics.clone())) as Arc<dyn Authorizer>
    }))
}

/// Whether the HTTP rules wait for the A2A call (an `a2a` route whose rules read `a2a`).
fn defers_to_a2a(policies: &Policies, rules: &agw_policy::rules::Rules) -> bool {
    policies.a2a && rules.uses().reads("a2a")
}

/// The HTTP rules of an `a2a` route that read `a2a`, once the call is known.
fn authorize_a2a(
    listener: &Listener,
    policies: &Policies,
    (parts, host, peer): (&Parts, &str, SocketAddr),
    identity: &Identity,
    call: Option<&a2a::A2aCall>,
    (audit, metrics): (AuditMode, &Arc<Metrics>),
) -> Result<(), GatewayError> {
    let rules = match (&listener.policies.authorization, &policies.authorization) {
        (None, None) => return Ok(()),
        (Some(a), None) | (None, Some(a)) => a.clone(),
        (Some(a), Some(b)) => a.merged(b),
    };
    if !defers_to_a2a(policies, &rules) {
        return Ok(());
    }
    let mut vars = authz::request_vars(parts, host, peer, identity, rules.uses());
    vars.a2a = call.map(|c| agw_policy::rules::to_cel(&c.cel()));
    authz::check_http(&rules, &vars, &authz::subject(identity), parts, audit, metrics)
        .map_err(|_| GatewayError::Forbidden)
}

async fn authenticate(
    policies: &[Authn],
    parts: &mut Parts,
    identity: &mut Identity,
    origin: &Origin,
    metrics: &Metrics,
) -> Result<(), Response<Body>> {
    for policy in policies {
        policy.check(parts, identity, origin).await.map_err(|d| {
            metrics.authentication_failures.get_or_create(&AuthnLabels { policy: d.policy, reason: d.reason }).inc();
            d.into_response()
        })?;
    }
    Ok(())
}

/// The gateway's own answer to a CORS preflight.
fn preflight(cors: &Cors, parts: &Parts) -> Option<Response<Body>> {
    let headers = cors.preflight(parts)?;
    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::OK;
    *r.headers_mut() = headers;
    Some(r)
}

/// Adds CORS response headers (the first policy that applies wins).
fn decorate(mut resp: Response<Body>, policies: &[Option<&Cors>], origin: Option<&HeaderValue>) -> Response<Body> {
    if let Some(cors) = policies.iter().flatten().next() {
        cors.decorate(origin, resp.headers_mut());
    }
    resp
}
