//! Per-caller upstream credentials end to end: `backendAuth.oauthTokenExchange` (RFC 8693 and
//! RFC 7523) and `crossAppAccess` (ID-JAG) against a real authorization server — npm
//! `oidc-provider` with the two grants registered (`tests/node/token-exchange-provider.mjs`):
//! oidc-provider authenticates the gateway's client and issues the tokens. Two users with their
//! own JWTs call the same MCP server through the gateway; the upstream (a recorder) sees a
//! different exchanged token for each, with the right subject and audience, signed by the
//! provider. Needs `npm ci --prefix tests/node` (done by `.ci/run`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agw_testkit::client::McpClient;
use agw_testkit::harness::Gateway;
use agw_testkit::jwt::{Alg, TestKey, jwks};
use agw_testkit::node::{self, Process};
use agw_testkit::recorder::Recorder;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePrivateKey;
use serde_json::{Value, json};

const USERS: &str = "https://users.example";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Provider {
    _process: Process,
    url: String,
    users: TestKey,
    _dir: std::path::PathBuf,
}

impl Provider {
    async fn start() -> Provider {
        let users = TestKey::generate("users-1", Alg::ES256);
        let dir = std::env::temp_dir().join(format!("agw-token-exchange-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let users_file = dir.join("users.json");
        std::fs::write(&users_file, jwks(&[&users], true)).unwrap();
        // The gateway's `privateKeyJwt` key: the test kit's P-256 key; its public half here.
        let secret = p256::SecretKey::from_pkcs8_pem(&std::fs::read_to_string(client_key()).unwrap()).unwrap();
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
        let client_jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap()), "kid": "gw-client", "alg": "ES256", "use": "sig"});
        let client_file = dir.join("client.json");
        std::fs::write(&client_file, client_jwk.to_string()).unwrap();
        let port = node::free_port().await;
        let script = node::require_installed().join("token-exchange-provider.mjs");
        let process = Process::spawn(
            "token-exchange-provider",
            "node",
            &[
                &script.to_string_lossy(),
                &port.to_string(),
                &users_file.to_string_lossy(),
                USERS,
                &client_file.to_string_lossy(),
            ],
            &[],
        );
        node::wait_for_port(port, Duration::from_secs(30)).await;
        Provider { _process: process, url: format!("http://127.0.0.1:{port}"), users, _dir: dir }
    }

    fn host(&self) -> &str {
        self.url.strip_prefix("http://").unwrap()
    }

    /// A user's token: issued by [`USERS`] for the gateway, expiring `exp` seconds from now
    /// (negative: already expired).
    fn token(&self, sub: &str, exp: i64) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        self.users.token(&json!({"iss": USERS, "aud": "gateway", "sub": sub, "iat": now - 60, "exp": now + exp}))
    }

    /// The grants the provider served so far.
    async fn served(&self) -> Vec<Value> {
        let (_, body) =
            agw_testkit::client::http("GET", &format!("{}/test/exchanges", self.url), &[], "").await.unwrap();
        serde_json::from_str::<Value>(&body).unwrap().as_array().cloned().unwrap()
    }

    /// Checks that `token` is a JWT signed by the provider; its claims.
    async fn verify(&self, token: &str) -> Value {
        let (_, body) = agw_testkit::client::http("GET", &format!("{}/jwks", self.url), &[], "").await.unwrap();
        let keys: Value = serde_json::from_str(&body).unwrap();
        let (head, _) = token.split_once('.').unwrap();
        let head: Value = serde_json::from_slice(&B64.decode(head).unwrap()).unwrap();
        let jwk = keys["keys"].as_array().unwrap().iter().find(|k| k["kid"] == head["kid"]).expect("a provider key");
        let coord = |c: &str| B64.decode(jwk[c].as_str().unwrap()).unwrap();
        let point = p256::EncodedPoint::from_affine_coordinates(
            coord("x").as_slice().into(),
            coord("y").as_slice().into(),
            false,
        );
        let public = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let signature = p256::ecdsa::Signature::from_slice(&B64.decode(signature).unwrap()).unwrap();
        public.verify(signed.as_bytes(), &signature).expect("the exchanged token is signed by the provider");
        let claims = signed.split_once('.').unwrap().1;
        serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap()
    }
}

