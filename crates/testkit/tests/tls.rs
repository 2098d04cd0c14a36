//! HTTPS listeners: MCP over TLS, several certificates on one port by SNI, client certificates
//! (mTLS), TLS versions, certificates that clients must refuse, certificate rotation without a
//! restart, and handshakes that never finish. Certificates are the committed test ones
//! (`tests/tls/`, see `agw_testkit::tls`).

use std::time::Duration;

use agw_testkit::client::{McpClient, first_text, https};
use agw_testkit::harness::Gateway;
use agw_testkit::reference;
use agw_testkit::tls::{self, client_config, client_config_with, path};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bind on a free port with HTTPS listeners; `listeners` is YAML for the list items, each
/// getting the MCP route to `upstream`.
fn https_bind(upstream: &str, listeners: &[(&str, &str)]) -> String {
    let mut yaml = String::from("binds:\n- port: 0\n  listeners:\n");
    for (head, tls) in listeners {
        yaml.push_str(&format!(
            "  - {head}\n    protocol: HTTPS\n    tls: {tls}\n    routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: upstream\n            mcp:\n              host: {upstream}\n"
        ));
    }
    yaml
}

fn cert(name: &str) -> String {
    format!("{{cert: {}, key: {}}}", path(&format!("{name}.pem")), path(&format!("{name}.key")))
}

async fn upstream() -> (agw_testkit::serve::Server, String) {
    let server = reference::serve("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let url = server.url("/mcp");
    (server, url)
}

fn https_url(gw: &Gateway, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", gw.addr.port())
}

#[tokio::test]
async fn mcp_over_https_with_h2_and_http1() {
    let (_up, url) = upstream().await;
    let gw = Gateway::start(&https_bind(&url, &[("name: default", &cert("localhost"))])).await.unwrap();

    let mut c = McpClient::with_tls(https_url(&gw, "localhost", "/mcp"), Some(client_config(&["ca"], None)));
    c.initialize().await.unwrap();
    let answer = c.call_tool("echo", json!({"message": "over TLS"})).await.unwrap();
    assert_eq!(first_text(&answer), Some("Echo: over TLS"), "{answer}");

    // ALPN: h2 preferred, http/1.1 offered.
    let s = tls::connect(gw.addr, "localhost", client_config(&["ca"], None)).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(tls::leaf(&s).unwrap(), tls::certs("localhost")[0]);
    let mut only_h1 = client_config(&["ca"], None);
    only_h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut s = tls::connect(gw.addr, "localhost", only_h1).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    s.write_all(b"GET /nowhere HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");

    // Cleartext on the HTTPS port is not served.
    let (plain, _) = https("GET", &format!("http://127.0.0.1:{}/mcp", gw.addr.port()), &[], "", None)
        .await
        .map_or((0, String::new()), |r| r);
    assert_eq!(plain, 0, "a cleartext request got an HTTP answer");
    // And the gateway still serves TLS after it.
    assert!(c.tool_names().await.unwrap().contains(&"echo".to_string()));
}

#[tokio::test]
async fn sni_picks_the_listener_and_its_certificate() {
    let (_up, url) = upstream().await;
    let yaml = https_bind(
        &url,
        &[
            ("name: a\n    hostname: a.example.com", &cert("a")),
            ("name: b\n    hostname: '*.b.example.com'", &cert("b")),
            ("name: rest", &cert("localhost")),
        ],
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    for (sni, expected) in [("a.example.com", "a"), ("x.b.example.com", "b"), ("localhost", "localhost")] {
        let s = tls::connect(gw.addr, sni, client_config(&["ca"], None)).await.unwrap();
        assert_eq!(tls::leaf(&s).unwrap(), tls::certs(expected)[0], "SNI {sni}");
    }

    // A request whose Host names another listener than the handshake's: 421, so that one
    // listener's TLS settings cannot be used to reach another listener.
    let mut s = tls::connect(gw.addr, "a.example.com", {
        let mut c = client_config(&["ca"], None);
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c
    })
    .await
    .unwrap();
    s.write_all(b"GET /mcp HTTP/1.1\r\nhost: x.b.example.com\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 421 "), "{answer}");
}

#[tokio::test]
async fn clients_refuse_an_unknown_ca_and_an_expired_certificate() {
    let (_up, url) = upstream().await;
    let gw = Gateway::start(&https_bind(&url, &[("name: default", &cert("localhost"))])).await.unwrap();
    let err = tls::connect(gw.addr, "localhost", client_config(&["other-ca"], None)).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("unknownissuer"), "{err}");
    // The name is checked too.
    let err = tls::connect(gw.addr, "elsewhere.example.com", client_config(&["ca"], None)).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");

    let expired = Gateway::start(&https_bind(&url, &[("name: default", &cert("expired"))])).await.unwrap();
    let err = tls::connect(expired.addr, "localhost", client_config(&["ca"], None)).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
    // The refused handshakes left the gateway serving.
    let s = tls::connect(gw.addr, "localhost", client_config(&["ca"], None)).await.unwrap();
    assert!(tls::leaf(&s).is_some());
}

