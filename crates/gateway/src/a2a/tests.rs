use super::*;

#[test]
fn calls_are_read_for_method_task_and_context() {
    let v1 = br#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","taskId":"t1","contextId":"c1","role":"ROLE_USER","parts":[]}}}"#;
    assert_eq!(
        A2aCall::of(v1),
        Some(A2aCall { method: "SendMessage".into(), task_id: Some("t1".into()), context_id: Some("c1".into()) })
    );
    let get = br#"{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"id":"t9"}}"#;
    assert_eq!(A2aCall::of(get).unwrap().task_id.as_deref(), Some("t9"));
    let v1_get = br#"{"jsonrpc":"2.0","id":2,"method":"GetTask","params":{"id":"t8"}}"#;
    assert_eq!(A2aCall::of(v1_get).unwrap().task_id.as_deref(), Some("t8"));
    let first = br#"{"jsonrpc":"2.0","id":3,"method":"message/send","params":{"message":{"messageId":"m"}}}"#;
    assert_eq!(A2aCall::of(first).unwrap(), A2aCall { method: "message/send".into(), task_id: None, context_id: None });
    assert_eq!(A2aCall::of(b"not json"), None);
    assert_eq!(A2aCall::of(br#"{"id": 1}"#), None);
    let long = format!(r#"{{"method":"{}"}}"#, "x".repeat(10_000));
    assert_eq!(A2aCall::of(long.as_bytes()).unwrap().method.len(), 256);
}

#[test]
fn v1_interfaces_and_v03_urls_are_rewritten_below_the_agent_base() {
    let mut card = json!({
        "name": "agent",
        "supportedInterfaces": [
            {"url": "http://localhost:41241/", "protocolBinding": "JSONRPC"},
            {"url": "http://localhost:41241/rest/v1", "protocolBinding": "HTTP+JSON"},
        ],
        "url": "http://10.0.0.5:9999/",
        "additionalInterfaces": [{"url": "http://10.0.0.5:9999/grpc", "transport": "GRPC"}],
    });
    assert_eq!(rewrite_card(&mut card, "https://gw.example/agents/a", "").unwrap(), 4);
    assert_eq!(card["supportedInterfaces"][0]["url"], "https://gw.example/agents/a/");
    assert_eq!(card["supportedInterfaces"][1]["url"], "https://gw.example/agents/a/rest/v1");
    assert_eq!(card["url"], "https://gw.example/agents/a/");
    assert_eq!(card["additionalInterfaces"][0]["url"], "https://gw.example/agents/a/grpc");

    // The upstream serves the agent under /weather: its URLs are kept relative to that,
    // on segment boundaries only.
    let mut card =
        json!({"url": "http://up/weather/rpc", "additionalInterfaces": [{"url": "http://up/weather-v2/rpc"}]});
    rewrite_card(&mut card, "http://gw:3000/weather", "/weather").unwrap();
    assert_eq!(card["url"], "http://gw:3000/weather/rpc");
    assert_eq!(card["additionalInterfaces"][0]["url"], "http://gw:3000/weather/weather-v2/rpc");

    assert!(rewrite_card(&mut json!({"name": "no url"}), "http://gw", "").is_err());
    assert!(rewrite_card(&mut json!([1]), "http://gw", "").is_err());
}

#[test]
fn requests_are_classified() {
    let parts =
        |method: Method, path: &str| http::Request::builder().method(method).uri(path).body(()).unwrap().into_parts().0;
    match classify(&parts(Method::GET, "/agents/a/.well-known/agent-card.json"), "http://gw:3000") {
        Kind::Card { public_base, agent_path } => {
            assert_eq!((public_base.as_str(), agent_path.as_str()), ("http://gw:3000/agents/a", "/agents/a"));
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(classify(&parts(Method::GET, "/.well-known/agent.json"), "http://gw"), Kind::Card { .. }));
    assert!(matches!(classify(&parts(Method::POST, "/"), "http://gw"), Kind::Call));
    assert!(matches!(classify(&parts(Method::GET, "/tasks"), "http://gw"), Kind::Other));
}