fn rand_suffix() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

fn client_key() -> String {
    agw_testkit::tls::path("a.key")
}

/// One MCP route at `/<name>/mcp` to the recorder with `auth` under `backendAuth:` (indented
/// 10) and, when `jwt_auth`, the users' `jwtAuth`.
fn route(p: &Provider, up: &Recorder, name: &str, jwt_auth: bool, auth: &str) -> String {
    let jwt = if jwt_auth {
        format!(
            "        jwtAuth:\n          mode: strict\n          issuer: {USERS}\n          audiences: [gateway]\n          jwks: '{}'\n",
            jwks(&[&p.users], true)
        )
    } else {
        String::new()
    };
    format!(
        "    - name: {name}\n      matches:\n      - path:\n          pathPrefix: /{name}/\n      policies:\n{jwt}        backendAuth:\n{auth}      backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: {}\n",
        up.url()
    )
}

fn config(routes: &[String]) -> String {
    format!("binds:\n- port: 0\n  listeners:\n  - routes:\n{}", routes.concat())
}

/// `initialize` and `tools/list` as `token`'s holder; the bearer token the upstream saw last.
async fn call_as(gw: &Gateway, up: &Recorder, path: &str, token: &str) -> String {
    let mut c = McpClient::new(gw.url(path)).with_header("authorization", &format!("Bearer {token}"));
    c.initialize().await.unwrap();
    c.request("tools/list", json!({})).await.unwrap();
    let seen = up.last();
    let auth = seen.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    auth.strip_prefix("Bearer ").unwrap_or_default().to_string()
}

