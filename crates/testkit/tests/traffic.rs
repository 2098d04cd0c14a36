//! Traffic policies through a real gateway to real loopback upstreams: `directResponse` (and
//! its conditional form, and routes without backends), `requestRedirect`, `urlRewrite`,
//! `delay`, `retry`, weighted backends and `requestMirror`. Shares of traffic are counted over
//! many requests and checked within a tolerance; nothing is timed.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agw_mcp::body;
use agw_testkit::harness::Gateway;
use agw_testkit::serve::{self, Server};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One request as an upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    host: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A loopback upstream that records requests and answers with `status(n)` for its n-th
/// request (from 0), body `name`; with `hold`, it never answers (a slow mirror).
struct Upstream {
    server: Server,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    async fn start(name: &'static str, status: fn(usize) -> u16) -> Upstream {
        Upstream::start_with(name, status, false).await
    }

    async fn start_with(name: &'static str, status: fn(usize) -> u16, hold: bool) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let count = Arc::new(AtomicUsize::new(0));
        let server = serve::app("127.0.0.1:0".parse().unwrap(), move |req: Request<hyper::body::Incoming>| {
            let (log, count) = (log.clone(), count.clone());
            async move {
                let (parts, b) = req.into_parts();
                let body = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
                let path = parts.uri.path_and_query().map_or_else(String::new, |p| p.to_string());
                log.lock().unwrap().push(Seen { path, host, headers: parts.headers, body });
                let n = count.fetch_add(1, Ordering::SeqCst);
                if hold {
                    std::future::pending::<()>().await;
                }
                let mut r = Response::new(body::full(name));
                *r.status_mut() = StatusCode::from_u16(status(n)).unwrap();
                r
            }
        })
        .await
        .unwrap();
        Upstream { server, seen }
    }

    fn host(&self) -> String {
        self.server.addr.to_string()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits (bounded) until the upstream has seen `n` requests; returns how many it saw.
    async fn wait_for(&self, n: usize) -> usize {
        for _ in 0..500 {
            if self.count() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.count()
    }
}

fn ok(_: usize) -> u16 {
    200
}

type ClientBody = BoxBody<Bytes, Infallible>;

struct Http {
    client: Client<HttpConnector, ClientBody>,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Http {
    fn new() -> Http {
        Http { client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()) }
    }

    async fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: ClientBody) -> Answer {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.client.request(req.body(body).unwrap()).await.unwrap();
        let (parts, b) = resp.into_parts();
        let body = String::from_utf8_lossy(&b.collect().await.unwrap().to_bytes()).into_owned();
        Answer { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Answer {
        self.send("GET", url, headers, Full::new(Bytes::new()).boxed()).await
    }

    async fn post(&self, url: &str, body: &'static str) -> Answer {
        self.send("POST", url, &[], Full::new(Bytes::from_static(body.as_bytes())).boxed()).await
    }

    /// A POST whose body has no `Content-Length` (sent chunked).
    async fn post_chunked(&self, url: &str, body: &'static str) -> Answer {
        let frames = futures_util::stream::iter(vec![Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(
            body.as_bytes(),
        )))]);
        self.send("POST", url, &[], StreamBody::new(frames).boxed()).await
    }
}

/// A bind on a free port with `routes` (YAML list items indented by 4).
fn routes(routes: &str) -> String {
    format!("binds:\n- port: 0\n  listeners:\n  - routes:\n{routes}")
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn direct_responses_answer_without_a_backend() {
    let yaml = routes(
        r#"    - name: direct
      matches:
      - path: {pathPrefix: /direct}
      policies:
        directResponse: {body: "hello!", status: 200}
    - name: computed
      matches:
      - path: {pathPrefix: /computed}
      policies:
        directResponse:
          status: 418
          bodyExpression: '{"path": request.path}'
          headers:
            x-method: request.method
            x-broken: request.nothing.here
    - name: gone
      matches:
      - path: {pathPrefix: /gone}
      policies:
        directResponse: {status: 410}
"#,
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    let a = http.get(&gw.url("/direct/x"), &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "hello!"));
    let a = http.get(&gw.url("/computed"), &[]).await;
    assert_eq!(a.status, 418);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&a.body).unwrap(), serde_json::json!({"path": "/computed"}));
    assert_eq!(header(&a, "x-method"), "GET");
    assert!(a.headers.get("x-broken").is_none(), "a header whose expression fails is left out");
    let a = http.get(&gw.url("/gone"), &[]).await;
    assert_eq!((a.status, a.body.as_str()), (410, ""));
    assert_eq!(http.get(&gw.url("/elsewhere"), &[]).await.status, 404, "no route");
}

