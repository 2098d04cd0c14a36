//! Token buckets on tokio's paused clock: nothing here waits for real time.

use super::*;
use agw_config::model::{Config, RoutePolicies};

fn limits(yaml: &str) -> RateLimits {
    let value: serde_json::Value = serde_json::from_str(yaml).unwrap();
    let p: RoutePolicies = serde_json::from_value(json!({"localRateLimit": value})).unwrap();
    let mut errors = Vec::new();
    let l = RateLimits::resolve(
        &FieldPath::root().key("localRateLimit"),
        p.local_rate_limit.as_ref().unwrap(),
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    let _ = Config::default();
    l.unwrap()
}

fn jwt(sub: &str) -> Inputs {
    Inputs { jwt: Some(to_cel(&json!({"sub": sub}))), ..Inputs::default() }
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_cut_at_max_tokens_and_refills_per_interval() {
    let l = limits(r#"[{"maxTokens": 3, "tokensPerFill": 2, "fillInterval": "10s"}]"#);
    let none = Inputs::default();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        remaining.push(l.check(&none, None, Instant::now()).unwrap().unwrap().remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let over = l.check(&none, None, Instant::now()).unwrap_err();
    assert_eq!(over.limit, "localRateLimit[0]");
    assert_eq!(over.status.reset, 10, "the next fill is 10 s away");
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(l.check(&none, None, Instant::now()).unwrap_err().status.reset, 6);
    tokio::time::advance(Duration::from_secs(6)).await;
    // One fill: 2 tokens, not 3.
    assert!(l.check(&none, None, Instant::now()).is_ok());
    assert!(l.check(&none, None, Instant::now()).is_ok());
    assert!(l.check(&none, None, Instant::now()).is_err());
    // A long pause fills up to maxTokens, no further.
    tokio::time::advance(Duration::from_secs(3600)).await;
    for _ in 0..3 {
        assert!(l.check(&none, None, Instant::now()).is_ok());
    }
    assert!(l.check(&none, None, Instant::now()).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_key_gives_each_caller_a_bucket() {
    let l = limits(r#"[{"maxTokens": 1, "tokensPerFill": 1, "fillInterval": "1h", "key": "jwt.sub"}]"#);
    assert!(l.check(&jwt("alice"), None, Instant::now()).is_ok());
    let e = l.check(&jwt("alice"), None, Instant::now()).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("jwt.sub"));
    assert!(l.check(&jwt("bob"), None, Instant::now()).is_ok(), "bob has his own bucket");
    // No key value (anonymous): not counted by this limit.
    assert!(l.check(&Inputs::default(), None, Instant::now()).is_ok());
    assert!(l.check(&Inputs::default(), None, Instant::now()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_batch_counts_each_request_all_or_nothing() {
    let l = limits(r#"[{"maxTokens": 3, "tokensPerFill": 1, "fillInterval": "1h", "key": "mcp.tool.name"}]"#);
    let call =
        |id: u64, tool: &str| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool}});
    let batch =
        json!([call(1, "echo"), call(2, "echo"), {"jsonrpc": "2.0", "method": "notifications/x"}, call(3, "add")]);
    let m = Messages::of(&batch);
    assert_eq!(m.requests.len(), 3, "notifications are not requests");
    assert!(l.check(&Inputs::default(), Some(&m), Instant::now()).is_ok());
    // echo has 1 left: a batch asking for 2 is refused whole, and takes nothing.
    let two = json!([call(4, "echo"), call(5, "echo")]);
    assert!(l.check(&Inputs::default(), Some(&Messages::of(&two)), Instant::now()).is_err());
    let one = call(6, "echo");
    assert!(l.check(&Inputs::default(), Some(&Messages::of(&one)), Instant::now()).is_ok());
    assert!(l.check(&Inputs::default(), Some(&Messages::of(&one)), Instant::now()).is_err());
    // Other tools and other methods are unaffected.
    assert!(l.check(&Inputs::default(), Some(&Messages::of(&call(7, "add"))), Instant::now()).is_ok());
    let list = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"});
    for _ in 0..5 {
        assert!(l.check(&Inputs::default(), Some(&Messages::of(&list)), Instant::now()).is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn the_conditional_form_applies_the_first_matching_entry() {
    let l = limits(
        r#"{"conditional": [
            {"condition": "jwt.sub == 'vip'", "maxTokens": 3, "tokensPerFill": 1, "fillInterval": "1h"},
            {"maxTokens": 1, "tokensPerFill": 1, "fillInterval": "1h"}
        ]}"#,
    );
    for _ in 0..3 {
        assert!(l.check(&jwt("vip"), None, Instant::now()).is_ok());
    }
    assert_eq!(l.check(&jwt("vip"), None, Instant::now()).unwrap_err().limit, "localRateLimit.conditional[0]");
    assert!(l.check(&jwt("other"), None, Instant::now()).is_ok());
    assert_eq!(l.check(&jwt("other"), None, Instant::now()).unwrap_err().limit, "localRateLimit.conditional[1]");
}

#[test]
fn keyed_buckets_are_bounded() {
    let spec = Spec { max: 2, per_fill: 1, interval: Duration::from_secs(3600) };
    let now = Instant::now();
    let mut map: HashMap<String, Bucket> =
        (0..MAX_KEYS).map(|i| (i.to_string(), Bucket { tokens: 1, last: now })).collect();
    map.insert("0".into(), Bucket { tokens: 1, last: now - Duration::from_secs(10) });
    make_room(&mut map, spec, now);
    assert_eq!(map.len(), MAX_KEYS - 1, "the least recently filled bucket made room");
    assert!(!map.contains_key("0"));
}

#[test]
fn headers_follow_the_ietf_draft_and_agentgateway() {
    let s = Status { limit: 10, remaining: 0, reset: 42, window: 60, scope: "local" };
    let mut h = HeaderMap::new();
    s.write_refusal_headers(&mut h);
    assert_eq!(h["ratelimit-policy"], "\"local\";q=10;w=60");
    assert_eq!(h["ratelimit"], "\"local\";r=0;t=42");
    assert_eq!(h["retry-after"], "42");
    assert_eq!(h["x-ratelimit-limit"], "10");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert_eq!(h["x-ratelimit-reset"], "42");
}

#[tokio::test(start_paused = true)]
async fn a_huge_fill_interval_saturates_instead_of_overflowing() {
    // Years of interval: the wait is reported, nothing overflows.
    let l = limits(r#"[{"maxTokens": 1, "tokensPerFill": 1, "fillInterval": "2562047h"}]"#);
    assert!(l.check(&Inputs::default(), None, Instant::now()).is_ok());
    let e = l.check(&Inputs::default(), None, Instant::now()).unwrap_err();
    assert!(e.status.reset > 9_000_000_000, "{}", e.status.reset);
}
