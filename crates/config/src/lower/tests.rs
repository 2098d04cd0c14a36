//! Each front-door shape gives the same config as its `binds` form, and every way of wiring
//! the shapes together wrongly is an error that points into the file.

use crate::error::FieldPath;
use crate::{Config, load_str};

fn lowered(text: &str) -> Config {
    match load_str("config.yaml", text) {
        Ok(l) => l.config,
        Err(e) => panic!("config was refused:\n{e}\n{text}"),
    }
}

/// `agw` (agentgateway's shape) and `binds` (written out by hand) are the same runtime config,
/// down to what `/config_dump` shows.
fn same(agw: &str, binds: &str) {
    let (a, b) = (lowered(agw), lowered(binds));
    assert_eq!(crate::redact::dump(&a), crate::redact::dump(&b));
    assert_eq!(a, b);
}

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

const TARGETS: &str = "
  targets:
  - name: time
    stdio:
      cmd: uvx
      args: [mcp-server-time]
  - name: everything
    stdio:
      cmd: npx
      args: ['@modelcontextprotocol/server-everything']
";

/// The `binds` form of an `mcp:` endpoint: `port`, route `matches` and route `policies`
/// (YAML at route indentation) as given.
fn mcp_binds(port: u16, listener: &str, matches: &[&str], policies: &str) -> String {
    let matches: String = matches.iter().map(|p| format!("      - path:\n          pathPrefix: {p}\n")).collect();
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - name: {listener}\n    routes:\n    - name: default\n      namespace: internal\n      matches:\n{matches}{policies}      backends:\n      - mcp:\n          prefixMode: always\n          targets:\n          - name: time\n            stdio:\n              cmd: uvx\n              args: [mcp-server-time]\n          - name: everything\n            stdio:\n              cmd: npx\n              args: ['@modelcontextprotocol/server-everything']\n"
    )
}

#[test]
fn standalone_mcp_is_a_catch_all_route_on_port_3000() {
    same(&format!("mcp:\n  prefixMode: always{TARGETS}"), &mcp_binds(3000, "mcp", &["/"], ""));
    same(&format!("mcp:\n  port: 8080\n  prefixMode: always{TARGETS}"), &mcp_binds(8080, "mcp", &["/"], ""));
}

#[test]
fn mcp_policies_stay_with_the_route() {
    let agw = format!(
        "mcp:\n  port: 3000\n  prefixMode: always\n  policies:\n    cors:\n      allowOrigins: ['*']\n    backendAuth:\n      passthrough: {{}}\n    mcpAuthorization:\n      rules:\n      - 'mcp.tool.name == \"echo\"'{TARGETS}"
    );
    let policies = "      policies:\n        cors:\n          allowOrigins: ['*']\n        backendAuth:\n          passthrough: {}\n        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"echo\"'\n";
    same(&agw, &mcp_binds(3000, "mcp", &["/"], policies));
}

#[test]
fn mcp_attaches_to_the_default_gateway_on_its_mcp_paths() {
    let agw = format!("gateways:\n  default:\n    port: 3000\nmcp:\n  prefixMode: always{TARGETS}");
    same(&agw, &mcp_binds(3000, "default", &["/mcp", "/sse", "/.well-known"], ""));
    // With `port`, it stands alone even when there is a default gateway.
    let own = lowered(&format!("gateways:\n  default:\n    port: 3000\nmcp:\n  port: 3001{TARGETS}"));
    assert_eq!(own.binds.len(), 2);
    assert_eq!(own.binds[1].port, 3001);
    assert!(own.binds[0].listeners[0].routes.is_empty());
}

#[test]
fn mcp_attaches_to_named_gateways_and_listeners() {
    let agw = format!(
        "gateways:\n  web:\n    port: 3000\n    listeners:\n    - name: a\n      hostname: a.example.com\n    - hostname: b.example.com\nmcp:\n  gateways: web/a\n  prefixMode: always{TARGETS}"
    );
    let c = lowered(&agw);
    let listeners = &c.binds[0].listeners;
    assert_eq!(listeners[0].name.as_deref(), Some("web/a"));
    assert_eq!(listeners[1].name.as_deref(), Some("web/listener1"));
    assert_eq!(listeners[0].routes.len(), 1);
    assert!(listeners[1].routes.is_empty(), "only the listener named");
    let all = lowered(&agw.replace("gateways: web/a", "gateways: [web, web/a]"));
    assert_eq!(all.binds[0].listeners.iter().map(|l| l.routes.len()).collect::<Vec<_>>(), [1, 1], "each once");
}

