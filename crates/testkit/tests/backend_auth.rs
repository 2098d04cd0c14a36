//! `backendAuth.key` (short and long form, inline, `{file}`, `$VAR`), `credentials[]` in header
//! and query locations, and backend and target `policies` with the precedence route < backend
//! < target, seen from upstreams that record what reaches them.

use agw_testkit::client::{McpClient, http};
use agw_testkit::harness::Gateway;
use agw_testkit::recorder::Recorder;
use serde_json::json;

/// One MCP route to `url` with `route` (YAML under `policies:`, indented 8) and `target`
/// (indented 14) policies; empty: none.
fn config(url: &str, route: &str, target: &str) -> String {
    let route = if route.is_empty() { String::new() } else { format!("      policies:\n{route}") };
    let target = if target.is_empty() { String::new() } else { format!("            policies:\n{target}") };
    format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - name: mcp\n{route}      backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: {url}\n{target}"
    )
}

/// Sends `initialize` and one `tools/list` through the gateway; what the upstream saw last.
async fn call(gw: &Gateway, up: &Recorder) -> agw_testkit::recorder::Seen {
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    c.request("tools/list", json!({})).await.unwrap();
    up.last()
}

fn header<'a>(seen: &'a agw_testkit::recorder::Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn key_short_long_file_and_env_forms() {
    let up = Recorder::start().await.unwrap();
    let url = up.url();

    let gw = Gateway::start(&config(&url, "        backendAuth:\n          key: s3cr3t-short\n", "")).await.unwrap();
    assert_eq!(header(&call(&gw, &up).await, "authorization"), Some("Bearer s3cr3t-short"));

    let long = "        backendAuth:\n          key:\n            value: s3cr3t-long\n            location:\n              header: {name: x-api-key}\n";
    let gw = Gateway::start(&config(&url, long, "")).await.unwrap();
    let seen = call(&gw, &up).await;
    assert_eq!(header(&seen, "x-api-key"), Some("s3cr3t-long"));
    assert_eq!(header(&seen, "authorization"), None);

    let dir = std::env::temp_dir().join(format!("agw-backend-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key.txt");
    std::fs::write(&file, "s3cr3t-from-file\n").unwrap();
    let from_file = format!("        backendAuth:\n          key: {{file: {}}}\n", file.display());
    let gw = Gateway::start(&config(&url, &from_file, "")).await.unwrap();
    assert_eq!(header(&call(&gw, &up).await, "authorization"), Some("Bearer s3cr3t-from-file"));

    // `$VAR`, with a variable cargo sets for every test process.
    let from_env = "        backendAuth:\n          key:\n            value: $CARGO_PKG_NAME\n";
    let gw = Gateway::start(&config(&url, from_env, "")).await.unwrap();
    assert_eq!(header(&call(&gw, &up).await, "authorization"), Some("Bearer agw-testkit"));

    // Never in /config_dump.
    let gw = Gateway::start(&config(&url, "        backendAuth:\n          key: s3cr3t-short\n", "")).await.unwrap();
    let admin = gw.admin.unwrap();
    let (_, dump) = http("GET", &format!("http://{admin}/config_dump"), &[], "").await.unwrap();
    assert!(!dump.contains("s3cr3t") && dump.contains("<redacted>"), "{dump}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn credentials_go_to_headers_and_query_parameters() {
    let up = Recorder::start().await.unwrap();
    let creds = "        backendAuth:\n          key: main-key\n          credentials:\n          - location: {header: {name: dd-api-key}}\n            key: dd-secret\n          - location: {header: {name: x-auth-token, prefix: 'Token '}}\n            key: tok\n          - location: {queryParameter: {name: api_key}}\n            key: q-secret\n";
    let gw = Gateway::start(&config(&up.url(), creds, "")).await.unwrap();
    let seen = call(&gw, &up).await;
    assert_eq!(header(&seen, "authorization"), Some("Bearer main-key"));
    assert_eq!(header(&seen, "dd-api-key"), Some("dd-secret"));
    assert_eq!(header(&seen, "x-auth-token"), Some("Token tok"));
    assert_eq!(seen.path, "/mcp?api_key=q-secret");

    // On a `host:` backend, per request: the query parameter joins the client's.
    let host = up.server.addr.to_string();
    let yaml = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: {host}\n        policies:\n          backendAuth:\n            credentials:\n            - location: {{queryParameter: {{name: api_key}}}}\n              key: q-secret\n            - location: {{header: {{name: x-key}}}}\n              key: h-secret\n"
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let (status, _) =
        http("POST", &gw.url("/mcp?page=2"), &[("content-type", "application/json")], "{}").await.unwrap();
    assert_eq!(status, 202);
    let seen = up.last();
    assert_eq!(seen.path, "/mcp?page=2&api_key=q-secret");
    assert_eq!(header(&seen, "x-key"), Some("h-secret"));
}

#[tokio::test]
async fn target_beats_backend_beats_route() {
    let up = Recorder::start().await.unwrap();
    let route = "        backendAuth:\n          key: route-key\n        requestHeaderModifier:\n          set: {x-level: route}\n";
    let target = "              backendAuth:\n                key: target-key\n              requestHeaderModifier:\n                set: {x-level: target}\n";
    let gw = Gateway::start(&config(&up.url(), route, target)).await.unwrap();
    let seen = call(&gw, &up).await;
    assert_eq!(header(&seen, "authorization"), Some("Bearer target-key"));
    assert_eq!(header(&seen, "x-level"), Some("target"));

    // Only the route's: it applies to the target.
    let gw = Gateway::start(&config(&up.url(), route, "")).await.unwrap();
    let seen = call(&gw, &up).await;
    assert_eq!((header(&seen, "authorization"), header(&seen, "x-level")), (Some("Bearer route-key"), Some("route")));

    // A modifier kind replaces the route's whole: the route's `add` is gone with the target's.
    let route_add = "        requestHeaderModifier:\n          add: {x-route-only: r}\n";
    let target_set = "              requestHeaderModifier:\n                set: {x-level: target}\n";
    let seen = call(&Gateway::start(&config(&up.url(), route_add, target_set)).await.unwrap(), &up).await;
    assert_eq!((header(&seen, "x-route-only"), header(&seen, "x-level")), (None, Some("target")));

    // A named backend's policies sit between the two.
    let named = format!(
        "binds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        backendAuth:\n          key: route-key\n        responseHeaderModifier:\n          set: {{x-answer: route}}\n      backends:\n      - backend: tools\nbackends:\n- name: tools\n  mcp:\n    targets:\n    - name: upstream\n      mcp:\n        host: {}\n  policies:\n    backendAuth:\n      key: backend-key\n    responseHeaderModifier:\n      set: {{x-answer: backend}}\n",
        up.url()
    );
    let gw = Gateway::start(&named).await.unwrap();
    let mut c = McpClient::new(gw.url("/mcp"));
    c.initialize().await.unwrap();
    let ex = c.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})).await.unwrap();
    assert_eq!(ex.header("x-answer"), Some("backend"));
    assert_eq!(header(&up.last(), "authorization"), Some("Bearer backend-key"));
}

