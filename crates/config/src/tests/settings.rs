//! `config:`: every key agentgateway has is implemented or refused by name, never unknown.

use super::{MINIMAL, error};
use crate::load_str;
use crate::model::{LogLevel, Settings, WorkerThreads};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Every key of agentgateway's `RawConfig` (commit 75b4e6c), with a value of its type, and
/// whether this gateway implements it.
fn agentgateway_keys() -> Vec<(&'static str, String, bool)> {
    vec![
        ("enableIpv6", "false".into(), true),
        ("dns", "{lookupFamily: V4Only}".into(), false),
        ("localXdsPath", "./xds.yaml".into(), false),
        ("modelCatalog", "[]".into(), false),
        ("database", "{url: 'postgres://db/x'}".into(), false),
        ("storage", "{mode: readOnly}".into(), false),
        ("caAddress", "https://ca:15012".into(), false),
        ("caAuthToken", "./token".into(), false),
        ("xdsAddress", "https://xds:15010".into(), false),
        ("xdsAuthToken", "./token".into(), false),
        ("spiffe", "{endpoint: 'unix:///run/spire/agent.sock'}".into(), false),
        ("namespace", "default".into(), false),
        ("gateway", "gw".into(), false),
        ("trustDomain", "cluster.local".into(), false),
        ("additionalTrustDomains", "a.local,b.local".into(), false),
        ("skipValidateTrustDomain", "true".into(), false),
        ("serviceAccount", "sa".into(), false),
        ("clusterId", "Kubernetes".into(), false),
        ("network", "net1".into(), false),
        ("adminAddr", "localhost:15000".into(), true),
        ("standardAttributes", "{user: jwt.sub}".into(), false),
        ("statsAddr", "0.0.0.0:15020".into(), true),
        ("histograms", "classic".into(), true),
        ("readinessAddr", "0.0.0.0:15021".into(), true),
        ("session", format!("{{key: {KEY}}}"), true),
        ("mcp", "{sessionTtl: 10m}".into(), true),
        ("sensitiveHeaders", "[x-token]".into(), false),
        ("customFunctions", "'isInternal() { true }'".into(), false),
        ("connectionTerminationDeadline", "5s".into(), true),
        ("connectionMinTerminationDeadline", "1s".into(), false),
        ("workerThreads", "auto".into(), true),
        ("tracing", "{otlpEndpoint: 'http://collector:4317', otlpProtocol: grpc, path: /v1/traces}".into(), true),
        ("logging", "{level: [info, 'agw_mcp=debug'], format: json}".into(), true),
        ("metrics", "{remove: [x]}".into(), false),
        ("backend", "{connectTimeout: 5s}".into(), false),
        ("hbone", "{windowSize: 65535}".into(), false),
    ]
}

fn with_setting(key: &str, value: &str) -> String {
    format!("{MINIMAL}config:\n  {key}: {value}\n")
}

#[test]
fn every_agentgateway_config_key_is_implemented_or_refused_by_name() {
    for (key, value, implemented) in agentgateway_keys() {
        let text = with_setting(key, &value);
        match load_str("config.yaml", &text) {
            Ok(_) => assert!(implemented, "config.{key} was accepted but is not implemented"),
            Err(_) => {
                assert!(!implemented, "config.{key} was refused: {}", error(&text));
                assert_eq!(error(&text), format!("config.yaml:12:3: config.{key}: not supported yet"));
            }
        }
    }
    let nested = [
        ("logging", "{database: {url: 'postgres://db/x'}}", "config.logging.database: not supported yet"),
        (
            "tracing",
            "{otlpEndpoint: 'http://c:4317', headers: {'a b': c}}",
            "config.tracing.headers.a b: not a valid HTTP header name",
        ),
        (
            "tracing",
            "{otlpEndpoint: 'http://c:4317', randomSampling: [1]}",
            "config.tracing.randomSampling: expected true, false, a number",
        ),
        ("enableIpv6", "true", "config.enableIpv6: not supported yet: this gateway listens on IPv4 only"),
        ("histograms", "native", "config.histograms: not supported yet"),
        ("histograms", "both", "config.histograms: not supported yet"),
        ("listener", "{}", "config.listener: `listener` has been removed; move to `frontendPolicies`"),
    ];
    for (key, value, want) in nested {
        let got = error(&with_setting(key, value));
        assert!(got.contains(want), "{key}: {value}: {got}");
    }
    assert!(error(&with_setting("bogus", "1")).contains("unknown field `bogus`"));
}