#[tokio::test]
async fn mutual_tls_accepts_only_clients_of_its_ca() {
    let (_up, url) = upstream().await;
    let tls_yaml =
        format!("{{cert: {}, key: {}, root: {}}}", path("localhost.pem"), path("localhost.key"), path("ca.pem"));
    let gw = Gateway::start(&https_bind(&url, &[("name: default", &tls_yaml)])).await.unwrap();
    let mcp = https_url(&gw, "localhost", "/mcp");

    let mut alice = McpClient::with_tls(&mcp, Some(client_config(&["ca"], Some("client"))));
    alice.initialize().await.unwrap();
    assert!(alice.tool_names().await.unwrap().contains(&"echo".to_string()));

    // TLS 1.3 clients learn of the refusal on their first read: the request fails either way.
    for (who, client) in [("no certificate", None), ("another CA's", Some("client-other"))] {
        let mut c = McpClient::with_tls(&mcp, Some(client_config(&["ca"], client)));
        assert!(c.initialize().await.is_err(), "{who} was served");
    }
}

#[tokio::test]
async fn tls_versions_and_cipher_suites_are_enforced() {
    let (_up, url) = upstream().await;
    let tls13 = format!("{{cert: {}, key: {}, minTLSVersion: TLS_V1_3}}", path("localhost.pem"), path("localhost.key"));
    let gw = Gateway::start(&https_bind(&url, &[("name: default", &tls13)])).await.unwrap();
    let tls12_only = client_config_with(&["ca"], None, &[&rustls::version::TLS12]);
    assert!(tls::connect(gw.addr, "localhost", tls12_only.clone()).await.is_err(), "TLS 1.2 accepted");
    let s = tls::connect(gw.addr, "localhost", client_config(&["ca"], None)).await.unwrap();
    assert_eq!(s.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));

    // TLS 1.2 with one suite (OpenSSL's name for it), from frontendPolicies.
    let yaml = format!(
        "{}frontendPolicies:\n  tls:\n    maxVersion: TLS_V1_2\n    cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384]\n",
        https_bind(&url, &[("name: default", &cert("localhost"))])
    );
    let gw12 = Gateway::start(&yaml).await.unwrap();
    let s = tls::connect(gw12.addr, "localhost", client_config(&["ca"], None)).await.unwrap();
    assert_eq!(s.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(
        s.get_ref().1.negotiated_cipher_suite().map(|c| c.suite()),
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    );
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_restart() {
    let (_up, url) = upstream().await;
    let dir = std::env::temp_dir().join(format!("agw-tls-rotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let install = |name: &str| {
        // As a deployment should: write aside, then rename over.
        for ext in ["pem", "key"] {
            let tmp = dir.join(format!("next.{ext}"));
            std::fs::copy(path(&format!("{name}.{ext}")), &tmp).unwrap();
            std::fs::rename(&tmp, dir.join(format!("server.{ext}"))).unwrap();
        }
    };
    install("localhost");
    let served = format!("{{cert: {}, key: {}}}", dir.join("server.pem").display(), dir.join("server.key").display());
    let config = dir.join("config.yaml");
    std::fs::write(&config, agw_testkit::harness::with_free_ports(&https_bind(&url, &[("name: default", &served)])))
        .unwrap();
    let gw = Gateway::start_file(&config).await.unwrap();
    let s = tls::connect(gw.addr, "localhost", client_config(&["ca"], None)).await.unwrap();
    assert_eq!(tls::leaf(&s).unwrap(), tls::certs("localhost")[0]);
    // A session open across the rotation keeps working.
    let mut open = McpClient::with_tls(https_url(&gw, "localhost", "/mcp"), Some(client_config(&["ca"], None)));
    open.initialize().await.unwrap();

    install("localhost2");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = tls::connect(gw.addr, "localhost", client_config(&["ca"], None)).await.unwrap();
        if tls::leaf(&s).unwrap() == tls::certs("localhost2")[0] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rotated certificate was never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = open.call_tool("echo", json!({"message": "still here"})).await.unwrap();
    assert_eq!(first_text(&answer), Some("Echo: still here"));
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn silent_and_garbage_handshakes_are_closed() {
    let (_up, url) = upstream().await;
    let yaml = format!(
        "{}frontendPolicies:\n  tls:\n    handshakeTimeout: 300ms\n",
        https_bind(&url, &[("name: default", &cert("localhost"))])
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    // Says nothing: closed by the handshake time-out (the bound here is only a test guard).
    let mut silent = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a silent client was kept: {read:?}");
    // Not TLS at all.
    let mut garbage = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    garbage.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 2, 3]).await.unwrap();
    garbage.write_all(&[0xde; 4096]).await.unwrap_or(());
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut total = Vec::new();
        garbage.read_to_end(&mut total).await.map(|_| total)
    })
    .await;
    assert!(read.is_ok(), "a garbage handshake was kept open");
    let s = tls::connect(gw.addr, "localhost", client_config(&["ca"], None)).await.unwrap();
    assert!(tls::leaf(&s).is_some());
}

