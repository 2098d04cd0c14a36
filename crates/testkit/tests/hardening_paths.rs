//! Request-path normalisation: every spelling of a protected path is either matched by the
//! protected route (401 without a token) or refused (400); none reaches a backend through an
//! open route, and backends receive the normal form.

use std::net::SocketAddr;

use agw_testkit::harness::Gateway;
use agw_testkit::jwt::{self, Alg, TestKey, claims};
use agw_testkit::recorder::Recorder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ISS: &str = "https://idp.test";
const AUD: &str = "mcp.test";
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// Spellings that name `/admin<rest>` once normalised, or that must be refused.
fn bypasses(rest: &str) -> Vec<String> {
    [
        "/x/../admin",
        "/./admin",
        "//admin",
        "///admin",
        "/%61dmin",
        "/adm%69n",
        "/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/../admin",
        "/admin/.",
        "/admin/./.",
        "/admin%2F",
        "/admin%2f",
        "/admin%5c",
        "/admin%5C",
        "/public/..%2Fadmin",
        "/public%2F..%2Fadmin",
        "/admin\\",
        "/public\\..\\admin",
        "/admin%00",
        "/%zzadmin",
    ]
    .iter()
    .map(|p| format!("{p}{rest}"))
    .collect()
}

fn jwt_policy(key: &TestKey) -> String {
    format!(
        "      policies:\n        jwtAuth:\n          mode: strict\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n",
        jwt::jwks(&[key], false)
    )
}

/// One request written by hand (the path goes out exactly as given); the status, or 0 when
/// the gateway closed the connection without an answer.
async fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn host_routes_see_one_path_and_no_spelling_skips_authentication() {
    let key = TestKey::generate("k1", Alg::ES256);
    let backend = Recorder::start().await.unwrap();
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: admin\n      matches:\n      - path:\n          pathPrefix: /admin\n{}      backends:\n      - host: {addr}\n    - name: open\n      backends:\n      - host: {addr}\n",
        jwt_policy(&key),
        addr = backend.server.addr
    );
    let gw = Gateway::start(&yaml).await.unwrap();

    for path in bypasses("/secret") {
        let status = raw(gw.addr, "POST", &path, &[], INIT).await;
        assert!(status == 401 || status == 400, "{path:?}: got {status}");
    }
    assert!(backend.seen().is_empty(), "nothing reached the backend: {:?}", backend.seen());

    // The open route still works, and the backend gets the normal form.
    assert_eq!(raw(gw.addr, "POST", "/public//a/./b/../%7Euser?q=%2F", &[], INIT).await, 200);
    assert_eq!(backend.last().path, "/public/a/~user?q=%2F");

    // With a token, a non-normal spelling of the protected path reaches it, normalised.
    let bearer = format!("Bearer {}", key.token(&claims(ISS, AUD)));
    let auth = [("authorization", bearer.as_str())];
    assert_eq!(raw(gw.addr, "POST", "/x/../%61dmin//secret", &auth, INIT).await, 200);
    assert_eq!(backend.last().path, "/admin/secret");
    assert_eq!(raw(gw.addr, "POST", "/admin%2Fsecret", &auth, INIT).await, 400, "refused even with a token");
}

#[tokio::test]
async fn mcp_routes_see_one_path_and_no_spelling_skips_authentication() {
    let key = TestKey::generate("k1", Alg::ES256);
    let backend = Recorder::start().await.unwrap();
    let target = |name: &str| {
        format!(
            "      backends:\n      - mcp:\n          targets:\n          - name: {name}\n            mcp:\n              host: {}\n",
            backend.url()
        )
    };
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: admin-mcp\n      matches:\n      - path:\n          pathPrefix: /admin/mcp\n{}{}    - name: open-mcp\n{}",
        jwt_policy(&key),
        target("admin"),
        target("open")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mcp_headers = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")];

    for path in bypasses("/mcp") {
        let status = raw(gw.addr, "POST", &path, &mcp_headers, INIT).await;
        assert!(status == 401 || status == 400, "{path:?}: got {status}");
    }
    assert!(backend.seen().is_empty(), "nothing reached the upstream: {:?}", backend.seen());

    assert_eq!(raw(gw.addr, "POST", "/public/mcp", &mcp_headers, INIT).await, 200, "the open route works");
    let bearer = format!("Bearer {}", key.token(&claims(ISS, AUD)));
    let mut with_token = mcp_headers.to_vec();
    with_token.push(("authorization", bearer.as_str()));
    assert_eq!(
        raw(gw.addr, "POST", "/admin/./mcp", &with_token, INIT).await,
        200,
        "the token opens the protected route"
    );
    assert_eq!(backend.seen().len(), 2);
}
