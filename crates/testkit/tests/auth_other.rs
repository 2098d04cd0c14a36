//! Remote JWKS, MCP authentication (RFC 9728), API keys, Basic auth, CORS, and the
//! TypeScript SDK client with a bearer token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agw_mcp::body;
use agw_testkit::client::{Exchange, McpClient};
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::jwt::{self, Alg, TestKey, claims};
use agw_testkit::recorder::Recorder;
use agw_testkit::{node, reference, serve};
use http::{Response, StatusCode};
use serde_json::Value;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

async fn init_with(gw: &Gateway, headers: &[(&str, &str)]) -> Exchange {
    let mut c = McpClient::new(gw.url("/mcp"));
    for (k, v) in headers {
        c = c.with_header(k, v);
    }
    c.post_bytes(INIT, None).await.unwrap()
}

/// A key server whose JWKS the test can change or take down; it counts its requests.
struct KeyServer {
    server: serve::Server,
    jwks: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(jwks: Option<String>) -> KeyServer {
        let state = Arc::new(Mutex::new(jwks));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (state.clone(), hits.clone());
        let server = serve::app("127.0.0.1:0".parse().unwrap(), move |_req| {
            let (s, h) = (s.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                match s.lock().unwrap().clone() {
                    Some(text) => Response::new(body::full(text)),
                    None => {
                        let mut r = Response::new(body::full("down"));
                        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                        r
                    }
                }
            }
        })
        .await
        .unwrap();
        KeyServer { server, jwks: state, hits }
    }

    fn url(&self) -> String {
        self.server.url("/jwks.json")
    }