#[test]
fn gateways_and_routes_are_binds() {
    // agentgateway's `gateway_config` test, in both forms.
    let agw = "\
gateways:
  default:
    port: 12345
  alt:
    port: 12346
  with-listeners:
    port: 12347
    listeners:
      - hostname: a.example.com
        name: a
      - hostname: b.example.com
routes:
- gateways: [default]
  backends:
  - host: explicit-default:80
- backends:
  - host: implicit-default:80
- gateways: alt
  backends:
  - host: alt:80
- gateways: [alt, with-listeners/a]
  backends:
    - host: multiple-gateways:80
";
    let binds = "\
binds:
- port: 12346
  listeners:
  - name: alt
    routes:
    - backends: [{host: alt:80}]
    - backends: [{host: multiple-gateways:80}]
- port: 12345
  listeners:
  - name: default
    routes:
    - backends: [{host: explicit-default:80}]
    - backends: [{host: implicit-default:80}]
- port: 12347
  listeners:
  - name: with-listeners/a
    hostname: a.example.com
    routes:
    - backends: [{host: multiple-gateways:80}]
  - name: with-listeners/listener1
    hostname: b.example.com
    routes: []
";
    same(agw, binds);
}

#[test]
fn gateway_policy_fields_are_listener_policies() {
    let agw = "\
gateways:
  default:
    port: 3000
    cors:
      allowOrigins: ['*']
    authorization:
      rules: ['request.method != \"DELETE\"']
routes:
- backends: [{host: localhost:8080}]
";
    let binds = "\
binds:
- port: 3000
  listeners:
  - name: default
    policies:
      cors:
        allowOrigins: ['*']
      authorization:
        rules: ['request.method != \"DELETE\"']
    routes:
    - backends: [{host: localhost:8080}]
";
    same(agw, binds);
    let listeners = "\
gateways:
  web:
    port: 3000
    listeners:
    - name: a
      cors:
        allowOrigins: ['*']
routes:
- gateways: web
  backends: [{host: localhost:8080}]
";
    let c = lowered(listeners);
    assert_eq!(c.binds[0].listeners[0].policies.as_ref().unwrap().cors.as_ref().unwrap().allow_origins, ["*"]);
}

#[test]
fn named_backends_are_inlined_by_either_name() {
    let mcp =
        "backends:\n- name: shared-mcp\n  mcp:\n    targets:\n    - name: everything\n      stdio:\n        cmd: npx\n";
    let inline = "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: everything\n            stdio:\n              cmd: npx\n";
    for reference in ["shared-mcp", "/shared-mcp"] {
        let agw = format!(
            "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends:\n      - backend: {reference}\n{mcp}"
        );
        same(&agw, inline);
    }
    let host = "routes:\n- gateways: g\n  backends:\n  - backend: /api\ngateways:\n  g:\n    port: 3000\nbackends:\n- name: api\n  host: localhost:8080\n";
    same(
        host,
        "binds:\n- port: 3000\n  listeners:\n  - name: g\n    routes:\n    - backends: [{host: localhost:8080}]\n",
    );
}

#[test]
fn mcp_targets_reach_named_host_backends_at_a_path() {
    let agw = "mcp:\n  targets:\n  - name: remote\n    mcp:\n      backend: /api\n      path: /mcp\n  - name: old\n    sse:\n      backend: api\n      path: /sse\nbackends:\n- name: api\n  host: localhost:8080\n";
    let binds = "binds:\n- port: 3000\n  listeners:\n  - name: mcp\n    routes:\n    - name: default\n      namespace: internal\n      matches: [{path: {pathPrefix: /}}]\n      backends:\n      - mcp:\n          targets:\n          - name: remote\n            mcp:\n              host: http://localhost:8080/mcp\n          - name: old\n            sse:\n              host: http://localhost:8080/sse\n";
    same(agw, binds);
}

#[test]
fn binds_keep_their_place_before_gateways_and_mcp() {
    let c = lowered(&format!(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{{host: localhost:8080}}]\ngateways:\n  g:\n    port: 2\nmcp:\n  port: 3{TARGETS}"
    ));
    assert_eq!(c.binds.iter().map(|b| b.port).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(c.gateways.is_empty() && c.routes.is_empty() && c.mcp.is_none(), "only binds are left");
}

