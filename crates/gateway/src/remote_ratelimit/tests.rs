//! Descriptor building and answer handling, without a service.

use super::*;
use agw_config::model::RoutePolicies;
use serde_json::json;

fn limits(value: Value) -> RemoteRateLimits {
    let p: RoutePolicies = serde_json::from_value(json!({"remoteRateLimit": value})).unwrap();
    let mut errors = Vec::new();
    let r = RemoteRateLimits::resolve(
        &FieldPath::root().key("remoteRateLimit"),
        p.remote_rate_limit.as_ref().unwrap(),
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    r.unwrap()
}

fn request(method: &str, path: &str, sub: Option<&str>) -> Inputs {
    Inputs {
        request: Some(to_cel(&json!({"method": method, "path": path, "headers": {}}))),
        jwt: sub.map(|s| to_cel(&json!({"sub": s}))),
        ..Inputs::default()
    }
}

fn entries(d: &RateLimitDescriptor) -> Vec<(&str, &str)> {
    d.entries.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect()
}

#[test]
fn descriptors_carry_the_evaluated_values_in_order() {
    let l = limits(json!({
        "host": "127.0.0.1:8081", "domain": "agentgateway",
        "descriptors": [
            {"entries": [{"key": "method", "value": "request.method"}, {"key": "path", "value": "request.path"}],
             "type": "requests"},
            {"entries": [{"key": "user", "value": "jwt.sub"}], "cost": "3"},
        ],
    }));
    let check = l.selected(&Inputs::default()).unwrap();
    let r = check.request(&request("GET", "/a", Some("alice")), None).unwrap();
    assert_eq!(r.domain, "agentgateway");
    assert_eq!(r.descriptors.len(), 2);
    assert_eq!(entries(&r.descriptors[0]), [("method", "GET"), ("path", "/a")]);
    assert_eq!(r.descriptors[0].hits_addend, None, "the default cost leaves the service's default (1)");
    assert_eq!(entries(&r.descriptors[1]), [("user", "alice")]);
    assert_eq!(r.descriptors[1].hits_addend, Some(UInt64Value { value: 3 }));
}

#[test]
fn a_descriptor_that_cannot_be_evaluated_is_left_out_and_none_left_means_no_call() {
    let l = limits(json!({
        "host": "127.0.0.1:8081", "domain": "d",
        "descriptors": [
            {"entries": [{"key": "user", "value": "jwt.sub"}]},
            {"entries": [{"key": "path", "value": "request.path"}]},
        ],
    }));
    let check = l.selected(&Inputs::default()).unwrap();
    let r = check.request(&request("GET", "/a", None), None).unwrap();
    assert_eq!(r.descriptors.len(), 1, "no JWT: the `user` descriptor is dropped");
    assert_eq!(entries(&r.descriptors[0]), [("path", "/a")]);
    assert!(check.request(&Inputs::default(), None).is_none(), "nothing to send: the service is not asked");
}

#[test]
fn numbers_and_booleans_are_sent_as_text_objects_are_not() {
    let l = limits(json!({
        "host": "h:1", "domain": "d",
        "descriptors": [
            {"entries": [{"key": "n", "value": "1 + 2"}, {"key": "b", "value": "true"}]},
            {"entries": [{"key": "o", "value": "{'a': 1}"}]},
        ],
    }));
    let r = l.selected(&Inputs::default()).unwrap().request(&Inputs::default(), None).unwrap();
    assert_eq!(r.descriptors.len(), 1);
    assert_eq!(entries(&r.descriptors[0]), [("n", "3"), ("b", "true")]);
}

#[test]
fn limit_override_and_cost_are_evaluated_and_a_bad_one_drops_the_descriptor() {
    let l = limits(json!({
        "host": "h:1", "domain": "d",
        "descriptors": [
            {"entries": [{"key": "k", "value": "'a'"}],
             "limitOverride": "{'unit': 'minute', 'requestsPerUnit': 100}"},
            {"entries": [{"key": "k", "value": "'b'"}], "limitOverride": "{'unit': 'fortnight', 'requestsPerUnit': 1}"},
            {"entries": [{"key": "k", "value": "'c'"}], "cost": "'many'"},
        ],
    }));
    let r = l.selected(&Inputs::default()).unwrap().request(&Inputs::default(), None).unwrap();
    assert_eq!(r.descriptors.len(), 1);
    assert_eq!(r.descriptors[0].limit, Some(RateLimitOverride { requests_per_unit: 100, unit: unit::MINUTE }));
}

#[test]
fn the_conditional_form_picks_the_first_entry_whose_condition_holds() {
    let l = limits(json!({"conditional": [
        {"condition": "request.method == 'POST'", "host": "h:1", "domain": "posts",
         "descriptors": [{"entries": [{"key": "k", "value": "'p'"}]}]},
        {"host": "h:1", "domain": "rest", "descriptors": [{"entries": [{"key": "k", "value": "'r'"}]}]},
    ]}));
    assert_eq!(l.selected(&request("POST", "/", None)).unwrap().domain, "posts");
    assert_eq!(l.selected(&request("GET", "/", None)).unwrap().domain, "rest");
    assert_eq!(l.selected(&request("GET", "/", None)).unwrap().name, "remoteRateLimit.conditional[1]");
}

#[test]
fn mcp_descriptors_count_each_jsonrpc_request_and_merge_equal_ones() {
    let l = limits(json!({
        "host": "h:1", "domain": "tools",
        "descriptors": [{"entries": [{"key": "tool", "value": "mcp.tool.name"}]}],
    }));
    assert!(l.per_message());
    let body = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add"}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo"}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]);
    let m = Messages::of(&body);
    let r = l.selected(&Inputs::default()).unwrap().request(&Inputs::default(), Some(&m)).unwrap();
    let got: Vec<(Vec<(&str, &str)>, u64)> =
        r.descriptors.iter().map(|d| (entries(d), d.hits_addend.map_or(1, |h| h.value))).collect();
    assert_eq!(got, [(vec![("tool", "echo")], 2), (vec![("tool", "add")], 1)], "tools/list has no tool: not counted");
}

