//! `mcpAuthentication`'s authorization-server endpoints against a scripted identity provider:
//! what is fetched (and how often), how documents are adapted, what registration relays, and
//! how broken or hostile upstream answers end (a 502, never a panic or a leak).

use std::sync::{Arc, Mutex};

use agw_mcp::body;
use agw_testkit::harness::Gateway;
use agw_testkit::jwt::{self, Alg, TestKey};
use agw_testkit::serve::{self, Server};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// What the scripted provider saw: `METHOD path`, and the registration (and Entra token)
/// requests.
#[derive(Default)]
struct Seen {
    requests: Vec<String>,
    registrations: Vec<(HeaderMap, Bytes)>,
}

/// A provider with a few issuers under one port: `/kc` (a well-behaved Keycloak realm), and
/// issuers whose metadata is too large, not JSON, not an object, or an HTTP error.
async fn scripted_idp() -> (Server, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    let server = serve::app("127.0.0.1:0".parse().unwrap(), move |req| {
        let log = log.clone();
        async move {
            let (parts, b) = req.into_parts();
            let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let path = parts.uri.path().to_string();
            log.lock().unwrap().requests.push(format!("{} {path}", parts.method));
            let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
            let (status, body) = match path.as_str() {
                "/kc/.well-known/openid-configuration" => (200, metadata(&format!("http://{host}/kc")).to_string()),
                "/rfc/.well-known/oauth-authorization-server" | "/.well-known/oauth-authorization-server/rfc" => {
                    (200, metadata(&format!("http://{host}/rfc")).to_string())
                }
                "/tenant-x/v2.0/.well-known/openid-configuration" => {
                    let mut doc = metadata(&format!("http://{host}/tenant-x/v2.0"));
                    doc.as_object_mut().unwrap().retain(|k, _| k != "registration_endpoint" && !k.starts_with("code_"));
                    (200, doc.to_string())
                }
                "/tenant-x/oauth2/v2.0/token" => {
                    log.lock().unwrap().registrations.push((parts.headers.clone(), bytes));
                    (200, json!({"access_token": "t", "token_type": "Bearer"}).to_string())
                }
                "/kc/clients-registrations/openid-connect" => {
                    log.lock().unwrap().registrations.push((parts.headers.clone(), bytes));
                    (
                        400,
                        json!({"error": "invalid_redirect_uri", "error_description": "from the provider"}).to_string(),
                    )
                }
                "/big/.well-known/openid-configuration" => (200, format!("{{\"x\":\"{}\"}}", "a".repeat(300 << 10))),
                "/html/.well-known/openid-configuration" => (200, "<html>sign in</html>".into()),
                "/array/.well-known/openid-configuration" => (200, "[1,2,3]".into()),
                "/nothing/.well-known/openid-configuration" => (200, json!({"issuer": "x"}).to_string()),
                _ => (500, "internal detail: db at 10.9.8.7".into()),
            };
            let mut r = Response::new(body::full(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r.headers_mut().insert("content-type", "application/json".parse().unwrap());
            r.headers_mut().insert("set-cookie", "provider-session=1".parse().unwrap());
            r
        }
    })
    .await
    .unwrap();
    (server, seen)
}

fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
        "registration_endpoint": format!("{issuer}/clients-registrations/openid-connect"),
        "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
        "code_challenge_methods_supported": ["S256"],
    })
}

/// A route per `(path, mcpAuthentication extra YAML)`, each with an inline JWKS (no key fetch).
fn config(routes: &[(&str, &str)]) -> String {
    let key = TestKey::generate("k1", Alg::ES256);
    let jwks = format!("'{}'", jwt::jwks(&[&key], false));
    let mut yaml = "binds:\n- port: 0\n  listeners:\n  - routes:\n".to_string();
    for (i, (path, extra)) in routes.iter().enumerate() {
        yaml.push_str(&format!(
            "    - name: r{i}\n      matches:\n      - path:\n          pathPrefix: {path}\n      policies:\n        mcpAuthentication:\n          jwks: {jwks}\n{extra}      backends:\n      - host: 127.0.0.1:1\n"
        ));
    }
    yaml
}

