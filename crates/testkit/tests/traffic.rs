//! Traffic policies through a real gateway to real loopback upstreams: `directResponse` (and
//! its conditional form, and routes without backends), `requestRedirect`, `urlRewrite`,
//! `delay`, `retry`, weighted backends and `requestMirror`. Shares of traffic are counted over
//! many requests and checked within a tolerance; nothing is timed.

use agw_testkit::counting::{Http, Upstream, always_503, fail_twice, header, ok, routes};
use agw_testkit::harness::Gateway;

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
    let err = Gateway::refused(&yaml).await;
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
    let err = Gateway::refused(&yaml).await;
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
    let err = Gateway::refused(&yaml).await;
    assert!(err.contains("needs every match of the route to be a `pathPrefix`"), "{err}");
    let yaml = agw_testkit::harness::mcp_route(
        "http://127.0.0.1:1/mcp",
        "      policies:\n        urlRewrite:\n          path: {full: /x}\n",
    );
    let err = Gateway::refused(&yaml).await;
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
    let err = Gateway::refused(&bad).await;
    assert!(err.contains("policies.delay.duration: `mcp` is not known here"), "{err}");
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
    let err = Gateway::refused(&yaml).await;
    assert!(err.contains("backends[0].weight: at least one backend needs a weight above 0"), "{err}");

    // A named backend in a split is checked once written in place: `host:` ones only.
    let named = |kind: &str| {
        format!(
            "gateways:\n  default:\n    port: 0\nroutes:\n- backends:\n  - backend: b\n    weight: 2\n  - host: {}\nbackends:\n- name: b\n  {kind}\n",
            a.host()
        )
    };
    let gw = Gateway::start(&named(&format!("host: {}", b.host()))).await.unwrap();
    assert_eq!(http.get(&gw.url("/n"), &[]).await.status, 200);
    let err = Gateway::start(&named("mcp: {targets: [{name: x, stdio: {cmd: x}}]}"))
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("routes[0].backends[0]: several backends on one route must all be `host:` backends"), "{err}");
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