/// The status and body of an `initialize` as `token`'s holder.
async fn initialize_as(gw: &Gateway, path: &str, token: &str) -> (u16, String) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    agw_testkit::client::http(
        "POST",
        &gw.url(path),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        &body.to_string(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn each_user_gets_their_own_exchanged_token_and_the_cache_saves_repeat_exchanges() {
    let p = Provider::start().await;
    let up = Recorder::start().await.unwrap();
    let exchange = format!(
        "          oauthTokenExchange:\n            host: {}\n            path: /token\n            clientAuth:\n              clientId: gw-basic\n              clientSecret: basic-secret\n              method: clientSecretBasic\n            audiences: [mcp-upstream]\n",
        p.host()
    );
    let gw = Gateway::start(&config(&[route(&p, &up, "te", true, &exchange)])).await.unwrap();
    let (alice, bob) = (p.token("alice", 600), p.token("bob", 600));

    let for_alice = call_as(&gw, &up, "/te/mcp", &alice).await;
    let for_bob = call_as(&gw, &up, "/te/mcp", &bob).await;
    assert!(!for_alice.is_empty() && !for_bob.is_empty());
    assert_ne!(for_alice, for_bob, "each user has their own upstream token");
    assert_ne!(for_alice, alice, "the caller's own token does not reach the upstream");
    for (token, sub) in [(&for_alice, "alice"), (&for_bob, "bob")] {
        let claims = p.verify(token).await;
        assert_eq!(claims["sub"], sub, "{claims}");
        assert_eq!(claims["aud"], "mcp-upstream", "{claims}");
        assert_eq!(claims["iss"], p.url.as_str(), "{claims}");
        assert_eq!(claims["client_id"], "gw-basic", "{claims}");
    }
    // Every request of both sessions (initialize, initialized, tools/list) got a token; the
    // provider exchanged once per user.
    let served = p.served().await;
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(served.iter().map(|s| s["sub"].as_str().unwrap()).collect::<Vec<_>>(), ["alice", "bob"], "{served:?}");

    // Again as alice: the cached token, no exchange.
    assert_eq!(call_as(&gw, &up, "/te/mcp", &alice).await, for_alice);
    assert_eq!(p.served().await.len(), 2);
}

#[tokio::test]
async fn an_expired_subject_token_is_not_exchanged_and_failures_are_clear() {
    let p = Provider::start().await;
    let up = Recorder::start().await.unwrap();
    // No `jwtAuth`: the gateway reads the subject token from the request itself (agentgateway's
    // oauth-rfc8693 example).
    let exchange = |client: &str, secret: &str| {
        format!(
            "          oauthTokenExchange:\n            host: {}\n            path: /token\n            clientAuth:\n              clientId: {client}\n              clientSecret: {secret}\n            audiences: [mcp-upstream]\n",
            p.host()
        )
    };
    let routes = [
        route(&p, &up, "raw", false, &exchange("gw-basic", "basic-secret")),
        route(&p, &up, "badclient", false, &exchange("gw-basic", "wrong-secret")),
        route(
            &p,
            &up,
            "down",
            false,
            "          oauthTokenExchange:\n            host: 127.0.0.1:1\n            path: /token\n            audiences: [mcp-upstream]\n",
        ),
    ];
    let gw = Gateway::start(&config(&routes)).await.unwrap();

    let (status, body) = initialize_as(&gw, "/raw/mcp", &p.token("alice", -120)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");
    assert!(p.served().await.is_empty(), "an expired token never reaches the authorization server");

    // A token the provider does not accept (not signed by the users' key): it refuses (400
    // invalid_grant), the caller gets 403 with a JSON-RPC error naming the cause.
    let forged = TestKey::generate("users-1", Alg::ES256)
        .token(&json!({"iss": USERS, "sub": "mallory", "exp": 4_000_000_000u64}));
    let (status, body) = initialize_as(&gw, "/raw/mcp", &forged).await;
    assert_eq!(status, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert!(v["error"]["message"].as_str().unwrap().contains("refused the exchange"), "{body}");

    // The gateway's own client authentication fails (401 from the provider): 502, the
    // caller's token was not the problem; no secret in the answer.
    let (status, body) = initialize_as(&gw, "/badclient/mcp", &p.token("alice", 600)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("backend credentials") && !body.contains("wrong-secret"), "{body}");

    // The authorization server is down: 502.
    let (status, body) = initialize_as(&gw, "/down/mcp", &p.token("alice", 600)).await;
    assert_eq!(status, 502, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].as_str().is_some(), "{body}");

    // No token at all: 401, nothing sent.
    let (status, _) =
        agw_testkit::client::http("POST", &gw.url("/raw/mcp"), &[("content-type", "application/json")], "{}")
            .await
            .unwrap();
    assert_eq!(status, 401);

    // A valid one works, through the same route.
    let token = call_as(&gw, &up, "/raw/mcp", &p.token("carol", 600)).await;
    assert_eq!(p.verify(&token).await["sub"], "carol");
}

#[tokio::test]
async fn client_authentication_methods_and_the_jwt_bearer_grant() {
    let p = Provider::start().await;
    let up = Recorder::start().await.unwrap();
    let host = p.host();
    let key = client_key();
    let routes = [
        route(
            &p,
            &up,
            "post",
            true,
            &format!(
                "          oauthTokenExchange:\n            host: {host}\n            path: /token\n            clientAuth:\n              clientId: gw-post\n              clientSecret: post-secret\n              method: clientSecretPost\n            audiences: [mcp-upstream]\n            scopes: [tools]\n"
            ),
        ),
        route(
            &p,
            &up,
            "pkjwt",
            true,
            &format!(
                "          oauthTokenExchange:\n            host: {host}\n            path: /token\n            clientAuth:\n              clientId: gw-jwt\n              method: privateKeyJwt\n              signingKey: {{file: {key}}}\n              alg: ES256\n              kid: gw-client\n              assertionAudience: {}\n            audiences: [mcp-upstream]\n",
                p.url
            ),
        ),
        // RFC 7523: the user's JWT is the assertion (agentgateway's jwt-authz-grant shape).
        route(
            &p,
            &up,
            "bearer",
            true,
            &format!(
                "          oauthTokenExchange:\n            host: {host}\n            path: /token\n            grantType: jwtBearer\n            clientAuth:\n              clientId: gw-post\n              clientSecret: post-secret\n              method: clientSecretPost\n"
            ),
        ),
    ];
    let gw = Gateway::start(&config(&routes)).await.unwrap();
    let alice = p.token("alice", 600);
    for (path, client) in [("/post/mcp", "gw-post"), ("/pkjwt/mcp", "gw-jwt")] {
        let token = call_as(&gw, &up, path, &alice).await;
        let claims = p.verify(&token).await;
        assert_eq!((claims["sub"].as_str(), claims["client_id"].as_str()), (Some("alice"), Some(client)), "{claims}");
    }
    let token = call_as(&gw, &up, "/bearer/mcp", &alice).await;
    let claims = p.verify(&token).await;
    assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some("alice"), Some("resource-api")), "{claims}");
    let grants: Vec<String> = p.served().await.iter().map(|s| format!("{} {}", s["grant"], s["client"])).collect();
    assert_eq!(
        grants,
        ["\"token-exchange\" \"gw-post\"", "\"token-exchange\" \"gw-jwt\"", "\"jwt-bearer\" \"gw-post\""],
        "{grants:?}"
    );
}

#[tokio::test]
async fn cross_app_access_chains_an_id_jag_into_an_access_token() {
    let p = Provider::start().await;
    let up = Recorder::start().await.unwrap();
    let host = p.host();
    let xaa = format!(
        "          crossAppAccess:\n            subjectToken:\n              source:\n                expression: jwt.rawToken.unredacted()\n              tokenType: urn:ietf:params:oauth:token-type:id_token\n            identityProvider:\n              host: {host}\n              path: /token\n              clientAuth:\n                clientId: gw-basic\n                clientSecret: basic-secret\n            resourceAuthorizationServer:\n              host: {host}\n              path: /token\n              clientAuth:\n                clientId: gw-post\n                method: clientSecretPost\n                clientSecret: post-secret\n            audience: {}\n            resources: [https://api.example/]\n            scopes: [todos.read]\n",
        p.url
    );
    let gw = Gateway::start(&config(&[route(&p, &up, "xaa", true, &xaa)])).await.unwrap();
    let token = call_as(&gw, &up, "/xaa/mcp", &p.token("alice", 600)).await;
    let claims = p.verify(&token).await;
    assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some("alice"), Some("resource-api")), "{claims}");
    let served = p.served().await;
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(served[0]["grant"], "token-exchange");
    assert_eq!(served[0]["requested"], "urn:ietf:params:oauth:token-type:id-jag");
    assert_eq!(served[0]["aud"], p.url.as_str());
    assert_eq!((served[1]["grant"].as_str(), served[1]["client"].as_str()), (Some("jwt-bearer"), Some("gw-post")));
}