    fn set(&self, jwks: Option<String>) {
        *self.jwks.lock().unwrap() = jwks;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn remote_policy(url: &str) -> String {
    format!(
        "      policies:\n        jwtAuth:\n          mode: strict\n          issuer: https://idp.test\n          jwks:\n            url: {url}\n"
    )
}

/// Retries `f` until it returns true (keys arrive in the background).
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn remote_jwks_rotation_outage_and_fetch_storms() {
    let upstream = Recorder::start().await.unwrap();
    let old = TestKey::generate("k1", Alg::ES256);
    let new = TestKey::generate("k2", Alg::EdDSA);
    let keys = KeyServer::start(Some(jwt::jwks(&[&old], false))).await;
    let gw = Gateway::start(&mcp_route(&upstream.url(), &remote_policy(&keys.url()))).await.unwrap();
    let old_token = format!("Bearer {}", old.token(&claims("https://idp.test", "x")));
    let new_token = format!("Bearer {}", new.token(&claims("https://idp.test", "x")));

    eventually("the first fetch", async || {
        init_with(&gw, &[("authorization", &old_token)]).await.status == StatusCode::OK
    })
    .await;

    // Rotation: the key server now publishes the new key too; tokens with the new kid make
    // the gateway refetch once, without a restart. Requests that arrive together all wait for
    // that one fetch and all get in.
    keys.set(Some(jwt::jwks(&[&old, &new], false)));
    tokio::time::sleep(Duration::from_millis(10_100)).await; // past the unknown-kid cool-down
    let before = keys.hits();
    let header = [("authorization", new_token.as_str())];
    let together = futures_util::future::join_all((0..8).map(|_| init_with(&gw, &header)));
    let statuses: Vec<StatusCode> = together.await.iter().map(|ex| ex.status).collect();
    assert_eq!(statuses, vec![StatusCode::OK; 8], "concurrent requests with a freshly rotated kid");
    assert_eq!(keys.hits(), before + 1, "exactly one fetch for the new kid");

    // Random kids cannot make the gateway hammer the key server.
    let before = keys.hits();
    for i in 0..100 {
        let stranger = TestKey::generate(&format!("random-{i}"), Alg::EdDSA);
        let t = format!("Bearer {}", stranger.token(&claims("https://idp.test", "x")));
        assert_eq!(init_with(&gw, &[("authorization", &t)]).await.status, StatusCode::UNAUTHORIZED);
    }
    let storm = keys.hits() - before;
    println!("100 tokens with random kids caused {storm} JWKS fetches");
    assert!(storm <= 1, "{storm} fetches for 100 random kids");

    // Outage: the last good keys keep working.
    keys.set(None);
    assert_eq!(init_with(&gw, &[("authorization", &old_token)]).await.status, StatusCode::OK);
    assert_eq!(init_with(&gw, &[("authorization", &new_token)]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn start_up_with_the_key_server_down() {
    let upstream = Recorder::start().await.unwrap();
    let key = TestKey::generate("k1", Alg::ES256);
    let keys = KeyServer::start(None).await;
    let gw = Gateway::start(&mcp_route(&upstream.url(), &remote_policy(&keys.url()))).await.unwrap();
    let token = format!("Bearer {}", key.token(&claims("https://idp.test", "x")));
    let ex = init_with(&gw, &[("authorization", &token)]).await;
    assert_eq!(ex.status, StatusCode::UNAUTHORIZED, "no keys yet: refused, not crashed");
    keys.set(Some(jwt::jwks(&[&key], false)));
    eventually("keys after the key server comes up", async || {
        init_with(&gw, &[("authorization", &token)]).await.status == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn mcp_authentication_serves_metadata_and_challenges() {
    let upstream = Recorder::start().await.unwrap();
    let key = TestKey::generate("k1", Alg::ES256);
    let policy = format!(
        "      policies:\n        mcpAuthentication:\n          issuer: https://auth.example\n          audiences: [mcp]\n          jwks: '{}'\n          resourceMetadata:\n            scopesSupported: [read, write]\n            resourceDocumentation: https://docs.example\n",
        jwt::jwks(&[&key], false)
    );
    let yaml = mcp_route(&upstream.url(), &policy)
        .replace("    - name: mcp\n", "    - name: mcp\n      matches:\n      - path:\n          pathPrefix: /mcp\n");
    let gw = Gateway::start(&yaml).await.unwrap();
    let host = format!("127.0.0.1:{}", gw.addr.port());

    let ex = init_with(&gw, &[]).await;
    assert_eq!(ex.status, StatusCode::UNAUTHORIZED, "mcpAuthentication is strict by default");
    let expected_meta = format!("http://{host}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(ex.header("www-authenticate").unwrap(), format!("Bearer resource_metadata=\"{expected_meta}\""));

    let bad = init_with(&gw, &[("authorization", "Bearer nope")]).await;
    assert!(bad.header("www-authenticate").unwrap().contains("error=\"invalid_token\""));
    assert!(bad.header("www-authenticate").unwrap().contains(&format!("resource_metadata=\"{expected_meta}\"")));

    let doc: Value = serde_json::from_slice(&get(&expected_meta, &[]).await).unwrap();
    assert_eq!(doc["resource"], format!("http://{host}/mcp"));
    assert_eq!(doc["authorization_servers"], serde_json::json!(["https://auth.example"]));
    assert_eq!(doc["scopes_supported"], serde_json::json!(["read", "write"]));
    assert_eq!(doc["resource_documentation"], "https://docs.example");

    // Forwarded headers are ignored unless trusted.
    let doc: Value = serde_json::from_slice(
        &get(&expected_meta, &[("x-forwarded-proto", "https"), ("x-forwarded-host", "public.example")]).await,
    )
    .unwrap();
    assert_eq!(doc["resource"], format!("http://{host}/mcp"));
    let trusted = format!(
        "config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  trustForwardedHeaders: true\n{yaml}"
    );
    let gw2 = Gateway::start(&trusted).await.unwrap();
    let url2 = format!("http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp", gw2.addr.port());
    let doc: Value = serde_json::from_slice(
        &get(&url2, &[("x-forwarded-proto", "https"), ("x-forwarded-host", "public.example")]).await,
    )
    .unwrap();
    assert_eq!(doc["resource"], "https://public.example/mcp");

    let token = format!("Bearer {}", key.token(&claims("https://auth.example", "mcp")));
    assert_eq!(init_with(&gw, &[("authorization", &token)]).await.status, StatusCode::OK);
}

async fn get(url: &str, headers: &[(&str, &str)]) -> bytes::Bytes {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut b = http::Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.request(b.body(Full::default()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "GET {url}");
    resp.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn api_keys_plain_and_hashed() {
    let upstream = Recorder::start().await.unwrap();
    let policy = format!(
        "      policies:\n        apiKey:\n          mode: strict\n          keys:\n          - key: plain-secret\n            metadata: {{team: a}}\n          - keyHash: '{}'\n",
        sha256_hash("hashed-secret")
    );
    let gw = Gateway::start(&mcp_route(&upstream.url(), &policy)).await.unwrap();
    assert_eq!(init_with(&gw, &[("authorization", "Bearer plain-secret")]).await.status, StatusCode::OK);
    assert!(upstream.last().headers.get("authorization").is_none(), "the key is not forwarded");
    assert_eq!(init_with(&gw, &[("authorization", "Bearer hashed-secret")]).await.status, StatusCode::OK);
    let wrong = init_with(&gw, &[("authorization", "Bearer plain-secreT")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!String::from_utf8_lossy(&wrong.body).contains("plain-secreT"));
    assert_eq!(init_with(&gw, &[]).await.status, StatusCode::UNAUTHORIZED);

    let optional = policy.replace("mode: strict", "mode: optional");
    let gw = Gateway::start(&mcp_route(&upstream.url(), &optional)).await.unwrap();
    assert_eq!(init_with(&gw, &[]).await.status, StatusCode::OK);
    assert_eq!(init_with(&gw, &[("authorization", "Bearer wrong")]).await.status, StatusCode::UNAUTHORIZED);
}

fn sha256_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn basic_auth_with_htpasswd() {
    use base64::Engine;
    let upstream = Recorder::start().await.unwrap();
    // Inline, a hash's `$` is written `$$` (the config's `$VAR` escape, as in agentgateway).
    let policy = "      policies:\n        basicAuth:\n          mode: strict\n          realm: mcp-tools\n          htpasswd: |\n            alice:$$apr1$$xyz$$NU.niW1.aK5j0LYFfMca4/\n            bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n            carol:$$2b$$05$$abcdefghijklmnopqrstuuWG29KuyeAicPCJODk1zjyGvyQUU2awu\n";
    let gw = Gateway::start(&mcp_route(&upstream.url(), policy)).await.unwrap();
    let basic =
        |u: &str, p: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
    for user in ["alice", "bob", "carol"] {
        assert_eq!(
            init_with(&gw, &[("authorization", &basic(user, "password"))]).await.status,
            StatusCode::OK,
            "{user}"
        );
    }
    let ex = init_with(&gw, &[("authorization", &basic("alice", "wrong"))]).await;
    assert_eq!(ex.status, StatusCode::UNAUTHORIZED);
    assert_eq!(ex.header("www-authenticate"), Some("Basic realm=\"mcp-tools\""));
    assert_eq!(init_with(&gw, &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(init_with(&gw, &[("authorization", "Basic !!!")]).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cors_preflight_comes_before_authentication() {
    let upstream = Recorder::start().await.unwrap();
    let key = TestKey::generate("k1", Alg::ES256);
    let policy = format!(
        "      policies:\n        cors:\n          allowOrigins: ['https://app.example']\n          allowHeaders: ['*']\n          allowMethods: [GET, POST, DELETE]\n          exposeHeaders: [Mcp-Session-Id]\n          maxAge: 10m\n        jwtAuth:\n          mode: strict\n          issuer: https://idp.test\n          jwks: '{}'\n",
        jwt::jwks(&[&key], false)
    );
    let gw = Gateway::start(&mcp_route(&upstream.url(), &policy)).await.unwrap();
    let preflight = raw(
        "OPTIONS",
        &gw.url("/mcp"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization,content-type"),
        ],
    )
    .await;
    assert_eq!(preflight.0, StatusCode::OK, "no 401 for a preflight");
    let h = preflight.1;
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-headers"], "authorization,content-type");
    assert_eq!(h["access-control-allow-methods"], "GET, POST, DELETE");
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["vary"], "Origin");

    let denied = init_with(&gw, &[("origin", "https://app.example")]).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.header("access-control-allow-origin"), Some("https://app.example"), "a browser can read the 401");
    let token = format!("Bearer {}", key.token(&claims("https://idp.test", "x")));
    let ok = init_with(&gw, &[("origin", "https://app.example"), ("authorization", &token)]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("access-control-expose-headers"), Some("Mcp-Session-Id"));
    let other = init_with(&gw, &[("origin", "https://evil.example"), ("authorization", &token)]).await;
    assert!(other.header("access-control-allow-origin").is_none());
}

async fn raw(method: &str, url: &str, headers: &[(&str, &str)]) -> (StatusCode, http::HeaderMap) {
    use http_body_util::Full;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.request(b.body(Full::default()).unwrap()).await.unwrap();
    (resp.status(), resp.headers().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_with_a_bearer_token() {
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let key = TestKey::generate("k1", Alg::RS256);
    let policy = format!(
        "      policies:\n        jwtAuth:\n          mode: strict\n          issuer: https://idp.test\n          jwks: '{}'\n",
        jwt::jwks(&[&key], false)
    );
    let gw = Gateway::start(&mcp_route(&upstream.url("/mcp"), &policy)).await.unwrap();
    let token = key.token(&claims("https://idp.test", "x"));
    let (ok, stdout, stderr) =
        node::run_script_env("sdk-client.mjs", &[&gw.url("/mcp"), "echo"], &[("MCP_BEARER", &token)]).await;
    assert!(ok, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["echo"], "Echo: hello from the SDK");
    let (ok, stdout, _) = node::run_script_env("sdk-client.mjs", &[&gw.url("/mcp")], &[]).await;
    assert!(!ok);
    assert!(stdout.contains("401"), "the SDK reports the 401: {stdout}");
}

/// With listener-level authentication, a route's CORS preflights and its RFC 9728 metadata
/// still come first, and the listener's 401 is readable by the route's allowed origins.
#[tokio::test]
async fn listener_authentication_comes_after_route_preflights_and_metadata() {
    let upstream = Recorder::start().await.unwrap();
    let key = TestKey::generate("k1", Alg::ES256);
    let jwks = jwt::jwks(&[&key], false);
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - policies:\n      jwtAuth:\n        mode: strict\n        issuer: https://idp.test\n        jwks: '{jwks}'\n    routes:\n    - name: mcp\n      matches:\n      - path:\n          pathPrefix: /mcp\n      policies:\n        cors:\n          allowOrigins: ['https://app.example']\n          allowHeaders: ['*']\n        mcpAuthentication:\n          mode: optional\n          issuer: https://idp.test\n          jwks: '{jwks}'\n      backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: {}\n",
        upstream.url()
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let preflight = raw(
        "OPTIONS",
        &gw.url("/mcp"),
        &[("origin", "https://app.example"), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(preflight.0, StatusCode::OK, "the route's preflight is answered before the listener's jwtAuth");
    assert_eq!(preflight.1["access-control-allow-origin"], "https://app.example");

    let doc: Value =
        serde_json::from_slice(&get(&gw.url("/.well-known/oauth-protected-resource/mcp"), &[]).await).unwrap();
    assert_eq!(doc["authorization_servers"], serde_json::json!(["https://idp.test"]));

    let refused = init_with(&gw, &[("origin", "https://app.example")]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.header("access-control-allow-origin"), Some("https://app.example"));

    // The listener takes the token off the request once it is checked (the route's optional
    // mcpAuthentication then sees none).
    let token = format!("Bearer {}", key.token(&claims("https://idp.test", "x")));
    assert_eq!(init_with(&gw, &[("authorization", &token)]).await.status, StatusCode::OK);
}
