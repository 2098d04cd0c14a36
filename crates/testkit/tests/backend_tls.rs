//! `backendTLS` against in-process HTTPS upstreams (the reference MCP server over TLS, with the
//! committed test certificates): a custom CA, a wrong CA failing closed, client certificates,
//! `hostname`, `subjectAltNames`, `insecure`, `insecureHost`, precedence route < backend <
//! target, named backends and `host:` backends.

use agw_testkit::client::{McpClient, first_text, http};
use agw_testkit::harness::Gateway;
use agw_testkit::reference;
use agw_testkit::serve::Server;
use agw_testkit::tls::{path, server_config};
use serde_json::json;

/// The reference server over HTTPS with the `upstream` certificate (names `upstream.internal`,
/// `localhost`, `127.0.0.1`), requiring client certificates of `client_ca` when given.
async fn https_upstream(client_ca: Option<&str>) -> Server {
    let tls = server_config("upstream", client_ca);
    reference::serve_tls("127.0.0.1:0".parse().unwrap(), Default::default(), Some(tls)).await.unwrap()
}

/// A gateway with one MCP route to `url`; `route_tls` and `target_tls` are YAML flow maps for
/// the route's and the target's `backendTLS` (empty: none).
fn config(url: &str, route_tls: &str, target_tls: &str) -> String {
    let route = if route_tls.is_empty() {
        String::new()
    } else {
        format!("      policies:\n        backendTLS: {route_tls}\n")
    };
    let target = if target_tls.is_empty() {
        String::new()
    } else {
        format!("            policies:\n              backendTLS: {target_tls}\n")
    };
    format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: mcp\n{route}      backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: {url}\n{target}"
    )
}

fn root(ca: &str) -> String {
    format!("{{root: {}}}", path(&format!("{ca}.pem")))
}

/// `echo` through the gateway: its text, or the error the client saw.
async fn echo(gw: &Gateway) -> Result<String, String> {
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.map_err(|e| e.to_string())?;
    let answer = c.call_tool("echo", json!({"message": "tls"})).await.map_err(|e| e.to_string())?;
    first_text(&answer).map(str::to_string).ok_or_else(|| answer.to_string())
}

#[tokio::test]
async fn a_custom_ca_is_trusted_and_a_wrong_one_fails_closed() {
    let up = https_upstream(None).await;
    let url = up.url("/mcp").replace("127.0.0.1", "localhost");

    let gw = Gateway::start(&config(&url, &root("ca"), "")).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));
    assert_eq!(up.tls_names(), [Some("localhost".to_string())], "one pooled connection, SNI from the URL");

    // The system roots do not know the test CA; neither does another CA.
    for tls in ["", &root("other-ca")] {
        let gw = Gateway::start(&config(&url, tls, "")).await.unwrap();
        // The client learns which target failed, not why (the log has the TLS error).
        let err = echo(&gw).await.unwrap_err();
        assert!(err.contains("upstream MCP server 'upstream' is unreachable"), "{err}");
    }
    assert_eq!(up.tls_names().len(), 1, "no refused handshake completed");
}

#[tokio::test]
async fn a_client_certificate_is_presented() {
    let up = https_upstream(Some("ca")).await;
    let url = up.url("/mcp");
    let with_cert = format!("{{root: {}, cert: {}, key: {}}}", path("ca.pem"), path("client.pem"), path("client.key"));
    let gw = Gateway::start(&config(&url, "", &with_cert)).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));

    let foreign =
        format!("{{root: {}, cert: {}, key: {}}}", path("ca.pem"), path("client-other.pem"), path("client-other.key"));
    for tls in [root("ca"), foreign] {
        let gw = Gateway::start(&config(&url, "", &tls)).await.unwrap();
        assert!(echo(&gw).await.is_err(), "served without the right client certificate: {tls}");
    }
}

#[tokio::test]
async fn hostname_and_subject_alt_names_choose_the_name_checked() {
    let up = https_upstream(None).await;
    let url = up.url("/mcp"); // https://127.0.0.1:<port>/mcp
    let ca = path("ca.pem");

    let gw = Gateway::start(&config(&url, &format!("{{root: {ca}, hostname: upstream.internal}}"), "")).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));
    assert_eq!(up.tls_names(), [Some("upstream.internal".to_string())], "the override is the SNI");
    let gw = Gateway::start(&config(&url, &format!("{{root: {ca}, hostname: other.example.com}}"), "")).await.unwrap();
    assert!(echo(&gw).await.is_err(), "a name the certificate does not have was accepted");

    let sans = |names: &str| format!("{{root: {ca}, hostname: whatever.example.com, subjectAltNames: [{names}]}}");
    let gw = Gateway::start(&config(&url, &sans("nope.example.com, upstream.internal"), "")).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));
    let gw = Gateway::start(&config(&url, &sans("nope.example.com"), "")).await.unwrap();
    assert!(echo(&gw).await.is_err(), "subjectAltNames not enforced");
    // URI names (SPIFFE IDs) are compared exactly.
    let gw = Gateway::start(&config(&url, &sans("'spiffe://example.com/upstream'"), "")).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));
    let gw = Gateway::start(&config(&url, &sans("'spiffe://example.com/other'"), "")).await.unwrap();
    assert!(echo(&gw).await.is_err(), "a URI name the certificate does not have was accepted");
}