async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, HeaderMap, String) {
    use http_body_util::Full;
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.request(b.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn json_at(url: &str) -> Value {
    let (status, _, body) = send("GET", url, &[], "").await;
    assert_eq!(status, StatusCode::OK, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn keycloak_metadata_is_fetched_once_adapted_and_served_without_a_token() {
    let (idp, seen) = scripted_idp().await;
    let issuer = idp.url("/kc");
    let extra = format!(
        "          mode: strict\n          issuer: {issuer}\n          provider:\n            keycloak: {{}}\n"
    );
    let gw = Gateway::start(&config(&[("/mcp", &extra)])).await.unwrap();
    let base = gw.url("");

    let prm = json_at(&gw.url("/.well-known/oauth-protected-resource/mcp")).await;
    assert_eq!(prm["authorization_servers"], json!([format!("{base}/mcp")]), "a provider makes the gateway the AS");
    assert_eq!(prm["mcp_protocol_version"], "2025-06-18");
    assert_eq!(prm["resource_type"], "mcp-server");

    for url in [
        gw.url("/.well-known/oauth-authorization-server/mcp"),
        gw.url("/.well-known/oauth-authorization-server/mcp"),
        gw.url("/mcp/.well-known/oauth-authorization-server"),
    ] {
        let doc = json_at(&url).await;
        assert_eq!(doc["issuer"], format!("{base}/mcp"), "{url}");
        assert_eq!(doc["registration_endpoint"], format!("{url}/client-registration"));
        assert_eq!(doc["authorization_endpoint"], format!("{issuer}/protocol/openid-connect/auth"), "kept");
    }
    let fetched = seen.lock().unwrap().requests.iter().filter(|r| r.contains("openid-configuration")).count();
    assert_eq!(fetched, 1, "cached: {:?}", seen.lock().unwrap().requests);

    let (status, headers, _) =
        send("OPTIONS", &gw.url("/.well-known/oauth-authorization-server/mcp/client-registration"), &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let (status, headers, _) =
        send("GET", &gw.url("/.well-known/oauth-authorization-server/mcp/client-registration"), &[], "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST, OPTIONS");

    // A path no mcpAuthentication route answers for is not served (and fetches nothing).
    let (status, _, _) = send("GET", &gw.url("/.well-known/oauth-authorization-server/other"), &[], "").await;
    assert_ne!(status, StatusCode::OK);
    // The protected route itself still wants a token.
    assert_eq!(send("POST", &gw.url("/mcp"), &[], "{}").await.0, StatusCode::UNAUTHORIZED);
    gw.stop().await;
}

#[tokio::test]
async fn registration_is_relayed_to_the_derived_endpoint_with_cors_and_nothing_else() {
    let (idp, seen) = scripted_idp().await;
    let extra = format!("          issuer: {}\n          provider:\n            keycloak: {{}}\n", idp.url("/kc"));
    let gw = Gateway::start(&config(&[("/mcp", &extra)])).await.unwrap();
    let url = gw.url("/.well-known/oauth-authorization-server/mcp/client-registration");
    let request = r#"{"redirect_uris":["http://localhost:1/cb"],"client_name":"t"}"#;
    let (status, headers, body) = send(
        "POST",
        &url,
        &[("content-type", "text/plain"), ("authorization", "Bearer initial-access-token"), ("cookie", "c=1")],
        request,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the provider's status reaches the client: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "invalid_redirect_uri");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers.get("set-cookie").is_none(), "the provider's cookies are not relayed");

    let (sent_headers, sent_body) =
        seen.lock().unwrap().registrations.last().cloned().expect("the provider got the registration");
    assert_eq!(sent_body.as_ref(), request.as_bytes(), "the body unchanged");
    assert_eq!(sent_headers["content-type"], "application/json");
    assert_eq!(sent_headers["authorization"], "Bearer initial-access-token", "an initial access token goes along");
    assert!(sent_headers.get("cookie").is_none(), "nothing else does");

    let (status, _, _) = send("POST", &url, &[], &"x".repeat(70 << 10)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    gw.stop().await;
}

#[tokio::test]
async fn without_a_provider_the_metadata_is_the_issuers_own() {
    let (idp, _seen) = scripted_idp().await;
    let issuer = idp.url("/rfc");
    let extra = format!("          issuer: {issuer}\n          clientId: my-app\n");
    let gw = Gateway::start(&config(&[("/mcp", &extra)])).await.unwrap();
    let prm = json_at(&gw.url("/.well-known/oauth-protected-resource/mcp")).await;
    assert_eq!(prm["authorization_servers"], json!([issuer]), "clients go to the issuer");
    let doc = json_at(&gw.url("/.well-known/oauth-authorization-server/mcp")).await;
    assert_eq!(doc, metadata(&issuer), "served as fetched from <origin>/.well-known/oauth-authorization-server/rfc");

    let (status, headers, body) = send(
        "POST",
        &gw.url("/.well-known/oauth-authorization-server/mcp/client-registration"),
        &[("content-type", "application/json")],
        r#"{"redirect_uris":["http://127.0.0.1:5/cb"],"client_id":"chosen-by-client","scope":"admin"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["access-control-allow-origin"], "*");
    let reg: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reg["client_id"], "my-app");
    assert_eq!(reg["redirect_uris"], json!(["http://127.0.0.1:5/cb"]));
    assert!(reg.get("scope").is_none(), "nothing else the client sent is echoed");
    gw.stop().await;
}

#[tokio::test]
async fn broken_provider_answers_end_in_a_502_that_leaks_nothing() {
    let (idp, seen) = scripted_idp().await;
    let dead = format!("http://127.0.0.1:{}", agw_testkit::node::free_port().await);
    let route =
        |issuer: String| format!("          issuer: {issuer}\n          provider:\n            keycloak: {{}}\n");
    let cases = [
        ("/big", route(idp.url("/big"))),
        ("/html", route(idp.url("/html"))),
        ("/array", route(idp.url("/array"))),
        ("/nothing", route(idp.url("/nothing"))),
        ("/err", route(idp.url("/err"))),
        ("/dead", route(format!("{dead}/realm"))),
    ];
    let routes: Vec<(&str, &str)> = cases.iter().map(|(p, e)| (*p, e.as_str())).collect();
    let gw = Gateway::start(&config(&routes)).await.unwrap();
    for (path, _) in &cases {
        let url = gw.url(&format!("/.well-known/oauth-authorization-server{path}"));
        let (status, _, body) = send("GET", &url, &[], "").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {body}");
        for leak in ["10.9.8.7", "127.0.0.1", "sign in"] {
            assert!(!body.contains(leak), "{path}: {body}");
        }
    }
    // A failure is remembered briefly: asking again does not fetch again.
    let before = seen.lock().unwrap().requests.len();
    let (status, _, _) = send("GET", &gw.url("/.well-known/oauth-authorization-server/html"), &[], "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(seen.lock().unwrap().requests.len(), before);
    gw.stop().await;
}

#[tokio::test]
async fn providers_without_registration_need_a_client_id() {
    let extra =
        "          issuer: https://auth.example/application/o/app/\n          provider:\n            authentik: {}\n";
    let gw = Gateway::start(&config(&[("/mcp", extra)])).await.unwrap();
    let (status, _, body) =
        send("POST", &gw.url("/.well-known/oauth-authorization-server/mcp/client-registration"), &[], "{}").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert!(body.contains("clientId"), "the answer says what to configure: {body}");
    gw.stop().await;
}

#[tokio::test]
async fn entra_authorize_is_answered_by_the_gateway() {
    let extra = "          issuer: https://sts.windows.net/tenant-9/\n          provider:\n            entra: {}\n          clientId: app-9\n          clientSecret: entra-secret-planted\n";
    let yaml = format!(
        "config:\n  adminAddr: 127.0.0.1:0\n  readinessAddr: 'off'\n  statsAddr: 'off'\n{}",
        config(&[("/mcp", extra)])
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let (status, headers, _) = send(
        "GET",
        &gw.url("/.well-known/oauth-authorization-server/mcp/authorize?client_id=app-9&resource=http%3A%2F%2Fgw%2Fmcp&state=s"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        headers["location"], "https://login.microsoftonline.com/tenant-9/oauth2/v2.0/authorize?client_id=app-9&state=s",
        "the v1 issuer's tenant, on the login host, without resource"
    );
    let (status, _, body) =
        send("POST", &gw.url("/.well-known/oauth-authorization-server/mcp/client-registration"), &[], "{}").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["client_id"], "app-9");
    let admin = gw.admin.unwrap();
    let (_, dump) = agw_testkit::client::http("GET", &format!("http://{admin}/config_dump"), &[], "").await.unwrap();
    assert!(dump.contains("app-9") && !dump.contains("entra-secret-planted"), "{dump}");
    gw.stop().await;
}

#[tokio::test]
async fn provider_configs_are_checked_at_load() {
    for (extra, message) in [
        (
            "          issuer: agentgateway.dev\n          provider:\n            keycloak: {}\n",
            "mcpAuthentication.issuer: with `provider: {keycloak: {}}` the issuer must be an http(s) URL",
        ),
        (
            "          issuer: https://login.microsoftonline.com/\n          provider:\n            entra: {}\n",
            "is not an Entra issuer",
        ),
        ("          issuer: https://idp\n          provider:\n            gitlab: {}\n", "unknown variant `gitlab`"),
        ("          issuer: https://idp\n          provider: keycloak\n", "mcpAuthentication.provider"),
    ] {
        let err = Gateway::start(&config(&[("/mcp", extra)])).await.err().expect("refused").to_string();
        assert!(err.contains(message), "expected `{message}` in:\n{err}");
    }
}

/// agentgateway's `examples/mcp-authentication` layout (scenario C): `exact` matches for the
/// resource and for each well-known path on the same route.
#[tokio::test]
async fn agentgateway_example_layout_with_exact_matches() {
    let (idp, seen) = scripted_idp().await;
    let key = TestKey::generate("k1", Alg::ES256);
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - matches:\n      - path:\n          exact: /keycloak/mcp\n      - path:\n          exact: /.well-known/oauth-protected-resource/keycloak/mcp\n      - path:\n          exact: /.well-known/oauth-authorization-server/keycloak/mcp\n      - path:\n          exact: /.well-known/oauth-authorization-server/keycloak/mcp/client-registration\n      policies:\n        cors:\n          allowHeaders: [mcp-protocol-version, content-type]\n          allowOrigins: ['*']\n        mcpAuthentication:\n          issuer: {}\n          audiences: [mcp_proxy]\n          jwks: '{}'\n          provider:\n            keycloak: {{}}\n          resourceMetadata:\n            resource: http://localhost:3000/keycloak/mcp\n            scopesSupported: [profile, offline_access, openid]\n            bearerMethodsSupported: [header, body, query]\n            resourceDocumentation: http://localhost:3000/keycloak/docs\n      backends:\n      - host: 127.0.0.1:1\n",
        idp.url("/kc"),
        jwt::jwks(&[&key], false)
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let prm = json_at(&gw.url("/.well-known/oauth-protected-resource/keycloak/mcp")).await;
    assert_eq!(prm["resource"], "http://localhost:3000/keycloak/mcp");
    assert_eq!(prm["authorization_servers"], json!([gw.url("/keycloak/mcp")]));
    assert_eq!(prm["bearer_methods_supported"], json!(["header", "body", "query"]), "configured keys win");
    assert_eq!(prm["resource_documentation"], "http://localhost:3000/keycloak/docs");
    let meta_url = gw.url("/.well-known/oauth-authorization-server/keycloak/mcp");
    let doc = json_at(&meta_url).await;
    assert_eq!(doc["registration_endpoint"], format!("{meta_url}/client-registration"));
    let (status, headers, _) =
        send("POST", &format!("{meta_url}/client-registration"), &[], r#"{"redirect_uris":["http://localhost:9/cb"]}"#)
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the scripted provider's answer");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(seen.lock().unwrap().registrations.len(), 1);
    assert_eq!(send("POST", &gw.url("/keycloak/mcp"), &[], "{}").await.0, StatusCode::UNAUTHORIZED);
    gw.stop().await;
}

/// Entra's token endpoint through the gateway (a national-cloud style issuer on the scripted
/// provider): `resource` dropped, the secret added only where it belongs, the answer relayed.
#[tokio::test]
async fn entra_token_requests_get_the_secret_only_for_delegated_grants_of_the_client() {
    let (idp, seen) = scripted_idp().await;
    let extra = format!(
        "          issuer: {}\n          provider:\n            entra: {{}}\n          clientId: app-x\n          clientSecret: s3cret-planted\n",
        idp.url("/tenant-x/v2.0")
    );
    let gw = Gateway::start(&config(&[("/mcp", &extra)])).await.unwrap();
    let meta_url = gw.url("/.well-known/oauth-authorization-server/mcp");
    let doc = json_at(&meta_url).await;
    for (key, endpoint) in [
        ("authorization_endpoint", "authorize"),
        ("token_endpoint", "token"),
        ("registration_endpoint", "client-registration"),
    ] {
        assert_eq!(doc[key], format!("{meta_url}/{endpoint}"));
    }
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));

    let token = format!("{meta_url}/token");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let last = || seen.lock().unwrap().registrations.last().cloned().unwrap();
    let (status, headers, body) = send(
        "POST",
        &token,
        &form,
        "grant_type=authorization_code&client_id=app-x&code=c1&code_verifier=v1&resource=http%3A%2F%2Fgw%2Fmcp",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["access_token"], "t");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.get("set-cookie").is_none());
    let (sent_headers, sent) = last();
    let sent = String::from_utf8_lossy(&sent).into_owned();
    assert_eq!(
        sent,
        "grant_type=authorization_code&client_id=app-x&code=c1&code_verifier=v1&client_secret=s3cret-planted"
    );
    assert_eq!(sent_headers["content-type"], "application/x-www-form-urlencoded");

    for body in [
        "grant_type=client_credentials&client_id=app-x&scope=x",
        "grant_type=authorization_code&client_id=someone-else&code=c",
    ] {
        assert_eq!(send("POST", &token, &form, body).await.0, StatusCode::OK);
        let sent = String::from_utf8_lossy(&last().1).into_owned();
        assert_eq!(sent, body, "forwarded unchanged, no secret");
    }
    let (_, _, _) = send(
        "POST",
        &token,
        &[("content-type", "application/x-www-form-urlencoded"), ("authorization", "Basic Y2xpZW50OnNlY3JldA==")],
        "grant_type=refresh_token&client_id=app-x&refresh_token=r",
    )
    .await;
    let (sent_headers, sent) = last();
    assert!(
        !String::from_utf8_lossy(&sent).contains("s3cret"),
        "a client that authenticates itself gets nothing added"
    );
    assert_eq!(sent_headers["authorization"], "Basic Y2xpZW50OnNlY3JldA==");

    assert_eq!(send("GET", &token, &[], "").await.0, StatusCode::METHOD_NOT_ALLOWED);
    gw.stop().await;
}

/// Without `jwks` (or with `{url: ""}`), the keys are fetched from the preset's location.
#[tokio::test]
async fn jwks_come_from_the_presets_location() {
    let (idp, seen) = scripted_idp().await;
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - matches:\n      - path:\n          pathPrefix: /a\n      policies:\n        mcpAuthentication:\n          issuer: {}\n          provider:\n            keycloak: {{}}\n          jwks:\n            url: ''\n      backends:\n      - host: 127.0.0.1:1\n    - matches:\n      - path:\n          pathPrefix: /b\n      policies:\n        mcpAuthentication:\n          issuer: {}\n      backends:\n      - host: 127.0.0.1:1\n",
        idp.url("/kc"),
        idp.url("/rfc/")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let wanted = ["GET /kc/protocol/openid-connect/certs", "GET /rfc/.well-known/jwks.json"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !wanted.iter().all(|w| seen.lock().unwrap().requests.iter().any(|r| r == w)) {
        assert!(std::time::Instant::now() < deadline, "{:?}", seen.lock().unwrap().requests);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    gw.stop().await;
}