fn status(limit: u32, remaining: u32, reset: i64) -> DescriptorStatus {
    DescriptorStatus {
        code: code::OK,
        current_limit: Some(crate::envoy::ratelimit::RateLimit {
            name: String::new(),
            requests_per_unit: limit,
            unit: unit::MINUTE,
        }),
        limit_remaining: remaining,
        duration_until_reset: Some(crate::envoy::Duration { seconds: reset, nanos: 0 }),
    }
}

fn one_check() -> RemoteRateLimits {
    limits(json!({"host": "h:1", "domain": "d", "descriptors": [{"entries": [{"key": "k", "value": "'v'"}]}]}))
}

#[test]
fn an_ok_answer_adds_its_headers_and_the_tightest_limits_state() {
    let l = one_check();
    let answer = RateLimitResponse {
        overall_code: code::OK,
        statuses: vec![status(100, 40, 30), status(10, 3, 12)],
        response_headers_to_add: vec![crate::envoy::HeaderValue::new("x-from-rls", "yes")],
        request_headers_to_add: vec![crate::envoy::HeaderValue::new("x-upstream", "1")],
        raw_body: Vec::new(),
    };
    let allowed = l.checks[0].apply(answer, None, false).allowed();
    assert_eq!(allowed.request_headers.len(), 1);
    let h = &allowed.response_headers;
    assert_eq!(h["x-ratelimit-limit"], "10");
    assert_eq!(h["x-ratelimit-remaining"], "3");
    assert_eq!(h["x-ratelimit-reset"], "12");
    assert_eq!(h["ratelimit-policy"], "\"remote\";q=10;w=60");
    assert_eq!(h["x-from-rls"], "yes");
}

#[test]
fn over_limit_is_a_429_with_the_services_headers_and_body() {
    let l = one_check();
    let answer = RateLimitResponse {
        overall_code: code::OVER_LIMIT,
        statuses: vec![status(5, 0, 7)],
        response_headers_to_add: vec![crate::envoy::HeaderValue::new("x-why", "quota")],
        request_headers_to_add: Vec::new(),
        raw_body: b"slow down".to_vec(),
    };
    let resp = l.checks[0].apply(answer, None, false).refused();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["x-why"], "quota");
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
}

#[test]
fn over_limit_on_counted_mcp_requests_is_a_jsonrpc_error_per_request() {
    let l = limits(json!({
        "host": "h:1", "domain": "tools",
        "descriptors": [{"entries": [{"key": "tool", "value": "mcp.tool.name"}]}],
    }));
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo"}});
    let m = Messages::of(&body);
    let answer =
        RateLimitResponse { overall_code: code::OVER_LIMIT, statuses: vec![status(5, 0, 9)], ..Default::default() };
    let resp = l.checks[0].apply(answer, Some(&m), false).refused();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["retry-after"], "9");
}

impl Answer {
    fn allowed(self) -> Allowed {
        match self {
            Answer::Allowed(a) => a,
            Answer::Refused(r) => panic!("refused: {}", r.status()),
        }
    }

    fn refused(self) -> Response<Body> {
        match self {
            Answer::Refused(r) => r,
            Answer::Allowed(_) => panic!("allowed"),
        }
    }
}