#[test]
fn the_schema_describes_every_agentgateway_config_key() {
    let schema = crate::json_schema();
    let settings = &schema["$defs"]["Settings"]["properties"];
    for (key, _, _) in agentgateway_keys() {
        assert!(settings.get(key).is_some(), "config.{key} is missing from the schema");
    }
    assert!(settings.get("listener").is_none(), "a removed key is not advertised");
    let logging = &schema["$defs"]["Logging"]["properties"];
    for key in ["filter", "fields", "level", "format", "database"] {
        assert!(logging.get(key).is_some(), "config.logging.{key} is missing from the schema");
    }
}

#[test]
fn worker_threads_are_a_number_a_share_of_the_cpus_or_auto() {
    let parse = |v: &str| -> WorkerThreads {
        let loaded = load_str("config.yaml", &format!("config:\n  workerThreads: {v}\n")).unwrap();
        loaded.config.config.unwrap().worker_threads.unwrap()
    };
    assert_eq!(parse("4"), WorkerThreads::Count(4));
    assert_eq!(parse("'4'"), WorkerThreads::Count(4));
    assert_eq!(parse("auto"), WorkerThreads::Auto);
    assert_eq!(parse("'50%'"), WorkerThreads::Percent(50.0));
    assert_eq!(parse("4").threads(16), 4);
    assert_eq!(parse("auto").threads(6), 6);
    // A share is rounded up, and never 0.
    assert_eq!(parse("'50%'").threads(3), 2);
    assert_eq!(parse("'10%'").threads(1), 1);
    assert_eq!(parse("'100%'").threads(8), 8);
    assert_eq!(serde_json::to_value(parse("'25%'")).unwrap(), "25%");
    assert_eq!(serde_json::to_value(parse("4")).unwrap(), 4);

    let bad = |v: &str| error(&format!("config:\n  workerThreads: {v}\n"));
    assert!(bad("0").ends_with("config.workerThreads: between 1 and 1024"));
    assert!(bad("1025").ends_with("config.workerThreads: between 1 and 1024"));
    assert!(bad("-2").contains("at least 1"));
    assert!(bad("'0%'").contains("more than 0% and at most 100%"));
    assert!(bad("'101%'").contains("more than 0% and at most 100%"));
    assert!(bad("'many'").contains("is not a number of threads"));
    assert!(bad("2.5").contains("wrong type"));
    assert!(Settings::worker_count(None) >= 1);
}

#[test]
fn the_log_level_is_a_filter_or_a_list_of_directives() {
    let level = |v: &str| -> LogLevel {
        let loaded = load_str("config.yaml", &format!("config:\n  logging:\n    level: {v}\n")).unwrap();
        loaded.config.config.unwrap().logging.unwrap().level.unwrap()
    };
    assert_eq!(level("debug").filter(), "debug");
    assert_eq!(level("'info,agw_mcp=debug'").filter(), "info,agw_mcp=debug");
    assert_eq!(level("[info, 'rmcp=debug', 'agw_mcp=trace']").filter(), "info,rmcp=debug,agw_mcp=trace");
    // Empty means the default, as in agentgateway.
    assert_eq!(level("''").filter(), "info");
    assert_eq!(level("[]").filter(), "info");
    // The dump shows it as written.
    assert_eq!(serde_json::to_value(level("[info, 'rmcp=debug']")).unwrap(), serde_json::json!(["info", "rmcp=debug"]));
    let err = error("config:\n  logging:\n    level: [info, 3]\n");
    assert!(err.contains("config.logging.level"), "{err}");
}
