//! Traffic policies that touch bodies and browsers, through a real gateway to real loopback
//! upstreams: `transformations`, `buffer`, `csrf`, and agentgateway's `traffic-http` example and
//! our `examples/traffic` run as their READMEs say.

use agw_testkit::counting::{Http, Seen, Upstream, fail_twice, header, ok, routes};
use agw_testkit::harness::Gateway;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

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
    let err = Gateway::refused(&bad).await;
    assert!(err.contains("transformations.response.metadata: not supported yet"), "{err}");
    let bad = routes(
        "    - policies:\n        transformations:\n          request:\n            set:\n              x-a: 'response.code'\n      backends:\n      - host: 127.0.0.1:1\n",
    );
    let err = Gateway::refused(&bad).await;
    assert!(err.contains("transformations.request.set.x-a: `response` is not known here"), "{err}");
    let yaml = agw_testkit::harness::mcp_route(
        "http://127.0.0.1:1/mcp",
        "      policies:\n        transformations:\n          request:\n            body: request.body\n",
    );
    let err = Gateway::refused(&yaml).await;
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
