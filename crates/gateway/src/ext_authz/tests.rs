//! Compilation, the cache, and naming MCP calls, without a service.

use super::*;
use agw_config::model::RoutePolicies;
use serde_json::json;

fn policy(value: Value) -> ExtAuthzPolicy {
    let p: RoutePolicies = serde_json::from_value(json!({"extAuthz": value})).unwrap();
    let mut errors = Vec::new();
    let r = ExtAuthzPolicy::resolve(&FieldPath::root().key("extAuthz"), p.ext_authz.as_ref().unwrap(), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    r.unwrap()
}

fn allow(tier: &str) -> Decision {
    let mut m = Map::new();
    m.insert("tier".into(), json!(tier));
    m.insert("expires".into(), json!(4_102_444_800u64));
    Decision::Allow(Allowed { metadata: Some(m), ..Allowed::default() })
}

#[test]
fn tools_are_split_from_their_target_prefix() {
    let body = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "github_create_issue", "arguments": {"t": 1}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "unknown_tool"}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]);
    let targets = vec!["github".to_string(), "jira".to_string()];
    let calls = mcp_calls(&body, &targets, true);
    assert_eq!(calls.len(), 3, "notifications are not checked one by one");
    assert_eq!((calls[0].target.as_deref(), calls[0].tool.as_deref()), (Some("github"), Some("create_issue")));
    assert_eq!(calls[0].arguments, Some(json!({"t": 1})));
    assert_eq!((calls[1].target.as_deref(), calls[1].tool.as_deref()), (None, Some("unknown_tool")));
    assert_eq!((calls[2].method.as_str(), calls[2].tool.as_deref()), ("tools/list", None));

    let one = mcp_calls(&body, &["only".to_string()], false);
    assert_eq!((one[0].target.as_deref(), one[0].tool.as_deref()), (Some("only"), Some("github_create_issue")));
}

#[test]
fn arguments_are_ascii_json_and_bounded() {
    assert_eq!(arguments_text(Some(&json!({"m": "é"}))).unwrap(), r#"{"m":"\u00e9"}"#);
    assert_eq!(arguments_text(None).unwrap(), "{}");
    assert!(arguments_text(Some(&json!({"m": "x".repeat(MAX_ARGUMENTS)}))).is_none());
}

#[tokio::test(start_paused = true)]
async fn the_cache_keeps_decisions_for_their_ttl_and_stays_bounded() {
    let p = policy(json!({"host": "h:1", "cache": {"key": ["jwt.sub"], "ttl": "10s", "maxEntries": 2}}));
    let cache = p.checks[0].cache.as_ref().unwrap();
    let who = |sub: &str| Inputs { jwt: Some(to_cel(&json!({"sub": sub}))), ..Inputs::default() };
    let key = |sub: &str| cache.key_of(&who(sub)).unwrap();
    assert!(cache.key_of(&Inputs::default()).is_none(), "no key, no caching");
    cache.put(key("a"), allow("gold"), &Inputs::default());
    assert!(cache.get(&key("a")).is_some());
    assert!(cache.get(&key("b")).is_none());
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(cache.get(&key("a")).is_none(), "expired");
    for sub in ["a", "b", "c"] {
        cache.put(key(sub), allow("gold"), &Inputs::default());
    }
    assert_eq!(cache.entries.lock().unwrap().len(), 2, "maxEntries holds");
}

#[test]
fn a_ttl_expression_may_read_the_services_metadata() {
    let p = policy(json!({"host": "h:1", "cache": {"key": ["'k'"], "ttl": "extauthz.expires - 5"}}));
    let cache = p.checks[0].cache.as_ref().unwrap();
    let with = Inputs { extauthz: Some(to_cel(&json!({"expires": 4_102_444_800u64}))), ..Inputs::default() };
    let ttl = cache.ttl(&with).unwrap();
    assert!(ttl > Duration::from_secs(86_400), "a Unix time in the future: {ttl:?}");
    let short = Inputs { extauthz: Some(to_cel(&json!({"expires": 30}))), ..Inputs::default() };
    assert_eq!(cache.ttl(&short), Some(Duration::from_secs(25)), "a small number is seconds");
    assert_eq!(cache.ttl(&Inputs::default()), None, "no value: not cached");
}

#[test]
fn the_default_headers_follow_the_protocol() {
    let (parts, _) = ::http::Request::builder()
        .method("POST")
        .uri("/mcp?x=1")
        .header("authorization", "Bearer t")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(())
        .unwrap()
        .into_parts();
    let grpc = policy(json!({"host": "h:1"}));
    let all: HashMap<String, String> = grpc.checks[0].headers_for(&parts, "gw.test", false).into_iter().collect();
    assert_eq!(all[":path"], "/mcp?x=1");
    assert_eq!(all[":authority"], "gw.test");
    assert_eq!(all["cookie"], "a=1; b=2");
    let http = policy(json!({"host": "h:1", "protocol": {"http": {}}}));
    let only = http.checks[0].headers_for(&parts, "gw.test", false);
    assert_eq!(only, vec![("authorization".to_string(), "Bearer t".to_string())]);
}

#[test]
fn a_body_over_the_limit_is_cut_only_when_allowed() {
    let big = Bytes::from(vec![b'x'; 20]);
    let strict = policy(json!({"host": "h:1", "includeRequestBody": {"maxRequestBytes": 8}}));
    assert!(strict.checks[0].body_for(Some(&big)).is_err());
    let partial =
        policy(json!({"host": "h:1", "includeRequestBody": {"maxRequestBytes": 8, "allowPartialMessage": true}}));
    assert_eq!(partial.checks[0].body_for(Some(&big)).unwrap(), Some((&big[..8], true)));
}