#[test]
fn wrong_references_are_located_errors() {
    let gw = "gateways:\n  web:\n    port: 3000\n";
    let route = |extra: &str| format!("{gw}routes:\n- name: api\n{extra}  backends:\n  - host: localhost:8080\n");
    let cases: Vec<(String, &str)> = vec![
        (
            route("  gateways: nope\n"),
            "config.yaml:6:3: routes[0].gateways: unknown gateway `nope` (gateways and listeners: web)",
        ),
        (
            route("  gateways: [web, web/x]\n"),
            "config.yaml:6:19: routes[0].gateways[1]: unknown gateway `web/x` (gateways and listeners: web)",
        ),
        (
            route(""),
            "config.yaml:5:3: routes[0]: names no `gateways`, and there is no `default` gateway serving HTTP to attach it to",
        ),
        (
            format!("mcp:\n  gateways: other{TARGETS}"),
            "config.yaml:2:3: mcp.gateways: unknown gateway `other` (there are no `gateways`)",
        ),
        (
            format!("{gw}mcp:\n  gateways: web\n  port: 3001{TARGETS}"),
            "config.yaml:5:3: mcp.gateways: use either `gateways` or `port`, not both",
        ),
        (
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - backend: nope\n".into(),
            "config.yaml:6:9: binds[0].listeners[0].routes[0].backends[0].backend: unknown backend `nope` (there are no top-level `backends`)",
        ),
        (
            "mcp:\n  targets:\n  - name: a\n    mcp:\n      backend: /m\n      path: /mcp\nbackends:\n- name: m\n  mcp:\n    targets:\n    - name: b\n      stdio: {cmd: x}\n".into(),
            "config.yaml:5:7: mcp.targets[0].mcp.backend: `/m` is an MCP backend: an MCP target's `backend` names a `host` backend",
        ),
        (
            "mcp:\n  targets:\n  - name: a\n    mcp:\n      backend: /zz\n      path: /mcp\nbackends:\n- name: m\n  host: h:1\n".into(),
            "config.yaml:5:7: mcp.targets[0].mcp.backend: unknown backend `/zz` (named backends: m)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(&text), want, "{text}");
    }
}

#[test]
fn ports_are_unique_across_binds_gateways_and_mcp() {
    let bind = "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends: [{host: localhost:8080}]\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{bind}gateways:\n  g:\n    port: 3000\n"),
            "config.yaml:8:5: gateways.g.port: port 3000 is also used by binds[0]; binds, gateways and mcp each need their own port (attach routes and mcp to one gateway to share a port)",
        ),
        (
            "gateways:\n  a:\n    port: 80\n  b:\n    port: 80\n".into(),
            "config.yaml:5:5: gateways.b.port: port 80 is also used by gateways.a; binds, gateways and mcp each need their own port (attach routes and mcp to one gateway to share a port)",
        ),
        (
            format!("{bind}mcp:{TARGETS}"),
            "config.yaml:6:1: mcp: port 3000 is also used by binds[0]; binds, gateways and mcp each need their own port (attach routes and mcp to one gateway to share a port)",
        ),
        (
            format!("gateways:\n  g:\n    port: 4000\nmcp:\n  port: 4000{TARGETS}"),
            "config.yaml:5:3: mcp.port: port 4000 is also used by gateways.g; binds, gateways and mcp each need their own port (attach routes and mcp to one gateway to share a port)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(&text), want, "{text}");
    }
    // Port 0 (any free port) never conflicts.
    lowered(&format!("binds:\n- port: 0\n  listeners: []\ngateways:\n  g:\n    port: 0\nmcp:\n  port: 0{TARGETS}"));
}

