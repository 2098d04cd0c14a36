//! `remoteRateLimit`: both forms, a named backend as the service, and the mistakes.

use super::{MINIMAL, errors, load_str};

fn with_policy(yaml: &str) -> String {
    MINIMAL.replace("    - backends:", &format!("    - policies:\n        remoteRateLimit:\n{yaml}      backends:"))
}

const ENTRY: &str =
    "          domain: d\n          descriptors:\n          - entries:\n            - {key: k, value: request.path}\n";

#[test]
fn the_single_form_loads_and_a_backend_reference_becomes_its_host() {
    let text = format!(
        "{}backends:\n- name: rls\n  host: 127.0.0.1:8081\n",
        with_policy(&format!("          backend: rls\n          failureMode: failOpen\n{ENTRY}"))
    );
    let loaded = load_str("config.yaml", &text).unwrap();
    let p = loaded.config.binds[0].listeners[0].routes[0].policies.clone().unwrap();
    let r = p.remote_rate_limit.unwrap();
    assert_eq!(r.host.as_deref(), Some("127.0.0.1:8081"));
    assert_eq!(r.backend, None);
    assert_eq!(r.failure_mode, Some(crate::model::RemoteFailureMode::FailOpen));
}

#[test]
fn mistakes_are_located() {
    let all = errors(&with_policy(
        "          domain: ''\n          descriptors: []\n          service: {name: x, port: 1}\n",
    ));
    let text = all.join("\n");
    assert!(text.contains("remoteRateLimit.service: not supported yet"), "{text}");
    assert!(text.contains("remoteRateLimit.domain: missing"), "{text}");
    assert!(text.contains("remoteRateLimit.descriptors: needs at least one descriptor"), "{text}");

    let all = errors(&with_policy(&format!("          host: nowhere\n{ENTRY}")));
    assert!(all.join("\n").contains("remoteRateLimit.host: `nowhere` is not `host:port`"), "{all:?}");

    let all = errors(&with_policy(
        "          host: h:1\n          domain: d\n          descriptors:\n          - entries: []\n            type: tokens\n",
    ));
    let text = all.join("\n");
    assert!(text.contains("descriptors[0].type: not supported yet"), "{text}");
    assert!(text.contains("descriptors[0].entries: needs at least one entry"), "{text}");
}

#[test]
fn the_conditional_form_has_its_rules() {
    let entry =
        |cond: &str| format!("          - {cond}host: h:1\n  {}", ENTRY.replace("\n          ", "\n            "));
    let ok = format!("          conditional:\n{}{}", entry("condition: 'true'\n            "), entry(""));
    load_str("config.yaml", &with_policy(&ok)).unwrap();

    let fallback_first = format!("          conditional:\n{}{}", entry(""), entry("condition: 'true'\n            "));
    let all = errors(&with_policy(&fallback_first));
    assert!(
        all.join("\n").contains("conditional[0]: an entry without a condition is the fallback and must be last"),
        "{all:?}"
    );

    let mixed = format!("          domain: d\n          conditional:\n{}", entry(""));
    let all = errors(&with_policy(&mixed));
    assert!(all.join("\n").contains("with `conditional`, put the settings in its entries"), "{all:?}");
}

fn with_authz(yaml: &str) -> String {
    MINIMAL.replace("    - backends:", &format!("    - policies:\n        extAuthz:\n{yaml}      backends:"))
}

#[test]
fn ext_authz_loads_at_route_and_listener_level_and_its_mistakes_are_located() {
    let route = with_authz(
        "          host: 127.0.0.1:9000\n          failureMode:\n            denyWithStatus: 503\n          protocol:\n            http:\n              path: '\"/check\"'\n              addRequestHeaders:\n                ':method': '\"POST\"'\n              includeResponseHeaders: [x-user]\n",
    );
    load_str("config.yaml", &route).unwrap();
    let listener = MINIMAL.replace(
        "  - routes:",
        "  - policies:\n      extAuthz:\n        host: 127.0.0.1:9000\n        includeMcpArguments: true\n    routes:",
    );
    let loaded = load_str("config.yaml", &listener).unwrap();
    let p = loaded.config.binds[0].listeners[0].policies.clone().unwrap();
    assert_eq!(p.ext_authz.unwrap().include_mcp_arguments, Some(true));

    let all = errors(&with_authz("          host: unix:/run/x.sock\n"));
    assert!(all.join("\n").contains("extAuthz.host: not supported yet"), "{all:?}");
    let all = errors(&with_authz(
        "          host: h:1\n          includeRequestBody:\n            maxRequestBytes: 99999999\n          cache:\n            key: []\n            ttl: 10s\n          protocol:\n            http:\n              addRequestHeaders:\n                'bad header': '\"x\"'\n",
    ));
    let text = all.join("\n");
    assert!(text.contains("includeRequestBody.maxRequestBytes: at most"), "{text}");
    assert!(text.contains("cache.key: needs at least one expression"), "{text}");
    assert!(text.contains("addRequestHeaders.bad header: not a header name"), "{text}");
    let all = errors(&with_authz(
        "          conditional:\n          - host: h:1\n          - condition: 'true'\n            host: h:1\n",
    ));
    assert!(all.join("\n").contains("must be last"), "{all:?}");
}
