//! JWT authentication through the gateway: the tutorial's tokens, a hostile-token suite with
//! keys made here, every accepted algorithm, modes, providers, locations and passthrough.

use std::sync::OnceLock;

use agw_testkit::client::McpClient;
use agw_testkit::harness::{Gateway, mcp_route};
use agw_testkit::jwt::{self, Alg, TestKey, b64, claims, hs256_token};
use agw_testkit::recorder::Recorder;
use http::StatusCode;
use serde_json::{Value, json};

const ISS: &str = "https://idp.test";
const AUD: &str = "mcp.test";

struct Keys {
    rsa: TestKey,
    pss: TestKey,
    ec256: TestKey,
    ec384: TestKey,
    ed: TestKey,
    /// Same kid as `ec256`, different key.
    impostor: TestKey,
    /// Not in the JWKS at all.
    attacker: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestKey::generate("rsa", Alg::RS256),
        pss: TestKey::generate("pss", Alg::PS256),
        ec256: TestKey::generate("ec256", Alg::ES256),
        ec384: TestKey::generate("ec384", Alg::ES384),
        ed: TestKey::generate("ed", Alg::EdDSA),
        impostor: TestKey::generate("ec256", Alg::ES256),
        attacker: TestKey::generate("attacker", Alg::ES256),
    })
}

/// The JWKS: the PS256 key pinned by `alg`, the others unpinned.
fn jwks_json() -> String {
    let k = keys();
    let mut set: Value = serde_json::from_str(&jwt::jwks(&[&k.rsa, &k.ec256, &k.ec384, &k.ed], false)).unwrap();
    set["keys"].as_array_mut().unwrap().push(k.pss.jwk(true));
    set.to_string()
}

