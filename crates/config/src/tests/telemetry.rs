//! `frontendPolicies.accessLog` / `.tracing` and their deprecated `config:` forms.

use super::{MINIMAL, error, load_str};

#[test]
fn access_log_and_tracing_load_in_both_forms() {
    let text = format!(
        "{MINIMAL}frontendPolicies:
  accessLog:
    filter: response.code >= 400
    add:
      user: request.headers['user-agent']
    remove: [peer]
  tracing:
    host: localhost:4317
    randomSampling: 0.25
    clientSampling: true
    attributes:
      caller: jwt.sub
"
    );
    let f = load_str("config.yaml", &text).unwrap().config.frontend_policies.unwrap();
    let log = f.access_log.unwrap();
    assert_eq!(log.filter.as_deref(), Some("response.code >= 400"));
    assert_eq!(log.add["user"], "request.headers['user-agent']");
    assert_eq!(log.remove, ["peer"]);
    let t = f.tracing.unwrap();
    assert_eq!(t.random_sampling.unwrap().0, "0.25");
    assert_eq!(t.client_sampling.unwrap().0, "true");
    assert_eq!(t.host.as_deref(), Some("localhost:4317"));

    let old = format!(
        "{MINIMAL}config:
  logging:
    filter: 'true'
    fields:
      add: {{a: '1'}}
      remove: [peer]
  tracing:
    otlpEndpoint: https://collector.example:4318
    otlpProtocol: http
    headers: {{x-api-key: secret-value}}
    randomSampling: 1
    fields:
      add: {{b: '2'}}
"
    );
    let s = load_str("config.yaml", &old).unwrap().config.config.unwrap();
    let t = s.tracing.unwrap();
    assert_eq!(t.random_sampling.unwrap().0, "1.0", "an integer is a ratio");
    assert_eq!(t.headers["x-api-key"].expose(), "secret-value");
    assert_eq!(s.logging.unwrap().fields.unwrap().remove, ["peer"]);
}

#[test]
fn old_and_new_forms_together_and_bad_collectors_are_errors() {
    let both_logs = format!(
        "{MINIMAL}config:\n  logging:\n    filter: 'true'\nfrontendPolicies:\n  accessLog:\n    filter: 'true'\n"
    );
    assert!(error(&both_logs).contains("config.logging: cannot use the deprecated config.logging.filter/fields"));
    let both_traces = format!(
        "{MINIMAL}config:\n  tracing:\n    otlpEndpoint: http://c:4317\nfrontendPolicies:\n  tracing:\n    host: c:4317\n"
    );
    assert!(error(&both_traces).contains("config.tracing: cannot use the deprecated config.tracing together"));
    let alias = format!("{MINIMAL}frontendPolicies:\n  accessLog: {{}}\n  logging: {{}}\n");
    assert!(error(&alias).contains("frontendPolicies.logging: `logging` is an alias of `accessLog`"));
    let no_host = format!("{MINIMAL}frontendPolicies:\n  tracing:\n    randomSampling: true\n");
    assert!(error(&no_host).contains("frontendPolicies.tracing.host: required"));
    let url = format!("{MINIMAL}frontendPolicies:\n  tracing:\n    host: http://c:4317\n");
    assert!(error(&url).contains("frontendPolicies.tracing.host: host:port"));
    for key in ["backend: otel", "resources: {a: b}", "service: {name: a, port: 1}", "policies: {}"] {
        let text = format!("{MINIMAL}frontendPolicies:\n  tracing:\n    host: c:1\n    {key}\n");
        let name = key.split(':').next().unwrap();
        assert!(error(&text).ends_with(&format!("frontendPolicies.tracing.{name}: not supported yet")), "{key}");
    }
}

#[test]
fn collector_headers_are_redacted_in_dumps() {
    let text = format!(
        "{MINIMAL}config:\n  tracing:\n    otlpEndpoint: http://c:4317\n    headers: {{authorization: Bearer planted-token}}\n"
    );
    let loaded = load_str("config.yaml", &text).unwrap();
    let dump = serde_json::to_string(&loaded.config).unwrap();
    assert!(!dump.contains("planted-token"), "{dump}");
}

#[test]
fn access_log_otlp_loads_and_checks_its_collector() {
    let text = format!(
        "{MINIMAL}frontendPolicies:\n  accessLog:\n    otlp:\n      host: localhost:4317\n      protocol: http\n      path: /v1/logs\n      filter: 'true'\n      fields:\n        add: {{a: '1'}}\n"
    );
    let f = load_str("config.yaml", &text).unwrap().config.frontend_policies.unwrap();
    let o = f.access_log.unwrap().otlp.unwrap();
    assert_eq!(o.host.as_deref(), Some("localhost:4317"));
    assert_eq!(o.fields.unwrap().add["a"], "1");
    let no_host = format!("{MINIMAL}frontendPolicies:\n  accessLog:\n    otlp:\n      filter: 'true'\n");
    assert!(error(&no_host).contains("frontendPolicies.accessLog.otlp.host: required"));
    let backend = format!("{MINIMAL}frontendPolicies:\n  accessLog:\n    otlp:\n      backend: collector\n");
    assert!(error(&backend).ends_with("frontendPolicies.accessLog.otlp.backend: not supported yet"));
    let path = format!("{MINIMAL}frontendPolicies:\n  accessLog:\n    otlp:\n      host: c:1\n      path: v1/logs\n");
    assert!(error(&path).contains("frontendPolicies.accessLog.otlp.path: a path starting with /"));
}
