//! MCP authorization end to end with real parts: npm `oidc-provider` (an OpenID certified
//! provider) as the authorization server, the gateway with `mcpAuthentication` in front of the
//! reference MCP server, and the official TypeScript SDK client with its OAuth client
//! provider (`tests/node/oauth-client.mjs`). Discovery (RFC 9728 → RFC 8414) and registration
//! (RFC 7591) go through the gateway; the login and consent are posted as a browser would.
//! Needs `npm ci --prefix tests/node` (done by `.ci/run`).

use std::time::Duration;

use agw_testkit::harness::Gateway;
use agw_testkit::node::{self, Process};
use agw_testkit::reference;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// The provider's public client for `clientId` (tests/node/oidc-provider.mjs).
const PREREGISTERED: &str = "mcp-preregistered";

/// Two routes on one port, both adapted with the Keycloak preset (the provider script uses
/// Keycloak's paths): `/mcp` has clients register dynamically through the gateway, `/pre/mcp`
/// hands out the pre-registered client. Each accepts only tokens for its own URL (RFC 8707).
/// No `jwks`: the preset's default location is used. `/direct/mcp` has no provider.
fn config(gw_port: u16, idp: &str, upstream: &str) -> String {
    let route = |name: &str, path: &str, extra: &str| {
        format!(
            "    - name: {name}\n      matches:\n      - path:\n          pathPrefix: {path}\n      policies:\n        mcpAuthentication:\n          issuer: {idp}\n          audiences: [http://127.0.0.1:{gw_port}{path}]\n          provider:\n            keycloak: {{}}\n{extra}          resourceMetadata:\n            scopesSupported: [mcp:tools]\n      backends:\n      - mcp:\n          targets:\n          - name: reference\n            mcp:\n              host: {upstream}\n"
        )
    };
    // Without a provider the gateway sends clients to the issuer itself; the provider script's
    // keys are not at the default location, so `jwks` is set.
    let direct = route(
        "direct",
        "/direct/mcp",
        &format!("          jwks:\n            url: {idp}/protocol/openid-connect/certs\n"),
    )
    .replace("          provider:\n            keycloak: {}\n", "");
    format!(
        "binds:\n- port: {gw_port}\n  listeners:\n  - routes:\n{}{}{direct}",
        route("preregistered", "/pre/mcp", &format!("          clientId: {PREREGISTERED}\n")),
        route("dynamic", "/mcp", "")
    )
}

async fn start_provider() -> (Process, String) {
    let port = node::free_port().await;
    let script = node::require_installed().join("oidc-provider.mjs");
    let p = Process::spawn("oidc-provider", "node", &[&script.to_string_lossy(), &port.to_string()], &[]);
    node::wait_for_port(port, Duration::from_secs(30)).await;
    (p, format!("http://127.0.0.1:{port}"))
}

/// Runs the SDK client against `url`; prints its steps as they were taken and returns its
/// report.
async fn sdk_client(url: &str, client_id: Option<&str>) -> Value {
    let mut args = vec![url];
    args.extend(client_id);
    let (ok, stdout, stderr) = node::run_script("oauth-client.mjs", &args).await;
    for line in stdout.lines().filter_map(|l| l.strip_prefix("step: ")) {
        println!("    {line}");
    }
    let report: Value = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    assert!(
        ok && report["ok"] == true,
        "the SDK client failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        report["error"]
    );
    report
}

/// The requests the SDK made, as `METHOD URL STATUS`.
fn requests(report: &Value) -> Vec<String> {
    report["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!("{} {} {}", r["method"].as_str().unwrap_or("?"), r["url"].as_str().unwrap_or("?"), r["status"])
        })
        .collect()
}

async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, HeaderMap, String) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.request(b.body(Full::new(bytes::Bytes::from(body.to_string()))).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// `initialize` on `url` with a bearer token: the status and `WWW-Authenticate`.
async fn initialize_with(url: &str, token: &str) -> (StatusCode, String) {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"aud-check","version":"1"}}}"#;
    let bearer = format!("Bearer {token}");
    let (status, headers, _) = request(
        "POST",
        url,
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        init,
    )
    .await;
    let challenge = headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, challenge)
}