fn jwt_policy(mode: &str) -> String {
    format!(
        "      policies:\n        jwtAuth:\n          mode: {mode}\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n",
        jwks_json()
    )
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

async fn post_with(gw: &Gateway, authorization: Option<&str>) -> agw_testkit::client::Exchange {
    let mut c = McpClient::new(gw.url("/mcp"));
    if let Some(a) = authorization {
        c = c.with_header("authorization", a);
    }
    c.post_bytes(INIT, None).await.unwrap()
}

/// Every forged, broken or misdirected token: (name, token).
fn hostile_tokens() -> Vec<(&'static str, String)> {
    let k = keys();
    let good = claims(ISS, AUD);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let h = |alg: &str, kid: &str| json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let sign_msg = |key: &TestKey, header: &Value, claims: &Value| {
        let msg = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let sig = key.sign_bytes(msg.as_bytes());
        (msg, sig)
    };
    let valid = k.ec256.token(&good);
    let (valid_msg, valid_sig) = valid.rsplit_once('.').map(|(m, s)| (m.to_string(), s.to_string())).unwrap();
    let mut flipped = URL_SAFE.decode(&valid_sig);
    flipped[5] ^= 0x01;
    let der = {
        let header = h("ES256", "ec256");
        let msg = format!("{}.{}", b64(header.to_string().as_bytes()), b64(good.to_string().as_bytes()));
        format!("{msg}.{}", b64(&k.ec256.sign_der(msg.as_bytes())))
    };
    let pss_as_rs256 = {
        let header = h("RS256", "rsa");
        let msg = format!("{}.{}", b64(header.to_string().as_bytes()), b64(good.to_string().as_bytes()));
        format!("{msg}.{}", b64(&k.rsa.sign_as(Alg::PS256, msg.as_bytes())))
    };
    let rs256_on_pinned_pss = {
        let header = h("RS256", "pss");
        let msg = format!("{}.{}", b64(header.to_string().as_bytes()), b64(good.to_string().as_bytes()));
        format!("{msg}.{}", b64(&k.pss.sign_as(Alg::RS256, msg.as_bytes())))
    };
    let (es_on_rsa_msg, es_on_rsa_sig) = sign_msg(&k.ec256, &h("ES256", "rsa"), &good);
    let (rs_on_ec_msg, rs_on_ec_sig) = sign_msg(&k.rsa, &h("RS256", "ec256"), &good);
    let jwk_header = json!({"alg": "ES256", "kid": "attacker", "jwk": k.attacker.jwk(false)});
    let jku_header = json!({"alg": "ES256", "kid": "attacker", "jku": "http://127.0.0.1:1/jwks.json"});
    let x5u_header = json!({"alg": "ES256", "kid": "attacker", "x5u": "http://127.0.0.1:1/cert.pem"});
    let big_header = json!({"alg": "ES256", "kid": "ec256", "pad": "x".repeat(60 * 1024)});
    let public_jwks = jwks_json();
    vec![
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                b64(json!({"alg": "none", "kid": "ec256"}).to_string().as_bytes()),
                b64(good.to_string().as_bytes())
            ),
        ),
        (
            "alg None, no signature",
            format!(
                "{}.{}.",
                b64(json!({"alg": "None", "kid": "ec256"}).to_string().as_bytes()),
                b64(good.to_string().as_bytes())
            ),
        ),
        ("alg none with a real signature", {
            let header = json!({"alg": "none", "kid": "ec256"});
            let (msg, sig) = sign_msg(&k.ec256, &header, &good);
            format!("{msg}.{}", b64(&sig))
        }),
        ("HS256 keyed with the JWKS text", hs256_token(&h("HS256", "ec256"), &good, public_jwks.as_bytes())),
        (
            "HS256 keyed with the RSA public key PEM",
            hs256_token(&h("HS256", "rsa"), &good, k.rsa.public_pem().as_bytes()),
        ),
        (
            "HS256 keyed with the EC public key PEM",
            hs256_token(&h("HS256", "ec256"), &good, k.ec256.public_pem().as_bytes()),
        ),
        ("HS512", hs256_token(&h("HS512", "ec256"), &good, b"secret")),
        ("expired", k.ec256.token(&with(&|c| c["exp"] = json!(c["iat"].as_u64().unwrap() - 3600)))),
        ("nbf in the future", k.ec256.token(&with(&|c| c["nbf"] = json!(c["iat"].as_u64().unwrap() + 3600)))),
        ("wrong issuer", k.ec256.token(&with(&|c| c["iss"] = json!("https://evil.test")))),
        ("issuer with a trailing slash", k.ec256.token(&with(&|c| c["iss"] = json!(format!("{ISS}/"))))),
        ("issuer in another case", k.ec256.token(&with(&|c| c["iss"] = json!(ISS.to_uppercase())))),
        ("issuer with a suffix", k.ec256.token(&with(&|c| c["iss"] = json!(format!("{ISS}.evil.test"))))),
        (
            "no issuer",
            k.ec256.token(&with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            })),
        ),
        ("wrong audience (string)", k.ec256.token(&with(&|c| c["aud"] = json!("other.test")))),
        ("wrong audience (list)", k.ec256.token(&with(&|c| c["aud"] = json!(["a.test", "b.test"])))),
        ("audience of the wrong type", k.ec256.token(&with(&|c| c["aud"] = json!(42)))),
        (
            "no audience",
            k.ec256.token(&with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
        ),
        (
            "missing exp",
            k.ec256.token(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
        ),
        ("exp as a string", k.ec256.token(&with(&|c| c["exp"] = json!(c["exp"].to_string())))),
        ("nbf as a string", k.ec256.token(&with(&|c| c["nbf"] = json!("yesterday")))),
        ("missing kid", k.ec256.token_with(&json!({"alg": "ES256"}).to_string(), &good.to_string())),
        ("empty kid", k.ec256.token_with(&json!({"alg": "ES256", "kid": ""}).to_string(), &good.to_string())),
        ("unknown kid", k.attacker.token(&good)),
        ("right kid, another key", k.impostor.token(&good)),
        ("flipped signature bit", format!("{valid_msg}.{}", b64(&flipped))),
        ("empty signature", format!("{valid_msg}.")),
        ("truncated signature", format!("{valid_msg}.{}", &valid_sig[..valid_sig.len() - 8])),
        ("DER-encoded ECDSA signature", der),
        ("ES256 header on an RSA key", format!("{es_on_rsa_msg}.{}", b64(&es_on_rsa_sig))),
        ("RS256 header on an EC key", format!("{rs_on_ec_msg}.{}", b64(&rs_on_ec_sig))),
        ("PSS signature under an RS256 header", pss_as_rs256),
        ("RS256 on a key pinned to PS256", rs256_on_pinned_pss),
        ("attacker key in a jwk header", k.attacker.token_with(&jwk_header.to_string(), &good.to_string())),
        ("jku header", k.attacker.token_with(&jku_header.to_string(), &good.to_string())),
        ("x5u header", k.attacker.token_with(&x5u_header.to_string(), &good.to_string())),
        (
            "unknown crit",
            k.ec256.token_with(
                &json!({"alg": "ES256", "kid": "ec256", "crit": ["exp-ext"], "exp-ext": 1}).to_string(),
                &good.to_string(),
            ),
        ),
        ("two segments", valid_msg.clone()),
        ("four segments", format!("{valid}.{valid_sig}")),
        ("non-base64 header", format!("!!!.{}", valid.split_once('.').unwrap().1)),
        ("non-JSON payload", k.ec256.token_with(&h("ES256", "ec256").to_string(), "not json")),
        ("payload is a JSON array", k.ec256.token_with(&h("ES256", "ec256").to_string(), "[1,2]")),
        ("header is a JSON array", k.ec256.token_with("[\"ES256\"]", &good.to_string())),
        ("whitespace inside", format!("{} {}", &valid[..20], &valid[20..])),
        ("padded base64", format!("{valid}==")),
        ("60 KB header", k.ec256.token_with(&big_header.to_string(), &good.to_string())),
        ("empty token", String::new()),
        ("garbage", "not-a-token-at-all".to_string()),
    ]
}

