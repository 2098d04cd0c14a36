//! `mcpGuardrails`: agentgateway's shape, `backend:` references, and the mistakes.

use super::{MINIMAL, errors, load_str};
use crate::model::{GuardrailPhase, RemoteFailureMode};

fn with_policy(yaml: &str) -> String {
    MINIMAL.replace("    - backends:", &format!("    - policies:\n        mcpGuardrails:\n{yaml}      backends:"))
}

const PROCESSOR: &str = "          processors:\n          - kind: remote\n            methods: {\"tools/call\": request, \"*/list\": response, \"tools/*\": full, \"*\": 'off'}\n";

#[test]
fn agentgateways_shape_loads_and_a_backend_reference_becomes_its_host() {
    let text = format!(
        "{}backends:\n- name: guard\n  host: 127.0.0.1:9999\n",
        with_policy(&format!(
            "{PROCESSOR}            backend: guard\n            failureMode: failOpen\n            metadata: {{tenant: 'jwt.sub'}}\n            requestHeaders:\n              allowed: [x-tenant, ':authority']\n              disallowed: [authorization]\n          - kind: remote\n            methods: {{\"tools/call\": full}}\n            host: 127.0.0.1:9998\n"
        ))
    );
    let loaded = load_str("config.yaml", &text).unwrap();
    let p = loaded.config.binds[0].listeners[0].routes[0].policies.clone().unwrap();
    let g = p.mcp_guardrails.unwrap();
    let first = &g.processors[0];
    assert_eq!((first.host.as_deref(), first.backend.as_deref()), (Some("127.0.0.1:9999"), None));
    assert_eq!(first.failure_mode, Some(RemoteFailureMode::FailOpen));
    assert_eq!(first.phase("tools/call"), GuardrailPhase::Request);
    assert_eq!(first.phase("tools/list"), GuardrailPhase::Full);
    assert_eq!(first.phase("prompts/list"), GuardrailPhase::Response);
    assert_eq!(first.phase("ping"), GuardrailPhase::Off);
    assert_eq!(g.processors[1].failure_mode, None, "failClosed by default");
}

#[test]
fn mistakes_are_located() {
    let text = errors(&with_policy(&format!(
        "{PROCESSOR}            host: nowhere\n            policies:\n              backendTLS: {{}}\n            requestHeaders:\n              allowed: ['bad header', ':status']\n"
    )))
    .join("\n");
    assert!(text.contains("mcpGuardrails.processors[0].host: `nowhere` is not `host:port`"), "{text}");
    assert!(text.contains("mcpGuardrails.processors[0].policies: not supported yet"), "{text}");
    assert!(text.contains("requestHeaders.allowed[0]: not a header name"), "{text}");
    assert!(text.contains("requestHeaders.allowed[1]: not a header name"), "{text}");

    let text = errors(&with_policy(PROCESSOR)).join("\n");
    assert!(text.contains("processors[0]: needs the guardrail service"), "{text}");

    let text =
        errors(&with_policy("          processors:\n          - kind: local\n            host: h:1\n")).join("\n");
    assert!(text.contains("kind"), "{text}");

    let on_target = MINIMAL.replace(
        "            mcp:\n",
        "            policies:\n              mcpGuardrails:\n                processors: []\n            mcp:\n",
    );
    let text = errors(&on_target).join("\n");
    assert!(text.contains("mcpGuardrails: not on an MCP target"), "{text}");
}

#[test]
fn the_mcp_shorthand_carries_it_to_the_route_with_its_service_named() {
    let text = "mcp:\n  port: 3000\n  policies:\n    mcpGuardrails:\n      processors:\n      - kind: remote\n        backend: guard\n        methods: {tools/call: full}\n  targets:\n  - name: a\n    mcp:\n      host: http://localhost:3001/mcp\nbackends:\n- name: guard\n  host: localhost:9300\n";
    let loaded = load_str("config.yaml", text).unwrap();
    let route = &loaded.config.binds[0].listeners[0].routes[0];
    let g = route.policies.as_ref().and_then(|p| p.mcp_guardrails.as_ref()).unwrap();
    assert_eq!(g.processors[0].host.as_deref(), Some("localhost:9300"));
}