/// A client-credentials token from the provider for any `resource` (RFC 8707).
async fn machine_token(idp: &str, resource: &str) -> String {
    let body = format!(
        "grant_type=client_credentials&scope=mcp%3Atools&resource={}",
        resource.replace(':', "%3A").replace('/', "%2F")
    );
    let basic = format!("Basic {}", base64_basic("machine", "machine-secret"));
    let (status, _, text) = request(
        "POST",
        &format!("{idp}/protocol/openid-connect/token"),
        &[("content-type", "application/x-www-form-urlencoded"), ("authorization", &basic)],
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "client_credentials token for {resource}: {text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["access_token"].as_str().unwrap().to_string()
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_gets_a_token_through_the_gateway_from_a_real_openid_provider() {
    let (_idp_process, idp) = start_provider().await;
    let upstream = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let gw_port = node::free_port().await;
    let gw = Gateway::start(&config(gw_port, &idp, &upstream.url("/mcp"))).await.unwrap();
    let gateway = format!("http://127.0.0.1:{gw_port}");
    println!("oidc-provider at {idp}, gateway at {gateway}, reference MCP server at {}", upstream.url("/mcp"));

    println!("1. dynamic client registration through the gateway ({gateway}/mcp)");
    let dynamic = sdk_client(&format!("{gateway}/mcp"), None).await;
    let seen = requests(&dynamic);
    for expected in [
        format!("POST {gateway}/mcp 401"),
        format!("GET {gateway}/.well-known/oauth-protected-resource/mcp 200"),
        format!("GET {gateway}/.well-known/oauth-authorization-server/mcp 200"),
        format!("POST {gateway}/.well-known/oauth-authorization-server/mcp/client-registration 201"),
        format!("POST {idp}/protocol/openid-connect/token 200"),
    ] {
        assert!(seen.contains(&expected), "the SDK should have sent `{expected}`; it sent:\n{}", seen.join("\n"));
    }
    assert!(
        !seen.iter().any(|r| r.contains(&format!("{idp}/.well-known")) || r.contains("clients-registrations")),
        "discovery and registration go through the gateway, never straight to the provider:\n{}",
        seen.join("\n")
    );
    let dynamic_client = dynamic["client_id"].as_str().unwrap();
    assert_ne!(dynamic_client, PREREGISTERED, "the provider issued this client (the registration was proxied)");
    let authorize = dynamic["authorization_url"].as_str().unwrap();
    assert!(authorize.starts_with(&format!("{idp}/protocol/openid-connect/auth?")), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256"), "PKCE: {authorize}");
    assert_eq!(dynamic["claims"]["aud"], format!("{gateway}/mcp"), "RFC 8707: the token is for this resource");
    assert_eq!(dynamic["claims"]["iss"], idp.as_str());
    assert_eq!(dynamic["claims"]["sub"], "alice");
    assert!(dynamic["tools"].as_array().unwrap().iter().any(|t| t == "echo"), "{}", dynamic["tools"]);
    assert_eq!(dynamic["echo"], "Echo: hello through OAuth");

    println!("2. pre-registered clientId ({gateway}/pre/mcp)");
    let pre = sdk_client(&format!("{gateway}/pre/mcp"), Some(PREREGISTERED)).await;
    let seen = requests(&pre);
    assert!(
        seen.contains(&format!(
            "POST {gateway}/.well-known/oauth-authorization-server/pre/mcp/client-registration 201"
        )),
        "{}",
        seen.join("\n")
    );
    assert_eq!(pre["client_id"], PREREGISTERED, "the gateway answered the registration with its clientId");
    assert_eq!(pre["claims"]["aud"], format!("{gateway}/pre/mcp"));
    assert_eq!(pre["echo"], "Echo: hello through OAuth");

    println!("3. without a provider the SDK talks to the issuer itself ({gateway}/direct/mcp)");
    let direct = sdk_client(&format!("{gateway}/direct/mcp"), None).await;
    let seen = requests(&direct);
    assert!(
        seen.contains(&format!("GET {gateway}/.well-known/oauth-protected-resource/direct/mcp 200")),
        "{}",
        seen.join("\n")
    );
    assert!(seen.contains(&format!("POST {idp}/clients-registrations/openid-connect 201")), "{}", seen.join("\n"));
    assert!(
        !seen.iter().any(|r| r.contains(&format!("{gateway}/.well-known/oauth-authorization-server"))),
        "the gateway is not the authorization server here:\n{}",
        seen.join("\n")
    );
    assert_eq!(direct["claims"]["aud"], format!("{gateway}/direct/mcp"));
    assert_eq!(direct["echo"], "Echo: hello through OAuth");

    println!("4. tokens for another audience (RFC 8707) are refused");
    let for_mcp = dynamic["access_token"].as_str().unwrap();
    let for_pre = pre["access_token"].as_str().unwrap();
    assert_eq!(initialize_with(&format!("{gateway}/mcp"), for_mcp).await.0, StatusCode::OK, "control: right audience");
    let (status, challenge) = initialize_with(&format!("{gateway}/pre/mcp"), for_mcp).await;
    println!("    the /mcp token (same issuer, same keys) at /pre/mcp → {status}, WWW-Authenticate: {challenge}");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    assert_eq!(initialize_with(&format!("{gateway}/mcp"), for_pre).await.0, StatusCode::UNAUTHORIZED);

    let other = machine_token(&idp, "http://other.example/mcp").await;
    let (status, challenge) = initialize_with(&format!("{gateway}/mcp"), &other).await;
    println!(
        "    a client_credentials token for http://other.example/mcp at /mcp → {status}, WWW-Authenticate: {challenge}"
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let ours = machine_token(&idp, &format!("{gateway}/mcp")).await;
    assert_eq!(
        initialize_with(&format!("{gateway}/mcp"), &ours).await.0,
        StatusCode::OK,
        "control: same client, our audience"
    );

    gw.stop().await;
}