#[tokio::test]
async fn unusable_certificate_files_are_located_config_errors() {
    let start = |tls: String| async move {
        let yaml = https_bind("http://127.0.0.1:1/mcp", &[("name: default", &tls)]);
        Gateway::start(&yaml).await.err().map(|e| e.to_string()).unwrap_or_default()
    };
    let missing = start(format!("{{cert: nope.pem, key: {}}}", path("localhost.key"))).await;
    assert!(missing.contains("binds[0].listeners[0].tls.cert: cannot read `nope.pem`"), "{missing}");
    let not_a_cert = start(format!("{{cert: {}, key: {}}}", path("localhost.key"), path("localhost.key"))).await;
    assert!(not_a_cert.contains("tls.cert: no certificate in"), "{not_a_cert}");
    let wrong_key = start(format!("{{cert: {}, key: {}}}", path("localhost.pem"), path("a.key"))).await;
    assert!(wrong_key.contains("tls.key: "), "{wrong_key}");
    assert!(wrong_key.contains("cannot be used with the certificate"), "{wrong_key}");
    let no_key = start(format!("{{cert: {}, key: {}}}", path("localhost.pem"), path("localhost.pem"))).await;
    assert!(no_key.contains("tls.key: no private key in"), "{no_key}");
    // The message names the file, never what is in it.
    let key_text = std::fs::read_to_string(path("localhost.key")).unwrap();
    let body = key_text.lines().nth(1).unwrap();
    assert!(!not_a_cert.contains(body) && !wrong_key.contains(body));
}

/// `gateways` with an HTTPS listener, as agentgateway writes it.
#[tokio::test]
async fn https_on_gateways() {
    let (_up, url) = upstream().await;
    let yaml = format!(
        "gateways:\n  default:\n    port: 0\n    protocol: HTTPS\n    tls: {}\nmcp:\n  targets:\n  - name: upstream\n    mcp:\n      host: {url}\n",
        cert("localhost")
    );
    let gw = Gateway::start(&yaml).await.unwrap();
    let mut c = McpClient::with_tls(https_url(&gw, "localhost", "/mcp"), Some(client_config(&["ca"], None)));
    c.initialize().await.unwrap();
    assert!(c.tool_names().await.unwrap().contains(&"echo".to_string()));
}