#[tokio::test]
async fn agentgateway_backend_auth_credentials_shape_is_accepted() {
    // `local_tests/backend_auth_credentials_config.yaml`, with ports the test can use.
    let yaml = "\
binds:
- port: 0
  listeners:
  - name: http
    protocol: HTTP
    routes:
    - backends:
      - host: datadog.example.com:443
        policies:
          backendAuth:
            credentials:
              - location:
                  header:
                    name: dd-api-key
                key: primary-api-key
              - location:
                  header:
                    name: dd-application-key
                key: application-key
              - location:
                  header:
                    name: x-auth-token
                    prefix: \"Bearer \"
                key: token-value
    - backends:
      - host: combined.example.com:443
        policies:
          backendAuth:
            key:
              value: primary-creds
            credentials:
              - location:
                  header:
                    name: x-auth-email
                key: user@example.com
";
    let loaded = agw_config::load_str("c.yaml", yaml).unwrap();
    agw_gateway::resolve(&loaded).unwrap();
}

#[tokio::test]
async fn backend_auth_mistakes_are_located_and_secrets_not_shown() {
    let start = |route: &str| {
        let yaml = config("http://127.0.0.1:1/mcp", route, "");
        async move { Gateway::start(&yaml).await.err().map(|e| e.to_string()).unwrap_or_default() }
    };
    let at = "binds[0].listeners[0].routes[0].policies.backendAuth";
    let e = start("        backendAuth:\n          key: {file: /nonexistent/key}\n").await;
    assert!(e.contains(&format!("{at}.key.file: cannot read `/nonexistent/key`")), "{e}");
    let e = start("        backendAuth:\n          key: k\n          passthrough: {}\n").await;
    assert!(e.contains(&format!("{at}: one kind of backend auth at a time")), "{e}");
    let e = start("        backendAuth:\n          key: \"bad\\nsecret-value\"\n").await;
    assert!(e.contains(&format!("{at}.key: the secret has control characters")) && !e.contains("secret-value"), "{e}");
    let e = start("        backendAuth:\n          oauthTokenExchange: {}\n").await;
    assert!(e.contains(&format!("{at}.oauthTokenExchange: needs `host`")), "{e}");
    let e = start("        backendAuth:\n          gcp: {}\n").await;
    assert!(e.contains(&format!("{at}.gcp: not supported yet")), "{e}");
    // A token exchange stays a route or backend policy.
    let target = "              backendAuth:\n                oauthTokenExchange: {host: '127.0.0.1:1'}\n";
    let e = Gateway::refused(&config("http://127.0.0.1:1/mcp", "", target)).await;
    assert!(e.contains("targets[0].policies.backendAuth.oauthTokenExchange: not supported yet on MCP targets"), "{e}");
    // Passthrough stays a route policy.
    let target = "              backendAuth:\n                passthrough: {}\n";
    let e = Gateway::refused(&config("http://127.0.0.1:1/mcp", "", target)).await;
    assert!(e.contains("targets[0].policies.backendAuth.passthrough: not supported yet on backends"), "{e}");
}