use base64::Engine as _;
struct UrlSafe;
const URL_SAFE: UrlSafe = UrlSafe;
impl UrlSafe {
    fn decode(&self, s: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
    }
}

#[tokio::test]
async fn hostile_tokens_are_all_refused() {
    let upstream = Recorder::start().await.unwrap();
    let gw = Gateway::start(&mcp_route(&upstream.url(), &jwt_policy("optional"))).await.unwrap();
    let cases = hostile_tokens();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut report = Vec::new();
    for (name, token) in &cases {
        let ex = post_with(&gw, Some(&format!("Bearer {token}"))).await;
        let oversized = token.len() > 16 * 1024;
        let body = String::from_utf8_lossy(&ex.body);
        let everything = format!("{body} {:?}", ex.headers);
        if token.is_empty() {
            // `Bearer ` with nothing after it is no credential: anonymous in optional mode.
            assert_eq!(ex.status, StatusCode::OK, "{name}");
            continue;
        }
        if oversized {
            assert!(ex.status.is_client_error(), "{name}: {}", ex.status);
        } else {
            assert_eq!(ex.status, StatusCode::UNAUTHORIZED, "{name}: {body}");
            let challenge = ex.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
                "{name}: {challenge}"
            );
            assert_eq!(ex.header("content-type"), Some("application/json"), "{name}");
        }
        for part in token.split(['.', ' ']).filter(|p| p.len() > 8) {
            assert!(!everything.contains(part), "{name}: the token leaked into the response: {everything}");
        }
        report.push(format!(
            "{name}: {} {}",
            ex.status.as_u16(),
            serde_json::from_slice::<Value>(&ex.body).map(|v| v["error_description"].to_string()).unwrap_or_default()
        ));
    }
    println!("hostile tokens: {} refused\n  {}", report.len(), report.join("\n  "));
    assert!(upstream.seen().len() <= 1, "only the anonymous empty-token request reached the upstream");
}