/// `examples/front-door/mcp-tls.yaml` (agentgateway's `examples/mcp-tls` shape) with
/// server-everything: the TypeScript SDK client trusts the test CA through
/// `NODE_EXTRA_CA_CERTS`, the Python SDK client through its own SSL context, and `curl` talks
/// HTTP/2 and HTTP/1.1 to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tls_shape_with_the_sdk_client_and_curl() {
    use agw_testkit::node;
    let examples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/front-door");
    let text = std::fs::read_to_string(examples.join("mcp-tls.yaml")).unwrap();
    let args = format!("args: [{:?}, stdio]", node::server_everything_js());
    let text = text
        .replace("port: 3000", "port: 0")
        .replace("../../crates/testkit/tests/tls/", &path(""))
        .replace("cmd: npx", "cmd: node")
        .replace(r#"args: ["-y", "@modelcontextprotocol/server-everything"]"#, &args);
    assert!(text.contains("stdio") && text.contains(&path("localhost.pem")), "{text}");
    let gw = Gateway::start(&text).await.unwrap();
    let url = https_url(&gw, "localhost", "/mcp");

    let ca = path("ca.pem");
    let (ok, stdout, stderr) =
        node::run_script_env("sdk-client.mjs", &[&url, "echo"], &[("NODE_EXTRA_CA_CERTS", &ca)]).await;
    assert!(ok, "{stdout}\n{stderr}");
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["echo"], "Echo: hello from the SDK", "{out}");
    // Without the CA, Node refuses the certificate.
    let (ok, stdout, _) = node::run_script_env("sdk-client.mjs", &[&url], &[]).await;
    assert!(!ok || stdout.contains("error"), "the SDK client accepted an unknown CA: {stdout}");

    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;
    for version in ["--http2", "--http1.1"] {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", version, "--cacert", &ca, "-w", "\n%{http_version} %{http_code}", "-X", "POST", &url])
            .args(["-H", "content-type: application/json", "-H", "accept: application/json, text/event-stream"])
            .args(["-d", body])
            .output()
            .await
            .expect("curl runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected = if version == "--http2" { "2 200" } else { "1.1 200" };
        assert!(stdout.trim_end().ends_with(expected), "curl {version}: {stdout}");
        assert!(stdout.contains("serverInfo"), "{stdout}");
    }
    // As agentgateway's README runs it: `curl -k` against the self-signed listener.
    let out = tokio::process::Command::new("curl")
        .args(["-sSk", "-o", "/dev/null", "-w", "%{http_code}", &url])
        .output()
        .await
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "000", "{}", String::from_utf8_lossy(&out.stderr));

    // The official Python SDK client (httpx) trusting the test CA; and refusing without it.
    let args = [url.as_str(), ca.as_str(), "echo", r#"{"message": "hello from Python"}"#];
    let (ok, stdout, stderr) = agw_testkit::python::run_script("sdk_client.py", &args).await;
    assert!(ok, "{stdout}\n{stderr}");
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["result"]["text"], "Echo: hello from Python", "{out}");
    assert!(out["tools"].as_array().unwrap().iter().any(|t| t == "echo"), "{out}");
    let (ok, stdout, _) = agw_testkit::python::run_script("sdk_client.py", &[&url, ""]).await;
    assert!(!ok && stdout.contains("CERTIFICATE_VERIFY_FAILED"), "the Python client accepted an unknown CA: {stdout}");
}

/// CEL rules see the verified client certificate as agentgateway names it:
/// `source.subjectAltNames`, `source.spiffeId`, `source.subject`, `source.issuer`,
/// `source.subjectCn`.
#[tokio::test]
async fn rules_see_the_client_certificate() {
    let (_up, url) = upstream().await;
    let tls_yaml =
        format!("{{cert: {}, key: {}, root: {}}}", path("localhost.pem"), path("localhost.key"), path("ca.pem"));
    let gateway = |rule: &str| {
        let bind = https_bind(&url, &[("name: default", &tls_yaml)]);
        bind.replace(
            "    routes:\n    - backends:",
            &format!(
                "    routes:\n    - policies:\n        authorization:\n          rules: ['{rule}']\n      backends:"
            ),
        )
    };
    let alice = || client_config(&["ca"], Some("client"));

    let gw = Gateway::start(&gateway(r#"source.spiffeId == "spiffe://example.com/alice""#)).await.unwrap();
    let mut c = McpClient::with_tls(https_url(&gw, "localhost", "/mcp"), Some(alice()));
    c.initialize().await.unwrap();

    let gw =
        Gateway::start(&gateway(r#"source.subjectAltNames.exists(n, n == "bob.clients.example.com")"#)).await.unwrap();
    let (status, _) = https(
        "POST",
        &https_url(&gw, "localhost", "/mcp"),
        &[("content-type", "application/json")],
        "{}",
        Some(alice()),
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "a rule about another client let alice in");
    let gw = Gateway::start(&gateway(r#"source.subjectAltNames.exists(n, n == "alice.clients.example.com")"#))
        .await
        .unwrap();
    let mut c = McpClient::with_tls(https_url(&gw, "localhost", "/mcp"), Some(alice()));
    c.initialize().await.unwrap();

    // The subject and issuer names and the subject's CN.
    let rule = r#"source.subjectCn == "alice" && source.subject == "CN=alice" && source.issuer == "CN=agw test CA""#;
    let gw = Gateway::start(&gateway(rule)).await.unwrap();
    let mut c = McpClient::with_tls(https_url(&gw, "localhost", "/mcp"), Some(alice()));
    c.initialize().await.unwrap();
    let gw = Gateway::start(&gateway(r#"source.subjectCn == "mallory""#)).await.unwrap();
    let (status, _) = https(
        "POST",
        &https_url(&gw, "localhost", "/mcp"),
        &[("content-type", "application/json")],
        "{}",
        Some(alice()),
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "a rule about another subject let alice in");
}
