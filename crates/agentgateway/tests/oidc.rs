//! `oidc` end to end: npm `oidc-provider` as the OpenID provider, the real gateway binary with
//! `OIDC_COOKIE_SECRET`, and headless Chromium (playwright-core, `tests/node/oidc-browser.mjs`)
//! signing in through the gateway to a protected page; then a tampered session cookie is
//! refused and logout ends access. Needs the npm peers and Chromium (`.ci/run` installs them).

mod support;

use std::time::Duration;

use agw_testkit::client::http;
use agw_testkit::node::{self, Process};
use agw_testkit::serve;
use http::Response;
use serde_json::{Value, json};
use support::{Logs, start_with_env};

/// The gateway process, killed however the test ends (a failed assertion included).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SECRET: &str = "5f0c1d8e9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

fn port(logs: &Logs) -> u16 {
    let prefix = "Listening on 0.0.0.0:";
    let lines = logs.wait_for(prefix);
    let line = lines.iter().find(|l| l.contains(prefix)).unwrap();
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

#[test]
fn a_browser_signs_in_a_tampered_cookie_is_refused_and_logout_ends_access() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_idp, idp, gw_port, client, app) = rt.block_on(async {
        let idp_port = node::free_port().await;
        let script = node::require_installed().join("oidc-provider.mjs");
        let p = Process::spawn("oidc-provider", "node", &[&script.to_string_lossy(), &idp_port.to_string()], &[]);
        node::wait_for_port(idp_port, Duration::from_secs(30)).await;
        let idp = format!("http://127.0.0.1:{idp_port}");
        let gw_port = node::free_port().await;
        // A confidential client for the gateway, registered as an operator would (RFC 7591).
        let registration = json!({
            "redirect_uris": [format!("http://127.0.0.1:{gw_port}/oauth/callback")],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        });
        let (status, body) = http(
            "POST",
            &format!("{idp}/clients-registrations/openid-connect"),
            &[("content-type", "application/json")],
            &registration.to_string(),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{body}");
        let client: Value = serde_json::from_str(&body).unwrap();
        // The app: a page saying what reached it.
        let app = serve::app("127.0.0.1:0".parse().unwrap(), |req| async move {
            let cookies = req.headers().get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("none").to_string();
            let text = format!("<html><body>protected page {} cookies: {cookies}</body></html>", req.uri().path());
            let mut r = Response::new(agw_mcp::body::full(text));
            r.headers_mut().insert("content-type", "text/html".parse().unwrap());
            r
        })
        .await
        .unwrap();
        (p, idp, gw_port, client, app)
    });
    let config = format!(
        "config:\n  adminAddr: 'off'\n  statsAddr: 'off'\n  readinessAddr: 'off'\nbinds:\n- port: {gw_port}\n  listeners:\n  - routes:\n    - name: app\n      policies:\n        oidc:\n          issuer: {idp}\n          clientId: {}\n          clientSecret: {}\n          redirectURI: http://127.0.0.1:{gw_port}/oauth/callback\n          logoutPath: /logout\n          scopes: [profile]\n        authorization:\n          rules: ['jwt.sub == \"alice\"']\n      backends:\n      - host: {}\n",
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
        app.addr
    );
    let (gw, logs) = start_with_env(&["--config", &config], &[("OIDC_COOKIE_SECRET", SECRET)]);
    let _gw = Killed(gw);
    assert_eq!(port(&logs), gw_port);
    let base = format!("http://127.0.0.1:{gw_port}");

    let browse = |login: &str| {
        let (ok, stdout, stderr) =
            rt.block_on(node::run_script("oidc-browser.mjs", &[&base, "/docs/page?x=1", login, "/logout"]));
        let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}\n{stderr}"));
        assert!(ok && report.get("error").is_none(), "{report}\n{stderr}");
        report
    };
    let alice = browse("alice");
    // Through the provider's login and consent, back to the page first asked for.
    assert!(alice["steps"].as_array().unwrap().len() >= 2, "{alice}");
    assert_eq!(alice["url"], format!("{base}/docs/page?x=1"), "{alice}");
    let text = alice["text"].as_str().unwrap();
    assert!(text.starts_with("protected page /docs/page"), "{alice}");
    assert!(!text.contains("agw_oidc_"), "the gateway's cookies reached the app: {text}");
    assert_eq!(alice["sessionCookie"], json!({"httpOnly": true, "sameSite": "Lax"}), "{alice}");
    assert_eq!(alice["again"], 200, "{alice}");
    assert_eq!(alice["tampered"], 302, "a tampered cookie was accepted: {alice}");
    assert_eq!(alice["restored"], 200, "{alice}");
    assert_eq!(alice["afterLogout"], 302, "logout did not end access: {alice}");

    // Bob signs in too, but the rule wants alice.
    let bob = browse("bob");
    assert!(bob["text"].as_str().unwrap().contains("not allowed"), "{bob}");
    assert_eq!(bob["again"], 403, "{bob}");

    // An API client without a session is not redirected into a browser flow.
    let (status, _) =
        rt.block_on(http("POST", &format!("{base}/api"), &[("content-type", "application/json")], "{}")).unwrap();
    assert_eq!(status, 401);
}

#[test]
fn without_the_cookie_secret_the_config_is_refused() {
    let config = "binds:\n- port: 0\n  listeners:\n  - routes:\n    - policies:\n        oidc:\n          issuer: http://127.0.0.1:1\n          clientId: c\n          clientSecret: s\n          redirectURI: http://127.0.0.1:1/cb\n      backends:\n      - host: 127.0.0.1:1\n";
    let (mut child, logs) =
        start_with_env(&["--config", config, "--validate-only"], &[("OIDC_COOKIE_SECRET", "short")]);
    let lines = logs.wait_for("OIDC_COOKIE_SECRET");
    assert!(
        lines.iter().any(|l| l.contains("policies.oidc: set the environment variable OIDC_COOKIE_SECRET")),
        "{lines:#?}"
    );
    let _ = child.wait();
}