#[tokio::test]
async fn every_accepted_algorithm_works() {
    let upstream = Recorder::start().await.unwrap();
    let gw = Gateway::start(&mcp_route(&upstream.url(), &jwt_policy("strict"))).await.unwrap();
    let k = keys();
    for key in [&k.rsa, &k.pss, &k.ec256, &k.ec384, &k.ed] {
        let token = key.token(&claims(ISS, AUD));
        let ex = post_with(&gw, Some(&format!("Bearer {token}"))).await;
        assert_eq!(ex.status, StatusCode::OK, "{:?}: {}", key.alg, String::from_utf8_lossy(&ex.body));
        assert!(upstream.last().headers.get("authorization").is_none(), "the token is not forwarded by default");
    }
    // RSA keys without a pinned alg take PS256 too.
    let header = json!({"alg": "PS256", "kid": "rsa"}).to_string();
    let payload = claims(ISS, AUD).to_string();
    let msg = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let token = format!("{msg}.{}", b64(&k.rsa.sign_as(Alg::PS256, msg.as_bytes())));
    assert_eq!(post_with(&gw, Some(&format!("Bearer {token}"))).await.status, StatusCode::OK);
}

#[tokio::test]
async fn modes() {
    let upstream = Recorder::start().await.unwrap();
    let k = keys();
    let good = format!("Bearer {}", k.ec256.token(&claims(ISS, AUD)));
    let bad = format!("Bearer {}", k.attacker.token(&claims(ISS, AUD)));
    let cases = [
        // mode, no token, bad token, good token
        ("strict", StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::OK),
        ("optional", StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::OK),
        ("permissive", StatusCode::OK, StatusCode::OK, StatusCode::OK),
    ];
    for (mode, none, invalid, valid) in cases {
        let gw = Gateway::start(&mcp_route(&upstream.url(), &jwt_policy(mode))).await.unwrap();
        let ex = post_with(&gw, None).await;
        assert_eq!(ex.status, none, "{mode}: no token");
        if none == StatusCode::UNAUTHORIZED {
            assert_eq!(
                ex.header("www-authenticate"),
                Some("Bearer"),
                "no error code without credentials (RFC 6750 §3.1)"
            );
        }
        assert_eq!(post_with(&gw, Some(&bad)).await.status, invalid, "{mode}: bad token");
        assert_eq!(post_with(&gw, Some(&good)).await.status, valid, "{mode}: good token");
    }
}

