//! Listeners, routes, the plain HTTP backend, and the admin and readiness servers.

use agw_mcp::body;
use agw_testkit::harness::Gateway;
use agw_testkit::serve;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Got {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Got {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.request(b.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
    let (parts, b) = resp.into_parts();
    let bytes = b.collect().await.unwrap().to_bytes();
    Got { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// An HTTP upstream that describes the request it received.
async fn echo_server(name: &'static str) -> serve::Server {
    serve::app("127.0.0.1:0".parse().unwrap(), move |req: Request<hyper::body::Incoming>| async move {
        let (parts, b) = req.into_parts();
        let bytes = b.collect().await.unwrap().to_bytes();
        let seen = serde_json::json!({
            "server": name,
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "host": parts.headers.get("host").and_then(|v| v.to_str().ok()),
            "xff": parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            "connection_header": parts.headers.get("x-hop").is_some(),
            "added": parts.headers.get("x-added").and_then(|v| v.to_str().ok()),
            "body": String::from_utf8_lossy(&bytes),
        });
        let mut r = http::Response::new(body::full(seen.to_string()));
        r.headers_mut().insert("x-upstream", name.parse().unwrap());
        r
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn routes_pick_the_most_specific_match_and_proxy_http() {
    let a = echo_server("a").await;
    let b = echo_server("b").await;
    let c = echo_server("c").await;
    let yaml = format!(
        "binds:
- port: 0
  listeners:
  - routes:
    - name: catchall
      backends:
      - host: {a}
    - name: api
      matches:
      - path:
          pathPrefix: /api
        method: POST
      policies:
        requestHeaderModifier:
          add:
            x-added: yes-it-was
      backends:
      - host: {b}
    - name: tenant
      matches:
      - path:
          pathPrefix: /api
        headers:
        - name: x-tenant
          value:
            regex: 't[0-9]+'
      backends:
      - host: {c}
",
        a = a.addr,
        b = b.addr,
        c = c.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();

    let got = send("GET", &gw.url("/anything?q=1"), &[], "").await;
    assert_eq!(got.status, StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(seen["server"], "a");
    assert_eq!(seen["uri"], "/anything?q=1");
    assert_eq!(seen["host"].as_str(), Some(a.addr.to_string().as_str()));
    assert_eq!(seen["xff"], "127.0.0.1");

    let got = send("POST", &gw.url("/api/v1"), &[("connection", "x-hop"), ("x-hop", "1")], "payload").await;
    let seen: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(seen["server"], "b");
    assert_eq!(seen["body"], "payload");
    assert_eq!(seen["added"], "yes-it-was");
    assert_eq!(seen["connection_header"], false, "headers named in Connection are hop-by-hop");
    assert_eq!(got.headers["x-upstream"], "b");

    // Same prefix length: the match with a method outranks the one with a header.
    let got = send("POST", &gw.url("/api"), &[("x-tenant", "t1")], "").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&got.body).unwrap()["server"], "b");
    let got = send("GET", &gw.url("/api"), &[("x-tenant", "t1")], "").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&got.body).unwrap()["server"], "c");
    let got = send("GET", &gw.url("/api"), &[("x-tenant", "nope")], "").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&got.body).unwrap()["server"], "a");
    // `/apix` is not under the `/api` prefix.
    let got = send("POST", &gw.url("/apix"), &[], "").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&got.body).unwrap()["server"], "a");
}

#[tokio::test]
async fn unmatched_requests_get_404_and_dead_upstreams_502() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - hostname: api.test\n    routes:\n    - matches:\n      - path:\n          exact: /only\n      backends:\n      - host: {dead}\n"
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let got = send("GET", &gw.url("/only"), &[("host", "other.test")], "").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(got.body, r#"{"error":"no listener for this host name"}"#);
    let got = send("GET", &gw.url("/else"), &[("host", "api.test")], "").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(got.body, r#"{"error":"no route matches this request"}"#);
    let got = send("GET", &gw.url("/only"), &[("host", "api.test")], "").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.body, r#"{"error":"upstream is unreachable"}"#);
}

#[tokio::test]
async fn admin_dump_redacts_secrets_and_readiness_answers() {
    let yaml = "binds:
- port: 0
  listeners:
  - routes:
    - policies:
        requestHeaderModifier:
          set:
            authorization: Bearer super-secret-upstream-token
      backends:
      - host: 127.0.0.1:9
";
    let gw = Gateway::start(yaml).await.unwrap();
    let admin = gw.admin.unwrap();
    let dump = send("GET", &format!("http://{admin}/config_dump"), &[], "").await;
    assert_eq!(dump.status, StatusCode::OK);
    assert!(!dump.body.contains("super-secret-upstream-token"), "{}", dump.body);
    let v: serde_json::Value = serde_json::from_str(&dump.body).unwrap();
    assert_eq!(
        v["binds"][0]["listeners"][0]["routes"][0]["policies"]["requestHeaderModifier"]["set"]["authorization"],
        "<redacted>"
    );
    assert_eq!(v["binds"][0]["listeners"][0]["routes"][0]["backends"][0]["host"], "127.0.0.1:9");

    let ui = send("GET", &format!("http://{admin}/ui/"), &[], "").await;
    assert_eq!(ui.status, StatusCode::OK);
    assert!(ui.body.contains("<title>agentgateway admin</title>"));

    let ready = send("GET", &format!("http://{}/healthz/ready", gw.readiness.unwrap()), &[], "").await;
    assert_eq!(ready.status, StatusCode::OK);
}