#[test]
fn gateway_shapes_are_checked_as_written() {
    let cases: Vec<(&str, &str)> = vec![
        ("gateways:\n  g: {}\n", "config.yaml:2:3: gateways.g.port: required: the port this gateway listens on"),
        (
            "mcp:\n  gateways: {a: 1}\n  targets: []\n",
            "config.yaml:2:3: mcp.gateways: wrong type: found map, expected a gateway (`<gateway>` or `<gateway>/<listener>`) or a list of them",
        ),
        (
            "mcp:\n  gateways: [a, 5]\n  targets: []\n",
            "config.yaml:2:17: mcp.gateways[1]: wrong type: found integer `5`, expected a string",
        ),
        (
            "gateways:\n  g:\n    port: 1\n    cors: {allowOrigins: ['*']}\n    listeners:\n    - name: a\n",
            "config.yaml:2:3: gateways.g: with `listeners`, only `port` may be set on the gateway itself: move `protocol`, `tls` and policies onto its listeners",
        ),
        (
            "gateways:\n  g:\n    port: 1\n    protocol: HTTPS\n",
            "config.yaml:2:3: gateways.g.tls: missing: `protocol: HTTPS` needs `tls: {cert: <file>, key: <file>}`",
        ),
        (
            "gateways:\n  g:\n    port: 1\n    tls: {cert: c.pem, key: k.pem, minTLSVersion: TLS_V1_1}\n",
            "config.yaml:4:36: gateways.g.tls.minTLSVersion: TLS 1.0 and 1.1 are not supported (insecure): use `TLS_V1_2` or `TLS_V1_3`",
        ),
        (
            "gateways:\n  g:\n    port: 1\n    listeners:\n    - name: a\n      tls: {cert: c.pem, key: k.pem}\n    - name: b\n",
            "config.yaml:7:7: gateways.g.listeners[1].protocol: every listener of a gateway must be HTTPS, or none: put HTTP and HTTPS on separate gateways",
        ),
        (
            "gateways:\n  g:\n    port: 1\n    protocol: HTTP\n    tls: {cert: c.pem, key: k.pem}\n",
            "config.yaml:5:5: gateways.g.tls: `tls` needs `protocol: HTTPS`",
        ),
        (
            "gateways:\n  g:\n    port: 1\n    listeners:\n    - name: a\n    - name: a\n",
            "config.yaml:6:7: gateways.g.listeners[1].name: listener name `a` is used twice in this gateway",
        ),
        ("gateways:\n  g:\n    port: 1\n    oidc: {}\n", "config.yaml:4:5: gateways.g.oidc: not supported yet"),
        (
            "gateways:\n  g:\n    port: 1\n    listeners:\n    - hostname: 'not a host'\n",
            "config.yaml:5:7: gateways.g.listeners[0].hostname: `not a host` is not a host name (or `*.suffix` wildcard)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(text), want, "{text}");
    }
    // A TCP gateway is refused, and routes cannot attach to it.
    let tcp = errors(
        "gateways:\n  default:\n    port: 1\n    protocol: TCP\nroutes:\n- gateways: default\n  backends: [{host: h:1}]\n",
    );
    assert_eq!(
        tcp,
        [
            "config.yaml:4:5: gateways.default.protocol: not supported yet (only HTTP listeners)",
            "config.yaml:6:3: routes[0].gateways: gateway `default` has no HTTP listeners",
        ]
    );
}

#[test]
fn named_backends_and_targets_are_checked_as_written() {
    let cases: Vec<(&str, &str)> = vec![
        (
            "backends:\n- name: a\n  host: h:1\n- name: a\n  host: h:2\n",
            "config.yaml:4:3: backends[1].name: backend name `a` is used twice",
        ),
        ("backends:\n- name: a\n", "config.yaml:2:3: backends[0]: a backend needs one of `host` or `mcp`"),
        ("backends:\n- name: a\n  ai: {}\n", "config.yaml:3:3: backends[0].ai: not supported yet"),
        (
            "backends:\n- name: a\n  host: h:1\n  mcp: {targets: [{name: x, stdio: {cmd: y}}]}\n",
            "config.yaml:2:3: backends[0]: a backend has exactly one of `host`, `mcp`, `ai`, `aws`, `internal`; found several",
        ),
        (
            "backends:\n- name: a\n  host: nope\n",
            "config.yaml:3:3: backends[0].host: `nope` is not `host:port` (e.g. `localhost:8080`)",
        ),
        (
            "backends:\n- name: a\n  host: h:1\n  policies: {health: {}}\n",
            "config.yaml:4:14: backends[0].policies.health: not supported yet",
        ),
        (
            "mcp:\n  targets:\n  - name: a\n    mcp:\n      backend: b\nbackends:\n- name: b\n  host: h:1\n",
            "config.yaml:4:5: mcp.targets[0].mcp: `backend` needs `path` too: the MCP endpoint's path, e.g. `/mcp`",
        ),
        (
            "mcp:\n  targets:\n  - name: a\n    mcp:\n      backend: b\n      host: http://x/mcp\n      path: /mcp\nbackends:\n- name: b\n  host: h:1\n",
            "config.yaml:4:5: mcp.targets[0].mcp: use either `backend` (with `path`) or `host`, not both",
        ),
        (
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - backend: /\n",
            "config.yaml:6:9: binds[0].listeners[0].routes[0].backends[0].backend: names no backend (write the name of one of the top-level `backends`)",
        ),
        (
            "mcp:\n  targets:\n  - name: a_b\n    stdio: {cmd: x}\n",
            "config.yaml:3:5: mcp.targets[0].name: target name `a_b` contains `_` or `+`, which separate target names from tool names and resource URIs",
        ),
        ("mcp:\n  targets: []\n", "config.yaml:2:3: mcp.targets: an MCP backend needs at least one target"),
        (
            "mcp:\n  policies:\n    concurrencyLimit: {}\n  targets:\n  - name: a\n    stdio: {cmd: x}\n",
            "config.yaml:3:5: mcp.policies.concurrencyLimit: not supported yet",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(text), want, "{text}");
    }
    // A target naming a backend of a kind not supported yet: refused where the kind is, once.
    let aws = errors(
        "mcp:\n  targets:\n  - name: a\n    mcp:\n      backend: /agent\n      path: /mcp\nbackends:\n- name: agent\n  aws: {}\n",
    );
    assert_eq!(aws, ["config.yaml:9:3: backends[0].aws: not supported yet"]);
    let both = errors(
        "mcp:\n  targets:\n  - name: a\n    mcp:\n      backend: b\n      path: /mcp\n    policies: {}\nbackends:\n- name: b\n  host: h:1\n",
    );
    assert_eq!(
        both,
        ["config.yaml:7:5: mcp.targets[0].policies: a target that names a `backend` cannot have `policies` of its own",]
    );
}

#[test]
fn lowered_paths_lead_back_to_the_file() {
    let text = format!(
        "gateways:\n  default:\n    port: 3000\nroutes:\n- backends:\n  - backend: m\nbackends:\n- name: m\n  mcp:\n    targets:\n    - name: a\n      stdio: {{cmd: x}}\nmcp:\n  policies:\n    cors: {{}}{TARGETS}"
    );
    let loaded = load_str("config.yaml", &text).unwrap();
    let route = FieldPath::root().key("binds").index(0).key("listeners").index(0).key("routes");
    let err = |p: FieldPath| loaded.error(crate::FieldError::new(p, "x")).to_string();
    assert_eq!(err(route.index(0).key("matches")), "config.yaml:5:3: routes[0].matches: x");
    assert_eq!(
        err(route.index(0).key("backends").index(0).key("mcp").key("targets").index(0).key("name")),
        "config.yaml:11:7: backends[0].mcp.targets[0].name: x"
    );
    assert_eq!(err(route.index(1).key("policies").key("cors")), "config.yaml:15:5: mcp.policies.cors: x");
    assert_eq!(
        err(route.index(1).key("backends").index(0).key("mcp").key("targets").index(1)),
        "config.yaml:21:5: mcp.targets[1]: x"
    );
    assert_eq!(
        err(FieldPath::root().key("binds").index(0).key("listeners").index(0)),
        "config.yaml:2:3: gateways.default: x"
    );
}

#[test]
fn a_small_file_cannot_lower_into_a_huge_config() {
    let mut text = String::from("gateways:\n  g:\n    port: 1\n    listeners:\n");
    text.push_str(&"    - {}\n".repeat(1000));
    text.push_str("routes:\n");
    text.push_str(&"- gateways: g\n  backends: [{host: 'h:1'}]\n".repeat(201));
    let all = errors(&text);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].contains("routes[200]: the config grows past 200000 routes and MCP targets"), "{}", all[0]);
    // Referencing a large named backend many times counts its targets each time.
    let targets: String = (0..2000).map(|i| format!("    - {{name: t{i}, stdio: {{cmd: x}}}}\n")).collect();
    let refs = "    - backends: [{backend: big}]\n".repeat(101);
    let text = format!(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n{refs}backends:\n- name: big\n  mcp:\n    targets:\n{targets}"
    );
    let all = errors(&text);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].contains("routes[100].backends[0]: the config grows past"), "{}", all[0]);
}

/// In the `mcp:` shorthand, the remote policies' `backend:` references become the named
/// backend's `host`, as on routes.
#[test]
fn mcp_shorthand_remote_policies_name_backends() {
    let agw = "backends:\n- name: authz\n  host: 127.0.0.1:9191\n- name: rls\n  host: 127.0.0.1:8081\nmcp:\n  port: 3000\n  policies:\n    extAuthz:\n      backend: authz\n      protocol:\n        grpc: {}\n    remoteRateLimit:\n      backend: rls\n      domain: d\n      descriptors:\n      - entries:\n        - key: k\n          value: '\"v\"'\n  targets:\n  - name: a\n    mcp:\n      host: http://127.0.0.1:1/mcp\n";
    let c = lowered(agw);
    let p = c.binds[0].listeners[0].routes[0].policies.as_ref().unwrap();
    let dump = serde_json::to_value(p).unwrap();
    assert_eq!(dump["extAuthz"]["host"], "127.0.0.1:9191", "{dump}");
    assert_eq!(dump["remoteRateLimit"]["host"], "127.0.0.1:8081", "{dump}");
    assert!(dump["extAuthz"].get("backend").is_none(), "{dump}");
}