#[tokio::test]
async fn two_providers_and_other_locations() {
    let upstream = Recorder::start().await.unwrap();
    let k = keys();
    let policy = format!(
        "      policies:\n        jwtAuth:\n          mode: strict\n          location:\n            queryParameter:\n              name: access_token\n          providers:\n          - issuer: https://one.test\n            jwks: '{}'\n          - issuer: https://two.test\n            audiences: [two]\n            jwks: '{}'\n",
        jwt::jwks(&[&k.ec256], false),
        jwt::jwks(&[&k.ed], false)
    );
    let gw = Gateway::start(&mcp_route(&upstream.url(), &policy)).await.unwrap();
    let one = k.ec256.token(&claims("https://one.test", "anything"));
    let two = k.ed.token(&claims("https://two.test", "two"));
    let crossed = k.ed.token(&claims("https://one.test", "anything"));
    for (token, want) in [(&one, StatusCode::OK), (&two, StatusCode::OK), (&crossed, StatusCode::UNAUTHORIZED)] {
        let client = McpClient::new(gw.url(&format!("/mcp?access_token={token}&x=1")));
        assert_eq!(client.post_bytes(INIT, None).await.unwrap().status, want);
    }
    let seen = upstream.last();
    assert!(!String::from_utf8_lossy(&seen.body).contains(&two));
    // In a header instead of the query: not where this policy looks.
    let ex = post_with(&gw, Some(&format!("Bearer {one}"))).await;
    assert_eq!(ex.status, StatusCode::UNAUTHORIZED);

    let cookie_policy = format!(
        "      policies:\n        jwtAuth:\n          mode: strict\n          location:\n            cookie:\n              name: session\n          issuer: {ISS}\n          jwks: '{}'\n",
        jwt::jwks(&[&k.ec256], false)
    );
    let gw = Gateway::start(&mcp_route(&upstream.url(), &cookie_policy)).await.unwrap();
    let token = k.ec256.token(&claims(ISS, AUD));
    let c = McpClient::new(gw.url("/mcp")).with_header("cookie", &format!("theme=dark; session={token}"));
    assert_eq!(c.post_bytes(INIT, None).await.unwrap().status, StatusCode::OK);
    let custom = cookie_policy.replace(
        "cookie:\n              name: session",
        "header:\n              name: x-token\n              prefix: 'Token '",
    );
    let gw = Gateway::start(&mcp_route(&upstream.url(), &custom)).await.unwrap();
    let c = McpClient::new(gw.url("/mcp")).with_header("x-token", &format!("Token {token}"));
    assert_eq!(c.post_bytes(INIT, None).await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn passthrough_forwards_the_token_only_when_asked() {
    let upstream = Recorder::start().await.unwrap();
    let token = keys().ec256.token(&claims(ISS, AUD));
    let auth = format!("Bearer {token}");
    let gw = Gateway::start(&mcp_route(&upstream.url(), &jwt_policy("strict"))).await.unwrap();
    assert_eq!(post_with(&gw, Some(&auth)).await.status, StatusCode::OK);
    assert!(upstream.last().headers.get("authorization").is_none());

    let with_passthrough = format!("{}        backendAuth:\n          passthrough: {{}}\n", jwt_policy("strict"));
    let gw = Gateway::start(&mcp_route(&upstream.url(), &with_passthrough)).await.unwrap();
    assert_eq!(post_with(&gw, Some(&auth)).await.status, StatusCode::OK);
    assert_eq!(upstream.last().headers["authorization"], auth.as_str());
}

#[tokio::test]
async fn clock_skew_is_configurable() {
    let upstream = Recorder::start().await.unwrap();
    let k = keys();
    let mut c = claims(ISS, AUD);
    c["exp"] = json!(c["iat"].as_u64().unwrap() - 10);
    let just_expired = format!("Bearer {}", k.ec256.token(&c));
    let gw = Gateway::start(&mcp_route(&upstream.url(), &jwt_policy("strict"))).await.unwrap();
    assert_eq!(post_with(&gw, Some(&just_expired)).await.status, StatusCode::OK, "within the default 30s skew");
    let strict = format!("{}          jwtValidationOptions:\n            clockSkew: 1s\n", jwt_policy("strict"));
    let gw = Gateway::start(&mcp_route(&upstream.url(), &strict)).await.unwrap();
    assert_eq!(post_with(&gw, Some(&just_expired)).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn clock_skew_is_per_provider() {
    let upstream = Recorder::start().await.unwrap();
    let k = keys();
    // The lenient provider comes first; its skew must not apply to the strict one.
    let policy = format!(
        "      policies:\n        jwtAuth:\n          mode: strict\n          providers:\n          - issuer: https://legacy.test\n            jwks: '{}'\n            jwtValidationOptions:\n              clockSkew: 24h\n          - issuer: https://strict.test\n            jwks: '{}'\n            jwtValidationOptions:\n              clockSkew: 1s\n",
        jwt::jwks(&[&k.ed], false),
        jwt::jwks(&[&k.ec256], false)
    );
    let gw = Gateway::start(&mcp_route(&upstream.url(), &policy)).await.unwrap();
    let expired = |iss: &str, key: &TestKey| {
        let mut c = claims(iss, "x");
        c["exp"] = json!(c["iat"].as_u64().unwrap() - 3600);
        format!("Bearer {}", key.token(&c))
    };
    let legacy = expired("https://legacy.test", &k.ed);
    let strict = expired("https://strict.test", &k.ec256);
    assert_eq!(post_with(&gw, Some(&legacy)).await.status, StatusCode::OK, "within the legacy provider's 24h");
    assert_eq!(post_with(&gw, Some(&strict)).await.status, StatusCode::UNAUTHORIZED, "the strict provider's 1s");
}