#[tokio::test]
async fn insecure_and_insecure_host_relax_what_they_say_and_warn() {
    let up = https_upstream(None).await;
    let url = up.url("/mcp");

    // No CA at all: only `insecure` gets through.
    let gw = Gateway::start(&config(&url, "{insecure: true}", "")).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));

    // `insecureHost`: the chain is checked, the name is not.
    let host_only = format!("{{root: {}, hostname: other.example.com, insecureHost: true}}", path("ca.pem"));
    let gw = Gateway::start(&config(&url, &host_only, "")).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));
    let wrong_ca = format!("{{root: {}, insecureHost: true}}", path("other-ca.pem"));
    let gw = Gateway::start(&config(&url, &wrong_ca, "")).await.unwrap();
    assert!(echo(&gw).await.is_err(), "insecureHost skipped the chain");

    // Both warn at load, located.
    for (tls, field) in [("{insecure: true}", "insecure"), (host_only.as_str(), "insecureHost")] {
        let loaded = agw_config::load_str("c.yaml", &config(&url, tls, "")).unwrap();
        let runtime = agw_gateway::resolve(&loaded).unwrap();
        let expected = format!("binds[0].listeners[0].routes[0].policies.backendTLS.{field}: ");
        assert!(runtime.warnings.iter().any(|w| w.contains(&expected)), "{:?}", runtime.warnings);
    }
}

#[tokio::test]
async fn target_beats_backend_beats_route() {
    let up = https_upstream(None).await;
    let url = up.url("/mcp");
    // The route's CA is wrong; the target's is right.
    let gw = Gateway::start(&config(&url, &root("other-ca"), &root("ca"))).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));
    // And the other way round fails: the target's own wins.
    let gw = Gateway::start(&config(&url, &root("ca"), &root("other-ca"))).await.unwrap();
    assert!(echo(&gw).await.is_err());

    // A backend's policies, here on a named backend a route refers to.
    let named = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: mcp\n      policies:\n        backendTLS: {}\n      backends:\n      - backend: everything\nbackends:\n- name: everything\n  mcp:\n    targets:\n    - name: upstream\n      mcp:\n        host: {url}\n  policies:\n    backendTLS: {}\n",
        root("other-ca"),
        root("ca")
    );
    let gw = Gateway::start(&named).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));
}

#[tokio::test]
async fn a_host_backend_and_an_http_url_are_upgraded_to_tls() {
    let tls = server_config("upstream", None);
    let app = agw_testkit::serve::app_tls("127.0.0.1:0".parse().unwrap(), Some(tls), |req| async move {
        http::Response::new(agw_mcp::body::full(format!("over tls: {}", req.uri().path())))
    })
    .await
    .unwrap();
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: localhost:{}\n        policies:\n          backendTLS: {}\n",
        app.addr.port(),
        root("ca")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let (status, body) = http("GET", &gw.url("/hello"), &[], "").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "over tls: /hello"));

    // An `http://` MCP target with backendTLS speaks TLS too.
    let up = https_upstream(None).await;
    let plain = up.url("/mcp").replace("https://", "http://");
    let gw = Gateway::start(&config(&plain, &root("ca"), "")).await.unwrap();
    assert_eq!(echo(&gw).await, Ok("Echo: tls".into()));
}

#[tokio::test]
async fn backend_tls_mistakes_are_located() {
    let start = |route_tls: String| async move {
        Gateway::start(&config("https://localhost:1/mcp", &route_tls, ""))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let at = "binds[0].listeners[0].routes[0].policies.backendTLS";
    let e = start("{root: nope.pem}".into()).await;
    assert!(e.contains(&format!("{at}.root: cannot read `nope.pem`")), "{e}");
    let e = start(format!("{{cert: {}}}", path("client.pem"))).await;
    assert!(e.contains(&format!("{at}.key: missing")), "{e}");
    let e = start(format!("{{cert: {}, key: {}}}", path("client.pem"), path("a.key"))).await;
    assert!(e.contains(&format!("{at}.key: ")) && e.contains("cannot be used with the certificate"), "{e}");
    let e = start("{alpn: [spdy/3]}".into()).await;
    assert!(e.contains(&format!("{at}.alpn: `spdy/3`")), "{e}");
    let e = start("{insecure: true, subjectAltNames: [a.example.com]}".into()).await;
    assert!(e.contains(&format!("{at}.insecure: ")), "{e}");
    let e = start("{spiffe: {}}".into()).await;
    assert!(e.contains(&format!("{at}.spiffe: not supported yet")), "{e}");
    // A stdio target has nothing to secure.
    let stdio = "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: s\n            stdio: {cmd: x}\n            policies:\n              backendTLS: {insecure: true}\n";
    let e = Gateway::start(stdio).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("targets[0].policies.backendTLS: a stdio target has no network connection"), "{e}");
}