/// agentgateway's token-exchange example shapes load, with located errors for mistakes.
#[tokio::test]
async fn config_errors_are_located() {
    let bad = "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: 127.0.0.1:1\n        policies:\n          backendAuth:\n            oauthTokenExchange:\n              host: 127.0.0.1:2\n              path: token\n              grantType: jwtBearer\n              requestedTokenType: urn:ietf:params:oauth:token-type:jwt\n              additionalParams:\n                scope: '\"x\"'\n              clientAuth:\n                clientId: c\n                method: clientSecretBasic\n";
    let e = Gateway::refused(bad).await;
    for want in [
        "oauthTokenExchange.path: `token` must start with `/`",
        "oauthTokenExchange.requestedTokenType: only with `grantType: tokenExchange`",
        "oauthTokenExchange.additionalParams.scope: `scope` is set by the exchange itself",
        "oauthTokenExchange.clientAuth: `clientSecretBasic` needs `clientSecret`",
    ] {
        assert!(e.contains(want), "missing `{want}` in:\n{e}");
    }
    // A secret never shows in errors or the config dump.
    let ok = "binds:\n- port: 0\n  listeners:\n  - routes:\n    - backends:\n      - host: 127.0.0.1:1\n        policies:\n          backendAuth:\n            oauthTokenExchange:\n              host: 127.0.0.1:2\n              clientAuth:\n                clientId: c\n                clientSecret: hunter2-secret\n";
    let gw = Gateway::start(ok).await.unwrap();
    let (_, dump) =
        agw_testkit::client::http("GET", &format!("http://{}/config_dump", gw.admin.unwrap()), &[], "").await.unwrap();
    assert!(!dump.contains("hunter2") && dump.contains("oauthTokenExchange"), "{dump}");
}