#[tokio::test]
async fn a_route_without_backends_must_answer_every_request() {
    let refused = |policies: &str| {
        routes(&format!("    - matches:\n      - path: {{pathPrefix: /x}}\n      policies:\n{policies}"))
    };
    // Conditional entries that can all be false leave requests with nowhere to go.
    let yaml = refused(
        "        directResponse:\n          conditional:\n          - condition: 'true'\n            status: 503\n",
    );
    let err = Gateway::start(&yaml).await.err().expect("refused").to_string();
    assert!(err.contains("a route needs a backend"), "{err}");
    // With a fallback entry it is fine.
    let yaml = refused(
        "        directResponse:\n          conditional:\n          - condition: request.method == 'POST'\n            status: 405\n          - status: 200\n            body: fallback\n",
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    assert_eq!(http.get(&gw.url("/x"), &[]).await.body, "fallback");
    assert_eq!(http.post(&gw.url("/x"), "").await.status, 405);
    // Both forms at once, a bad status and a misplaced fallback are located errors.
    let yaml = refused(
        "        directResponse:\n          status: 200\n          conditional:\n          - status: 99\n          - condition: 'true'\n            status: 200\n",
    );
    let err = Gateway::start(&yaml).await.err().expect("refused").to_string();
    assert!(err.contains("policies.directResponse: either `conditional` or `status`"), "{err}");
    assert!(err.contains("conditional[0].status: 99 is not an HTTP status"), "{err}");
    assert!(err.contains("conditional[0]: an entry without a condition is the fallback and must be last"), "{err}");
}

#[tokio::test]
async fn conditional_direct_responses_abort_a_share_and_pass_the_rest() {
    let upstream = Upstream::start("upstream", ok).await;
    // The fault-injection example's shape: abort by a random draw, or by a header.
    let yaml = routes(&format!(
        r#"    - name: abort-probability
      matches:
      - path: {{pathPrefix: /abort}}
      policies:
        directResponse:
          conditional:
          - condition: random() < 0.1
            status: 503
            body: "injected fault"
      backends:
      - host: {h}
    - name: abort-header
      matches:
      - path: {{pathPrefix: /header}}
      policies:
        directResponse:
          conditional:
          - condition: 'request.headers["x-chaos"] == "1"'
            status: 500
            body: chaos
      backends:
      - host: {h}
"#,
        h = upstream.host()
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    let (mut aborted, mut passed) = (0, 0);
    for _ in 0..1000 {
        let a = http.get(&gw.url("/abort"), &[]).await;
        match a.status {
            503 => {
                assert_eq!(a.body, "injected fault");
                aborted += 1;
            }
            200 => passed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Binomial(1000, 0.1): mean 100, standard deviation 9.5; ±50 is over 5 deviations.
    assert!((50..=150).contains(&aborted), "aborted {aborted} of 1000");
    assert_eq!(upstream.count(), passed, "only the requests not aborted reach the backend");

    let a = http.get(&gw.url("/header"), &[("x-chaos", "1")]).await;
    assert_eq!((a.status, a.body.as_str()), (500, "chaos"));
    let before = upstream.count();
    assert_eq!(http.get(&gw.url("/header"), &[("x-chaos", "0")]).await.body, "upstream");
    assert_eq!(upstream.count(), before + 1);
}

#[tokio::test]
async fn redirects_build_the_location_from_the_request() {
    let yaml = routes(
        r#"    - name: to-https
      matches:
      - path: {pathPrefix: /secure}
      policies:
        requestRedirect: {scheme: https, status: 301}
    - name: moved
      matches:
      - path: {pathPrefix: /old}
      policies:
        requestRedirect:
          authority: {host: new.example.com}
          path: {prefix: /new}
    - name: port
      matches:
      - path: {exact: /port}
      policies:
        requestRedirect:
          authority: {port: 8443}
          path: {full: /elsewhere}
          status: 308
"#,
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    let a = http.get(&gw.url("/secure/page?x=1"), &[("host", "shop.example.com")]).await;
    assert_eq!(a.status, 301);
    assert_eq!(header(&a, "location"), "https://shop.example.com/secure/page?x=1");
    let a = http.get(&gw.url("/old/a/b?q=2"), &[("host", "old.example.com:8080")]).await;
    assert_eq!(a.status, 302, "default status");
    assert_eq!(header(&a, "location"), "http://new.example.com:8080/new/a/b?q=2", "the port stays, the query too");
    let a = http.get(&gw.url("/oldish"), &[("host", "old.example.com")]).await;
    assert_eq!(a.status, 404, "`/old` matches whole segments only");
    let a = http.get(&gw.url("/port"), &[("host", "h.example.com")]).await;
    assert_eq!((a.status, header(&a, "location")), (308, "http://h.example.com:8443/elsewhere"));
}

#[tokio::test]
async fn url_rewrites_change_path_and_host_for_the_backend() {
    let upstream = Upstream::start("upstream", ok).await;
    let yaml = routes(&format!(
        r#"    - name: full
      matches:
      - path: {{pathPrefix: /full}}
      policies:
        urlRewrite:
          path: {{full: /new-path}}
          authority: {{full: custom-host-header}}
      backends:
      - host: {h}
    - name: prefix
      matches:
      - path: {{pathPrefix: /api/v1}}
      policies:
        urlRewrite:
          path: {{prefix: /v2}}
          authority: none
      backends:
      - host: {h}
    - name: plain
      matches:
      - path: {{pathPrefix: /plain}}
      backends:
      - host: {h}
"#,
        h = upstream.host()
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    assert_eq!(http.get(&gw.url("/full/x?keep=1"), &[]).await.status, 200);
    let s = upstream.seen().pop().unwrap();
    assert_eq!((s.path.as_str(), s.host.as_str()), ("/new-path?keep=1", "custom-host-header"));
    http.get(&gw.url("/api/v1/users/7"), &[("host", "client.example")]).await;
    let s = upstream.seen().pop().unwrap();
    assert_eq!((s.path.as_str(), s.host.as_str()), ("/v2/users/7", "client.example"), "`none` keeps the client's Host");
    http.get(&gw.url("/plain/p"), &[("host", "client.example")]).await;
    let s = upstream.seen().pop().unwrap();
    assert_eq!((s.path.as_str(), s.host.as_str()), ("/plain/p", upstream.host().as_str()), "by default the backend's");

    // A prefix rewrite needs prefix matches; MCP backends keep their own URLs.
    let yaml = routes(&format!(
        "    - matches:\n      - path: {{exact: /e}}\n      policies:\n        urlRewrite:\n          path: {{prefix: /p}}\n      backends:\n      - host: {}\n",
        upstream.host()
    ));
    let err = Gateway::start(&yaml).await.err().expect("refused").to_string();
    assert!(err.contains("needs every match of the route to be a `pathPrefix`"), "{err}");
    let yaml = agw_testkit::harness::mcp_route(
        "http://127.0.0.1:1/mcp",
        "      policies:\n        urlRewrite:\n          path: {full: /x}\n",
    );
    let err = Gateway::start(&yaml).await.err().expect("refused").to_string();
    assert!(err.contains("policies.urlRewrite: applies to `host:` backends"), "{err}");
}

#[tokio::test]
async fn delays_count_against_the_request_timeout_and_skip_non_positive_values() {
    let upstream = Upstream::start("upstream", ok).await;
    let yaml = routes(&format!(
        r#"    - name: delay-header
      matches:
      - path: {{pathPrefix: /header}}
      policies:
        delay:
          duration: 'request.headers["x-chaos"] == "1" ? 60000 : 0'
        timeout:
          requestTimeout: 200ms
      backends:
      - host: {h}
    - name: negative
      matches:
      - path: {{pathPrefix: /negative}}
      policies:
        delay:
          duration: "-5"
      backends:
      - host: {h}
    - name: fixed
      matches:
      - path: {{pathPrefix: /fixed}}
      policies:
        delay:
          duration: 1ms
      backends:
      - host: {h}
"#,
        h = upstream.host()
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    // A 60 s delay inside a 200 ms request timeout: 504 at the deadline, the backend never asked.
    let a = http.get(&gw.url("/header"), &[("x-chaos", "1")]).await;
    assert_eq!(a.status, 504, "{}", a.body);
    assert_eq!(upstream.count(), 0);
    assert_eq!(http.get(&gw.url("/header"), &[("x-chaos", "0")]).await.status, 200);
    assert_eq!(http.get(&gw.url("/negative"), &[]).await.status, 200);
    assert_eq!(http.get(&gw.url("/fixed"), &[]).await.status, 200);
    assert_eq!(upstream.count(), 3);

    let bad = routes(&format!(
        "    - policies:\n        delay:\n          duration: 'mcp.tool.name'\n      backends:\n      - host: {}\n",
        upstream.host()
    ));
    let err = Gateway::start(&bad).await.err().expect("refused").to_string();
    assert!(err.contains("policies.delay.duration: `mcp` is not known here"), "{err}");
}

fn fail_twice(n: usize) -> u16 {
    if n < 2 { 503 } else { 200 }
}

fn always_503(_: usize) -> u16 {
    503
}

fn retry_route(host: &str, retry: &str) -> String {
    routes(&format!("    - policies:\n        retry:\n{retry}      backends:\n      - host: {host}\n"))
}

#[tokio::test]
async fn retries_replay_the_body_until_an_answer_is_not_retryable() {
    let upstream = Upstream::start("upstream", fail_twice).await;
    let gw = Gateway::start(&retry_route(&upstream.host(), "          attempts: 2\n          codes: [503]\n"))
        .await
        .unwrap();
    let http = Http::new();
    let a = http.post(&gw.url("/p"), "payload").await;
    assert_eq!((a.status, a.body.as_str()), (200, "upstream"));
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3, "two retries after the first attempt");
    assert!(seen.iter().all(|s| s.body == "payload"), "the body is replayed on every attempt");
    let attempts: Vec<Option<&str>> =
        seen.iter().map(|s| s.headers.get("x-retry-attempt").and_then(|v| v.to_str().ok())).collect();
    assert_eq!(attempts, [None, Some("1"), Some("2")]);
}

#[tokio::test]
async fn the_retry_budget_ends_with_the_last_answer() {
    let upstream = Upstream::start("upstream", always_503).await;
    let gw = Gateway::start(&retry_route(&upstream.host(), "          attempts: 3\n          codes: [503]\n"))
        .await
        .unwrap();
    let http = Http::new();
    assert_eq!(http.get(&gw.url("/p"), &[]).await.status, 503);
    assert_eq!(upstream.count(), 4, "the first attempt and three retries, no more");

    // Statuses not listed are not retried.
    let other = Upstream::start("other", always_503).await;
    let gw =
        Gateway::start(&retry_route(&other.host(), "          attempts: 3\n          codes: [429]\n")).await.unwrap();
    assert_eq!(http.get(&gw.url("/p"), &[]).await.status, 503);
    assert_eq!(other.count(), 1);
}

#[tokio::test]
async fn bodies_that_cannot_be_replayed_and_failed_preconditions_are_sent_once() {
    let upstream = Upstream::start("upstream", always_503).await;
    let gw = Gateway::start(&retry_route(
        &upstream.host(),
        "          attempts: 2\n          codes: [503]\n          precondition: request.method == 'GET'\n",
    ))
    .await
    .unwrap();
    let http = Http::new();
    assert_eq!(http.post(&gw.url("/p"), "x").await.status, 503);
    assert_eq!(upstream.count(), 1, "the precondition excludes POST");
    assert_eq!(http.get(&gw.url("/p"), &[]).await.status, 503);
    assert_eq!(upstream.count(), 4);

    let chunked = Upstream::start("chunked", always_503).await;
    let gw =
        Gateway::start(&retry_route(&chunked.host(), "          attempts: 2\n          codes: [503]\n")).await.unwrap();
    let a = http.post_chunked(&gw.url("/p"), "streamed").await;
    assert_eq!(a.status, 503);
    assert_eq!(chunked.count(), 1, "a body of unknown size is streamed, not kept for a retry");
    assert_eq!(chunked.seen()[0].body, "streamed");
}

#[tokio::test]
async fn retries_reach_a_backend_that_comes_back_and_mcp_routes_are_not_retried() {
    // The condition form: a retry decided by a response header.
    fn flagged(n: usize) -> u16 {
        if n == 0 { 299 } else { 200 }
    }
    let upstream = Upstream::start("upstream", flagged).await;
    let gw =
        Gateway::start(&retry_route(&upstream.host(), "          condition: response.code == 299\n")).await.unwrap();
    let http = Http::new();
    assert_eq!(http.get(&gw.url("/p"), &[]).await.status, 200);
    assert_eq!(upstream.count(), 2, "default: one retry");

    // On an MCP route `retry` loads, with a warning, and is not applied.
    let yaml = agw_testkit::harness::mcp_route(
        "http://127.0.0.1:1/mcp",
        "      policies:\n        retry:\n          attempts: 2\n          codes: [503]\n",
    );
    let loaded = agw_config::load_str("t.yaml", &yaml).unwrap();
    let runtime = agw_gateway::resolve::resolve(&loaded).unwrap();
    assert!(
        runtime.warnings.iter().any(|w| w.contains("policies.retry: not applied to MCP backends")),
        "{:?}",
        runtime.warnings
    );
}

#[tokio::test]
async fn weighted_backends_split_requests_by_weight() {
    let a = Upstream::start("a", ok).await;
    let b = Upstream::start("b", ok).await;
    let c = Upstream::start("c", ok).await;
    let yaml = routes(&format!(
        "    - backends:\n      - host: {}\n        weight: 1\n      - host: {}\n        weight: 3\n      - host: {}\n        weight: 0\n",
        a.host(),
        b.host(),
        c.host()
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    for _ in 0..1000 {
        assert_eq!(http.get(&gw.url("/w"), &[]).await.status, 200);
    }
    let (na, nb, nc) = (a.count(), b.count(), c.count());
    assert_eq!(na + nb + nc, 1000);
    assert_eq!(nc, 0, "weight 0 gets nothing");
    // Binomial(1000, 0.25): mean 250, standard deviation 13.7; ±70 is over 5 deviations.
    assert!((180..=320).contains(&na), "a got {na}, b got {nb}");

    // Several backends must be `host:` ones, and not all of weight 0.
    let yaml = routes(&format!(
        "    - backends:\n      - host: {}\n        weight: 0\n      - host: {}\n        weight: 0\n",
        a.host(),
        b.host()
    ));
    let err = Gateway::start(&yaml).await.err().expect("refused").to_string();
    assert!(err.contains("backends[0].weight: at least one backend needs a weight above 0"), "{err}");
}

#[tokio::test]
async fn mirrors_get_copies_and_never_affect_the_answer() {
    let primary = Upstream::start("primary", ok).await;
    let mirror = Upstream::start("mirror", always_503).await;
    let mirror_route = |m: &str, share: &str| {
        routes(&format!(
            "    - policies:\n        requestMirror:\n          backend:\n            host: {m}\n          percentage: {share}\n      backends:\n      - host: {}\n",
            primary.host()
        ))
    };
    let gw = Gateway::start(&mirror_route(&mirror.host(), "1.0")).await.unwrap();
    let http = Http::new();
    for _ in 0..20 {
        let a = http.post(&gw.url("/m?x=1"), "copy me").await;
        assert_eq!((a.status, a.body.as_str()), (200, "primary"), "the mirror's 503 is not the client's");
    }
    assert_eq!(mirror.wait_for(20).await, 20, "every request mirrored");
    assert!(mirror.seen().iter().all(|s| s.body == "copy me" && s.path == "/m?x=1"), "with its body and path");
    assert_eq!(primary.count(), 20);

    // A mirror that never answers: the client's requests do not wait for it, and at most 64
    // copies are on their way at once.
    let slow = Upstream::start_with("slow", ok, true).await;
    let gw = Gateway::start(&mirror_route(&slow.host(), "1")).await.unwrap();
    for _ in 0..70 {
        assert_eq!(http.get(&gw.url("/s"), &[]).await.status, 200);
    }
    assert_eq!(slow.wait_for(64).await, 64);
    assert_eq!(primary.count(), 90);

    // A mirror that cannot be reached, and a share of 0.
    let gw = Gateway::start(&mirror_route("127.0.0.1:1", "1")).await.unwrap();
    assert_eq!(http.get(&gw.url("/d"), &[]).await.status, 200);
    let none = Upstream::start("none", ok).await;
    let gw = Gateway::start(&mirror_route(&none.host(), "0")).await.unwrap();
    for _ in 0..10 {
        http.get(&gw.url("/z"), &[]).await;
    }
    assert_eq!(none.count(), 0);
    assert_eq!(primary.count(), 101);

    let err = Gateway::start(&mirror_route(&none.host(), "1.5")).await.err().expect("refused").to_string();
    assert!(err.contains("requestMirror.percentage: must be between 0.0 and 1.0"), "{err}");
}

#[tokio::test]
async fn the_traffic_http_example_behaves_as_its_readme_says() {
    let upstream = Upstream::start("upstream", ok).await;
    let yaml = routes(&format!(
        r#"    - name: policy-example
      matches:
      - path: {{pathPrefix: /policy}}
      policies:
        urlRewrite:
          path:
            full: "/new-path"
          authority:
            full: "custom-host-header"
        localRateLimit:
        - maxTokens: 10
          tokensPerFill: 1
          fillInterval: 1s
        requestMirror:
          backend:
            host: {h}
          percentage: .5
        retry:
          attempts: 2
          codes: [429]
        timeout:
          requestTimeout: 1s
      backends:
      - host: {h}
    - name: direct-response
      matches:
      - path:
          pathPrefix: /direct
      policies:
        directResponse:
          body: "hello!"
          status: 200
    - name: ip-rules
      matches:
      - path:
          pathPrefix: /ips
      policies:
        authorization:
          rules:
          - |
            cidr("127.0.0.1/8").containsIP(source.address)
        directResponse:
          body: "hello!"
          status: 200
    - name: other-ips
      matches:
      - path:
          pathPrefix: /elsewhere
      policies:
        authorization:
          rules:
          - cidr("10.0.0.0/8").containsIP(source.address)
        directResponse:
          body: "hello!"
          status: 200
"#,
        h = upstream.host()
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    assert_eq!(http.get(&gw.url("/direct"), &[]).await.body, "hello!");
    let a = http.get(&gw.url("/ips"), &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "hello!"), "a loopback caller is in 127.0.0.1/8");
    assert_eq!(http.get(&gw.url("/elsewhere"), &[]).await.status, 403, "not in 10.0.0.0/8");
    let a = http.get(&gw.url("/policy/x"), &[]).await;
    assert_eq!(a.status, 200);
    let rewritten: Vec<Seen> = upstream.seen().into_iter().filter(|s| s.path == "/new-path").collect();
    assert!(!rewritten.is_empty());
    assert!(rewritten.iter().any(|s| s.host == "custom-host-header"), "the backend's request is rewritten");
}

#[tokio::test]
async fn csrf_refuses_cross_site_state_changes_before_the_backend() {
    let upstream = Upstream::start("upstream", ok).await;
    let yaml = routes(&format!(
        "    - policies:\n        csrf:\n          additionalOrigins: [\"https://app.example.com\"]\n      backends:\n      - host: {}\n",
        upstream.host()
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    let post = |origin: &'static str| {
        let url = gw.url("/form");
        let http = &http;
        async move {
            http.send(
                "POST",
                &url,
                &[("origin", origin), ("host", "gw.example.com")],
                Full::new(Bytes::from_static(b"a=1")).boxed(),
            )
            .await
        }
    };
    let a = post("https://evil.example").await;
    assert_eq!((a.status, a.body.as_str()), (403, "CSRF validation failed"));
    assert_eq!(upstream.count(), 0, "refused before the backend");
    assert_eq!(post("http://gw.example.com").await.status, 200, "same origin");
    assert_eq!(post("https://app.example.com").await.status, 200, "trusted origin");
    assert_eq!(http.get(&gw.url("/form"), &[("origin", "https://evil.example")]).await.status, 200, "GET is safe");
    assert_eq!(upstream.count(), 3);
}

#[tokio::test]
async fn transformations_change_request_and_response_headers_and_bodies() {
    let upstream = Upstream::start("upstream", ok).await;
    let yaml = routes(&format!(
        r#"    - name: headers
      matches:
      - path: {{pathPrefix: /headers}}
      policies:
        transformations:
          request:
            set:
              authorization: '"Bearer " + request.headers["x-token"]'
              x-agentgateway-req-message: "'Hello from AgentGateway!'"
            add:
              x-path: request.path
            remove: [x-token]
          response:
            set:
              x-agentgateway-resp-message: "'Hello from AgentGateway!'"
              x-upstream-status: string(response.code)
              x-missing: response.headers["nope"]
      backends:
      - host: {h}
    - name: bodies
      matches:
      - path: {{pathPrefix: /bodies}}
      policies:
        transformations:
          request:
            body: request.body + "!"
          response:
            body: '"upstream said " + response.body + " for " + request.method'
      backends:
      - host: {h}
    - name: replace
      matches:
      - path: {{pathPrefix: /replace}}
      policies:
        transformations:
          request:
            replace: '{{"x-only": "this", "x-list": ["a", "b"], "host": request.host}}'
      backends:
      - host: {h}
"#,
        h = upstream.host()
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    let a = http.get(&gw.url("/headers"), &[("x-token", "t0k")]).await;
    assert_eq!(a.status, 200);
    assert_eq!(header(&a, "x-agentgateway-resp-message"), "Hello from AgentGateway!");
    assert_eq!(header(&a, "x-upstream-status"), "200");
    assert!(a.headers.get("x-missing").is_none(), "a failed expression sets nothing");
    let s = upstream.seen().pop().unwrap();
    let h = |n: &str| s.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(h("authorization"), "Bearer t0k");
    assert_eq!(h("x-agentgateway-req-message"), "Hello from AgentGateway!");
    assert_eq!(h("x-path"), "/headers");
    assert!(s.headers.get("x-token").is_none());

    let a = http.post(&gw.url("/bodies"), "payload").await;
    assert_eq!((a.status, a.body.as_str()), (200, "upstream said upstream for POST"));
    assert_eq!(header(&a, "content-length"), a.body.len().to_string());
    let s = upstream.seen().pop().unwrap();
    assert_eq!(s.body, "payload!");
    assert_eq!(s.headers.get("content-length").unwrap(), "8");

    http.get(&gw.url("/replace"), &[("x-dropped", "1")]).await;
    let s = upstream.seen().pop().unwrap();
    assert!(s.headers.get("x-dropped").is_none(), "replace drops every header first");
    assert_eq!(s.headers.get("x-only").unwrap(), "this");
    let list: Vec<&str> = s.headers.get_all("x-list").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(list, ["a", "b"]);

    // A body over 1 MiB cannot be transformed: 413, the backend never asked.
    let before = upstream.count();
    let big: &'static str = Box::leak("x".repeat((1 << 20) + 1).into_boxed_str());
    assert_eq!(http.post(&gw.url("/bodies"), big).await.status, 413);
    assert_eq!(upstream.count(), before);
}

#[tokio::test]
async fn transformation_mistakes_are_located_and_unsupported_parts_refused() {
    let bad = routes(
        "    - policies:\n        transformations:\n          request:\n            set:\n              x-a: 'response.code'\n          response:\n            metadata: {a: b}\n      backends:\n      - host: 127.0.0.1:1\n",
    );
    let err = Gateway::start(&bad).await.err().expect("refused").to_string();
    assert!(err.contains("transformations.response.metadata: not supported yet"), "{err}");
    let bad = routes(
        "    - policies:\n        transformations:\n          request:\n            set:\n              x-a: 'response.code'\n      backends:\n      - host: 127.0.0.1:1\n",
    );
    let err = Gateway::start(&bad).await.err().expect("refused").to_string();
    assert!(err.contains("transformations.request.set.x-a: `response` is not known here"), "{err}");
    let yaml = agw_testkit::harness::mcp_route(
        "http://127.0.0.1:1/mcp",
        "      policies:\n        transformations:\n          request:\n            body: request.body\n",
    );
    let err = Gateway::start(&yaml).await.err().expect("refused").to_string();
    assert!(err.contains("transformations.request.body: not on MCP backends"), "{err}");
}

#[tokio::test]
async fn the_traffic_example_runs_as_its_readme_says() {
    let main = Upstream::start("main", ok).await;
    let canary = Upstream::start("canary", ok).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/traffic/config.yaml");
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("port: 3000", "port: 0")
        .replace("127.0.0.1:8080", &main.host())
        .replace("127.0.0.1:8081", &canary.host());
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    let a = http.get(&gw.url("/healthz"), &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "ok"));
    let a = http.get(&gw.url("/docs/intro?lang=en"), &[("host", "localhost:3000")]).await;
    assert_eq!((a.status, header(&a, "location")), (301, "http://localhost:3000/manual/intro?lang=en"));
    let a = http.get(&gw.url("/chaos/page"), &[]).await;
    if a.status == 200 {
        assert_eq!(main.seen().pop().unwrap().path, "/page", "the prefix is taken off");
    } else {
        assert_eq!((a.status, a.body.as_str()), (503, "injected fault"));
    }
    let (main_before, canary_before) = (main.count(), canary.count());
    let mut served = [0usize; 2];
    for _ in 0..200 {
        let a = http.get(&gw.url("/"), &[]).await;
        assert_eq!(a.status, 200);
        assert_eq!(header(&a, "x-served-by"), "agentgateway, status 200");
        served[usize::from(a.body == "canary")] += 1;
    }
    // Binomial(200, 0.1) for the canary: mean 20, standard deviation 4.2.
    assert!((3..=45).contains(&served[1]), "{served:?}");
    assert_eq!(main.count() - main_before, served[0]);
    // The canary gets its share and a copy of every request.
    assert_eq!(canary.wait_for(canary_before + served[1] + 200).await, canary_before + served[1] + 200);
    assert!(main.seen().iter().rev().take(10).all(|s| s.headers.get("x-request-path").is_some()));
}

#[tokio::test]
async fn buffered_bodies_get_their_length_can_be_replayed_and_are_bounded() {
    let upstream = Upstream::start("upstream", fail_twice).await;
    let yaml = routes(&format!(
        r#"    - name: replay
      matches:
      - path: {{pathPrefix: /replay}}
      policies:
        buffer:
          request: {{maxBytes: 100}}
        retry:
          attempts: 2
          codes: [503]
      backends:
      - host: {h}
    - name: closed
      matches:
      - path: {{pathPrefix: /closed}}
      policies:
        buffer:
          request: {{maxBytes: 4}}
          response: {{maxBytes: 4}}
      backends:
      - host: {h}
    - name: open
      matches:
      - path: {{pathPrefix: /open}}
      policies:
        buffer:
          request: {{maxBytes: 4, failureMode: failOpen}}
          response: {{maxBytes: 4, failureMode: failOpen}}
      backends:
      - host: {h}
"#,
        h = upstream.host()
    ));
    let gw = Gateway::start(&yaml).await.unwrap();
    let http = Http::new();
    // A chunked body, read by `buffer`, is replayed by `retry` and arrives with its length.
    let a = http.post_chunked(&gw.url("/replay"), "streamed").await;
    assert_eq!(a.status, 200);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.body == "streamed" && s.headers.get("content-length").unwrap() == "8"));

    // Over `maxBytes`: failClosed refuses (413 before the backend; 502 for the answer).
    assert_eq!(http.post_chunked(&gw.url("/closed"), "too long").await.status, 413);
    assert_eq!(upstream.count(), 3);
    assert_eq!(http.post(&gw.url("/closed"), "ok").await.status, 502, "the answer `upstream` is over 4 bytes");
    assert_eq!(upstream.count(), 4);
    // failOpen: the bytes read, then the rest, streaming both ways.
    let a = http.post_chunked(&gw.url("/open"), "longer than four").await;
    assert_eq!((a.status, a.body.as_str()), (200, "upstream"));
    assert_eq!(upstream.seen().pop().unwrap().body, "longer than four");
}