/// `jwtSign` (agentgateway's traffic-jwt-sign shape): each request carries a fresh ES256 token
/// that verifies with the key's public half and has the configured claims and lifetime.
#[tokio::test]
async fn jwt_sign_tokens_verify_with_the_public_key() {
    use base64::Engine;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePrivateKey;
    let up = Recorder::start().await.unwrap();
    let key_path = agw_testkit::tls::path("a.key");
    let route = format!(
        "        backendAuth:\n          jwtSign:\n            signingKey: {{file: {key_path}}}\n            alg: ES256\n            kid: demo-key-1\n            claims:\n              iss: gateway\n              sub: svc-account\n              aud: [http://127.0.0.1:8080]\n            ttl: 120s\n        requestHeaderModifier:\n          set: {{x-token-type: KEYPAIR_JWT}}\n"
    );
    let gw = Gateway::start(&config(&up.url(), &route, "")).await.unwrap();
    let seen = call(&gw, &up).await;
    assert_eq!(header(&seen, "x-token-type"), Some("KEYPAIR_JWT"));
    let token = header(&seen, "authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap().to_string();

    let secret = p256::SecretKey::from_pkcs8_pem(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    let public = p256::ecdsa::VerifyingKey::from(secret.public_key());
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signature = p256::ecdsa::Signature::from_slice(&b64.decode(signature).unwrap()).unwrap();
    public.verify(signed.as_bytes(), &signature).expect("the token verifies with the public key");

    let (head, claims) = signed.split_once('.').unwrap();
    let head: serde_json::Value = serde_json::from_slice(&b64.decode(head).unwrap()).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(claims).unwrap()).unwrap();
    assert_eq!((head["alg"].as_str(), head["kid"].as_str()), (Some("ES256"), Some("demo-key-1")));
    assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("gateway"), Some("svc-account")));
    assert_eq!(claims["aud"], json!(["http://127.0.0.1:8080"]));
    let (iat, exp) = (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
    assert_eq!(exp - iat, 130, "ttl from signing time, iat backdated 10 s");

    // On a target: its own signer, a fresh token per request to it (the route's goes away).
    let target_sign = "              backendAuth:\n                jwtSign:\n                  signingKey: {file: KEY}\n                  alg: ES256\n                  claims: {sub: target-svc}\n"
        .replace("KEY", &key_path);
    let gw = Gateway::start(&config(&up.url(), &route, &target_sign)).await.unwrap();
    let first = header(&call(&gw, &up).await, "authorization").unwrap().to_string();
    let target_token = first.strip_prefix("Bearer ").unwrap();
    let (signed, signature) = target_token.rsplit_once('.').unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&b64.decode(signature).unwrap()).unwrap();
    public.verify(signed.as_bytes(), &signature).expect("the target's token verifies");
    let claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(signed.split_once('.').unwrap().1).unwrap()).unwrap();
    assert_eq!(claims["sub"], "target-svc", "the target's claims, not the route's");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = header(&call(&gw, &up).await, "authorization").unwrap().to_string();
    assert_ne!(first, second, "signed afresh for each request");

    // A target with its own key does not get the route's signed token.
    let target = "              backendAuth:\n                key: target-key\n";
    let gw = Gateway::start(&config(&up.url(), &route, target)).await.unwrap();
    assert_eq!(header(&call(&gw, &up).await, "authorization"), Some("Bearer target-key"));

    // A key of the wrong kind is a located error at load.
    let wrong = route.replace("alg: ES256", "alg: RS256");
    let e = Gateway::start(&config(&up.url(), &wrong, "")).await.err().unwrap().to_string();
    assert!(e.contains("policies.backendAuth.jwtSign.signingKey: not a PEM private key for RS256"), "{e}");
    assert!(!e.contains("BEGIN"), "{e}");
}
