//! Loading tests: what a user sees for good and bad configs.

use crate::load_str;

fn errors(text: &str) -> Vec<String> {
    match load_str("config.yaml", text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn error(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap()
}

const MINIMAL: &str = "\
binds:
- port: 3000
  listeners:
  - routes:
    - backends:
      - mcp:
          targets:
          - name: mcp
            mcp:
              host: http://localhost:3001/mcp
";

#[test]
fn minimal_mcp_config_loads() {
    let loaded = load_str("config.yaml", MINIMAL).unwrap();
    let bind = &loaded.config.binds[0];
    assert_eq!(bind.port, 3000);
    let target = &bind.listeners[0].routes[0].backends[0].mcp.as_ref().unwrap().targets[0];
    assert_eq!(target.name, "mcp");
    assert_eq!(target.mcp.as_ref().unwrap().host.as_deref(), Some("http://localhost:3001/mcp"));
}

#[test]
fn empty_file_is_an_empty_config() {
    let loaded = load_str("config.yaml", "").unwrap();
    assert!(loaded.config.binds.is_empty());
    let loaded = load_str("config.yaml", "# only a comment\n").unwrap();
    assert!(loaded.config.binds.is_empty());
}

#[test]
fn malformed_configs_name_file_line_column_and_path() {
    let cases: &[(&str, &str)] = &[
        // 1. unknown top-level key
        ("bindz: []\n", "config.yaml:1:1: bindz: unknown field `bindz`, expected one of"),
        // 2. unknown nested key, pointing at the key
        (
            "binds:\n- port: 3000\n  listeners:\n  - routs: []\n",
            "config.yaml:4:5: binds[0].listeners[0].routs: unknown field `routs`",
        ),
        // 3. wrong type
        ("binds:\n- port: http\n  listeners: []\n", "config.yaml:2:3: binds[0].port: wrong type: found string \"http\", expected u16"),
        // 4. out of range
        ("binds:\n- port: 70000\n  listeners: []\n", "config.yaml:2:3: binds[0].port: invalid value: integer `70000`, expected u16"),
        // 5. missing required field
        ("binds:\n- port: 3000\n", "config.yaml:2:3: binds[0]: missing field `listeners`"),
        // 6. bad enum value
        (
            "binds:\n- port: 3000\n  listeners:\n  - protocol: HTTP3\n    routes: []\n",
            "config.yaml:4:5: binds[0].listeners[0].protocol: unknown variant `HTTP3`, expected one of `HTTP`, `HTTPS`",
        ),
        // 7. YAML syntax error
        ("binds: [\n", "config.yaml:2:1: invalid YAML:"),
        // 8. duplicate key
        ("binds: []\nbinds: []\n", "config.yaml:2:1: invalid YAML: duplicate key `binds`"),
        // 9. target name with the multiplexing separator
        (
            &MINIMAL.replace("name: mcp", "name: my_server"),
            "config.yaml:8:13: binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].name: target name `my_server` contains `_` or `+`",
        ),
        // 10. a bad duration
        (
            &MINIMAL.replace("    - backends:", "    - policies:\n        timeout:\n          requestTimeout: 10 seconds\n      backends:"),
            "config.yaml:7:11: binds[0].listeners[0].routes[0].policies.timeout.requestTimeout: `10 seconds`: unknown unit",
        ),
        // 11. a backend with no kind
        (
            "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends:\n      - weight: 1\n",
            "config.yaml:6:9: binds[0].listeners[0].routes[0].backends[0]: a backend needs one of `host`, `mcp` or `backend`",
        ),
        // 12. a target with two transports
        (
            &MINIMAL.replace("            mcp:\n", "            stdio: {cmd: x}\n            mcp:\n"),
            "config.yaml:8:13: binds[0].listeners[0].routes[0].backends[0].mcp.targets[0]: a target has exactly one of",
        ),
        // 13. a non-http URL
        (
            &MINIMAL.replace("http://localhost:3001/mcp", "ftp://localhost/mcp"),
            "config.yaml:10:15: binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].mcp.host: `ftp://localhost/mcp`: only http:// and https:// URLs",
        ),
        // 14. an admin address without a port
        ("config:\n  adminAddr: localhost\n", "config.yaml:2:3: config.adminAddr: `localhost` is not `host:port`"),
        // 15. a rule object with two kinds
        (
            &MINIMAL.replace("    - backends:", "    - policies:\n        mcpAuthorization:\n          rules:\n          - {allow: 'true', deny: 'false'}\n      backends:"),
            "binds[0].listeners[0].routes[0].policies.mcpAuthorization.rules[0]: a rule has exactly one of `allow`, `deny`, `require`; found `allow` and `deny`",
        ),
        // 16. a path match that is not a path
        (
            &MINIMAL.replace("    - backends:", "    - matches:\n      - path:\n          pathPrefix: mcp\n      backends:"),
            "config.yaml:7:11: binds[0].listeners[0].routes[0].matches[0].path.pathPrefix: a path prefix must start with `/`",
        ),
        // 17. two JWT providers with one issuer
        (
            &MINIMAL.replace("    - backends:", "    - policies:\n        jwtAuth:\n          providers:\n          - {issuer: a, jwks: '{}'}\n          - {issuer: a, jwks: '{}'}\n      backends:"),
            "binds[0].listeners[0].routes[0].policies.jwtAuth.providers[1].issuer: duplicate issuer",
        ),
        // 18. tracing without an endpoint, or to a URL that is not http:// or https://
        (&format!("{MINIMAL}config:\n  tracing:\n    otlpProtocol: http\n"), "config.tracing.otlpEndpoint: required"),
        (
            &format!("{MINIMAL}config:\n  tracing:\n    otlpEndpoint: ftp://collector:4317\n"),
            "config.yaml:13:5: config.tracing.otlpEndpoint: an http:// or https:// URL",
        ),
        (
            &format!("{MINIMAL}config:\n  tracing:\n    otlpEndpoint: http://c:4317\n    otlpProtocol: thrift\n"),
            "config.tracing.otlpProtocol: unknown variant `thrift`",
        ),
        // 19. a metrics address that is not host:port
        (&format!("{MINIMAL}config:\n  statsAddr: '15020'\n"), "config.statsAddr: `15020` is not `host:port`"),
    ];
    for (text, want) in cases {
        let got = errors(text);
        assert!(got.iter().any(|e| e.contains(want)), "want `{want}`\n got {got:#?}\n for:\n{text}");
    }
}

#[test]
fn agentgateway_features_not_implemented_are_rejected_not_ignored() {
    let text = MINIMAL
        .replace("    - backends:", "    - policies:\n        concurrencyLimit:\n          max: 1\n      backends:");
    assert_eq!(
        error(&text),
        "config.yaml:6:9: binds[0].listeners[0].routes[0].policies.concurrencyLimit: not supported yet"
    );
    assert_eq!(error("tcpRoutes: []\n"), "config.yaml:1:1: tcpRoutes: not supported yet");
    let otlp_log = format!("{MINIMAL}frontendPolicies:\n  accessLog:\n    database: {{}}\n");
    assert_eq!(error(&otlp_log), "config.yaml:13:5: frontendPolicies.accessLog.database: not supported yet");
}

#[test]
fn errors_are_all_reported_together() {
    let text = MINIMAL.replace("name: mcp", "name: A_B") + "config:\n  adminAddr: nope\n";
    assert_eq!(errors(&text).len(), 2);
}

#[test]
fn secrets_are_redacted_when_serialised() {
    let text = MINIMAL.replace("              host: http://localhost:3001/mcp", "              host: http://localhost:3001/mcp\n          - name: s\n            stdio:\n              cmd: server\n              env: {API_KEY: sk-very-secret}");
    // Two targets and stdio are rejected today, but the model still parses; check the dump.
    let value = crate::source::Source::parse(&text).unwrap().to_value();
    let config: crate::Config = serde_json::from_value(value).unwrap();
    let dump = serde_json::to_string(&config).unwrap();
    assert!(!dump.contains("sk-very-secret"), "{dump}");
    assert!(dump.contains("<redacted>"));
}

#[test]
fn schema_describes_fields() {
    let schema = crate::json_schema().to_string();
    assert!(schema.contains("AES-256-GCM key sealing session ids"));
    assert!(schema.contains("\"additionalProperties\":false"));
}

#[test]
fn frontend_policies_load_and_refuse_what_is_not_implemented() {
    let text = format!(
        "{MINIMAL}frontendPolicies:
  http:
    maxBufferSize: 1048576
    http1MaxHeaders: 50
    http1IdleTimeout: 30s
    http1HeaderCase: lowercase
    http2WindowSize: 65535
    http2FrameSize: 32768
    http2KeepaliveInterval: 10s
    http2KeepaliveTimeout: 5s
    maxConnectionDuration: 1h
    requestHeaderTimeout: 5s
    requestBodyTimeout: 20s
    requestBodyMinRate: 2048
    maxBufferedRequestBytes: 67108864
  tcp:
    keepalives:
      enabled: true
      time: 60s
      interval: 10s
      retries: 3
    maxConnectionsPerWorker: 1000
"
    );
    let loaded = load_str("config.yaml", &text).unwrap();
    let f = loaded.config.frontend_policies.unwrap();
    let http = f.http.unwrap();
    assert_eq!(http.request_body_min_rate, Some(2048));
    assert_eq!(http.http1_idle_timeout.map(|d| d.get().as_secs()), Some(30));
    assert_eq!(f.tcp.unwrap().keepalives.unwrap().retries, Some(3));

    for key in ["networkAuthorization", "networkExtAuthz", "proxyProtocol", "proxy", "connect"] {
        let text = format!("{MINIMAL}frontendPolicies:\n  {key}: {{}}\n");
        assert!(error(&text).ends_with(&format!("frontendPolicies.{key}: not supported yet")), "{key}");
    }
    let preserve = format!("{MINIMAL}frontendPolicies:\n  http:\n    http1HeaderCase: preserve\n");
    assert!(error(&preserve).ends_with("frontendPolicies.http.http1HeaderCase: not supported yet"));
    let frame = format!("{MINIMAL}frontendPolicies:\n  http:\n    http2FrameSize: 100\n");
    assert!(error(&frame).contains("must be between 16384 and 16777215"));
    let budget =
        format!("{MINIMAL}frontendPolicies:\n  http:\n    maxBufferSize: 100\n    maxBufferedRequestBytes: 10\n");
    assert!(error(&budget).contains("smaller than `maxBufferSize`"));
    let pings = format!("{MINIMAL}frontendPolicies:\n  http:\n    http2KeepaliveTimeout: 5s\n");
    assert!(error(&pings).contains("without `http2KeepaliveInterval`"));
}

mod guardrails;
mod ratelimit;
mod remote;
mod settings;
mod telemetry;
mod vars;

#[test]
fn https_listeners_load_and_their_mistakes_are_located() {
    // agentgateway's examples/mcp-tls shape.
    let ok = "\
binds:
- port: 3000
  listeners:
  - name: default
    protocol: HTTPS
    tls:
      cert: examples/mcp-tls/certs/cert.pem
      key: examples/mcp-tls/certs/key.pem
      root: ca.pem
      minTLSVersion: TLS_V1_3
      cipherSuites: [TLS_AES_256_GCM_SHA384, ECDHE-ECDSA-AES128-GCM-SHA256]
    routes:
    - backends:
      - mcp:
          targets:
          - name: everything
            stdio:
              cmd: npx
              args: [\"@modelcontextprotocol/server-everything\"]
frontendPolicies:
  tls:
    handshakeTimeout: 5s
    minVersion: TLS_V1_2
";
    let loaded = load_str("config.yaml", ok).unwrap();
    let tls = loaded.config.binds[0].listeners[0].tls.clone().unwrap();
    assert_eq!(tls.min_tls_version, Some(crate::model::TlsVersion::TLS_V1_3));
    assert_eq!(tls.cipher_suites.map(|c| c.len()), Some(2));

    let https = MINIMAL.replace("  - routes:", "  - protocol: HTTPS\n    routes:");
    assert_eq!(
        error(&https),
        "config.yaml:4:5: binds[0].listeners[0].tls: missing: `protocol: HTTPS` needs `tls: {cert: <file>, key: <file>}`"
    );
    let with_tls =
        |tls: &str| MINIMAL.replace("  - routes:", &format!("  - protocol: HTTPS\n    tls: {tls}\n    routes:"));
    assert_eq!(
        error(&with_tls("{cert: c.pem, key: k.pem, minTLSVersion: TLS_V1_3, maxTLSVersion: TLS_V1_2}")),
        "config.yaml:5:61: binds[0].listeners[0].tls.maxTLSVersion: is older than `minTLSVersion`: no TLS version is left"
    );
    assert!(
        error(&with_tls("{cert: c.pem, key: k.pem, cipherSuites: []}")).contains("tls.cipherSuites: an empty list")
    );
    assert!(error(&with_tls("{cert: c.pem, key: k.pem, cipherSuites: [RC4]}")).contains("unknown variant `RC4`"));
    assert!(error(&with_tls("{cert: c.pem, key: k.pem, spiffe: {}}")).ends_with("tls.spiffe: not supported yet"));
    assert!(
        error(&with_tls("{cert: '', key: k.pem}"))
            .ends_with("tls.cert: a file path (PEM), relative to the working directory")
    );

    let mixed = with_tls("{cert: c.pem, key: k.pem}").replace(
        "  - protocol: HTTPS",
        "  - name: plain\n    hostname: plain.example.com\n    routes: []\n  - protocol: HTTPS",
    );
    assert_eq!(
        error(&mixed),
        "config.yaml:7:5: binds[0].listeners[1].protocol: every listener of a bind must be HTTPS, or none: put HTTP and HTTPS on separate ports"
    );
    let frontend = |tls: &str| format!("{MINIMAL}frontendPolicies:\n  tls: {tls}\n");
    assert!(
        error(&frontend("{handshakeTimeout: 0s}"))
            .contains("frontendPolicies.tls.handshakeTimeout: must be more than 0")
    );
    assert!(error(&frontend("{alpn: [h2]}")).ends_with("frontendPolicies.tls.alpn: not supported yet"));
    assert!(error(&frontend("{minVersion: TLS_V1_0}")).contains("TLS 1.0 and 1.1 are not supported"));
}

#[test]
fn backend_and_target_policies_are_checked() {
    let target_policies = |p: &str| {
        MINIMAL.replace(
            "              host: http://localhost:3001/mcp\n",
            &format!("              host: http://localhost:3001/mcp\n            policies:\n{p}"),
        )
    };
    let ok = target_policies("              backendTLS: {root: ca.pem, hostname: mcp.internal, alpn: [h2]}\n");
    let loaded = load_str("config.yaml", &ok).unwrap();
    let mcp = loaded.config.binds[0].listeners[0].routes[0].backends[0].mcp.clone().unwrap();
    let tls = mcp.targets[0].policies.clone().unwrap().backend_tls.unwrap();
    assert_eq!(tls.hostname.as_deref(), Some("mcp.internal"));

    assert_eq!(
        error(&target_policies("              responseHeaderModifier: {set: {x: y}}\n")),
        "config.yaml:12:15: binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].policies.responseHeaderModifier: not on an MCP target (agentgateway takes it on backends only)"
    );
    assert!(
        error(&target_policies("              http: {version: HTTP2}\n"))
            .ends_with("targets[0].policies.http: not supported yet")
    );
    assert!(
        error(&target_policies("              backendTLS: {keyExchangeGroups: [X25519]}\n"))
            .ends_with("targets[0].policies.backendTLS.keyExchangeGroups: not supported yet")
    );

    // A named backend's policies travel with it; a route backend cannot add its own as well.
    let named = "\
binds:
- port: 3000
  listeners:
  - routes:
    - backends:
      - backend: api
        policies:
          backendTLS: {insecure: true}
backends:
- name: api
  host: localhost:8443
  policies:
    backendTLS: {root: ca.pem}
";
    assert_eq!(
        error(named),
        "config.yaml:7:9: binds[0].listeners[0].routes[0].backends[0].policies: `api` has `policies` of its own: set them there or here, not both"
    );
    let loaded =
        load_str("config.yaml", &named.replace("        policies:\n          backendTLS: {insecure: true}\n", ""))
            .unwrap();
    let b = &loaded.config.binds[0].listeners[0].routes[0].backends[0];
    assert_eq!(
        b.policies.as_ref().and_then(|p| p.backend_tls.as_ref()).and_then(|t| t.root.as_deref()),
        Some("ca.pem")
    );
}

#[test]
fn traffic_policy_shapes_are_checked() {
    let route = |policies: &str| {
        format!(
            "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - policies:\n{policies}      backends:\n      - host: h:1\n"
        )
    };
    let cases = [
        (
            "        requestRedirect: {scheme: ftp, status: 200}\n",
            vec![
                "binds[0].listeners[0].routes[0].policies.requestRedirect.scheme: `ftp`: expected `http` or `https`",
                "binds[0].listeners[0].routes[0].policies.requestRedirect.status: 200 is not a redirect status (3xx)",
            ],
        ),
        (
            "        retry: {attempts: 11, codes: [1000]}\n",
            vec![
                "binds[0].listeners[0].routes[0].policies.retry.attempts: at most 10",
                "binds[0].listeners[0].routes[0].policies.retry.codes[0]: 1000 is not an HTTP status",
            ],
        ),
        (
            "        directResponse: {body: x}\n",
            vec!["binds[0].listeners[0].routes[0].policies.directResponse: needs `status` (or `conditional`)"],
        ),
    ];
    for (policies, want) in cases {
        let got = errors(&route(policies)).join("\n");
        for w in &want {
            assert!(got.contains(w), "{w} in {got}");
        }
    }
    // Several backends: only `host:` ones; a route without backends must answer itself.
    let text = "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends:\n      - host: h:1\n      - mcp: {targets: [{name: a, stdio: {cmd: x}}]}\n    - name: nothing\n";
    let got = errors(text).join("\n");
    assert!(got.contains("routes[0].backends[1]: several backends on one route must all be `host:` backends"), "{got}");
    assert!(got.contains("routes[1].backends: a route needs a backend"), "{got}");
}
