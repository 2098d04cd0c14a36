//! The JSON-RPC envelope (`Body::parse`, `Message::param_str`) and the authorization checks
//! on what it parsed (`police`, `screen`), plus the answer side (`may_need_filtering`, `filter_all`).
//! A client's request body and an upstream's answer both arrive as untrusted bytes.

use std::sync::OnceLock;

use agw_config::model::{AuditMode, Rule};
use agw_gateway::authz::McpAuthorizer;
use agw_mcp::authz::{self, Authorizer, Item, ItemKind, Verdict};
use agw_mcp::jsonrpc::{Body, ErrorObject, Kind, Message, code, error_response};
use agw_policy::rules::{Rules, Vars, to_cel};
use serde_json::Value;

use crate::jwt::{EXAMPLE1, NOW, tutorial_validator};

/// The tutorial's `mcpAuthorization` rules, plus rules on arguments, prompts and resources so
/// that every kind of item and the three-valued listing logic are exercised.
fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        Rules::compile(&[
            Rule::Allow(r#"mcp.tool.name == "echo""#.into()),
            Rule::Allow(r#"jwt.sub == "test-user" && mcp.tool.name == "add""#.into()),
            Rule::Allow(r#"mcp.tool.name == "printEnv" && jwt.nested.key == "value""#.into()),
            Rule::Allow(r#"mcp.tool.name == "get-env" && mcp.tool.arguments.name == "HOME""#.into()),
            Rule::Deny(r#"mcp.tool.name == "add" && mcp.tool.arguments.a > 100"#.into()),
            Rule::Allow(r#"mcp.prompt.name == "greeting""#.into()),
            Rule::Allow(r#"mcp.resource.name.startsWith("file:///public/")"#.into()),
        ])
        .expect("fuzz rules compile")
    })
}

/// The authorizer one request of the tutorial's user gets (claims of `example1.key`).
fn authorizer() -> std::sync::Arc<McpAuthorizer> {
    static CLAIMS: OnceLock<Value> = OnceLock::new();
    let claims = CLAIMS.get_or_init(|| {
        let claims = tutorial_validator().validate(EXAMPLE1.trim(), NOW).expect("tutorial token");
        Value::Object(claims.map().clone())
    });
    let vars = Vars { jwt: Some(to_cel(claims)), ..Vars::default() };
    McpAuthorizer::new(rules(), vars, "test-user".into(), AuditMode::Off, None)
}

const TARGET: &str = "mcp";

/// Input: a request body, also read as an upstream's answer.
///
/// Invariants: a message's kind agrees with its fields; `param_str` reads the same name as
/// the full parse the checks use; a policed call that is allowed names an item the rules allow
/// and that a listing would show; a refusal answers the message's id with a JSON-RPC error;
/// an error response echoes the id; an answer the quick look passes (`Ok(false)`) is left
/// unchanged by the filter, and filtering is idempotent.
pub fn jsonrpc(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let authz = authorizer();
    if let Ok(body) = Body::parse(&text) {
        assert!(!body.messages.is_empty());
        assert!(body.batch || body.messages.len() == 1);
        for msg in &body.messages {
            check_message(msg, authz.as_ref());
        }
    }
    check_answer(text.as_bytes(), authz.as_ref());
}

fn check_message(msg: &Message<'_>, authz: &dyn Authorizer) {
    match msg.kind {
        Kind::Request => assert!(msg.method.is_some() && msg.id.is_some_and(|id| id.get() != "null")),
        Kind::Notification => assert!(msg.method.is_some() && msg.id.is_none()),
        Kind::Response => assert!(msg.method.is_none() && (msg.result.is_some() || msg.error.is_some())),
    }
    if let Some(id) = msg.id {
        // The id is echoed byte for byte: the answer is JSON a strict parser reads exactly when
        // the id is (JSON's grammar allows a lone surrogate escape such as `"\ud800"`;
        // serde_json refuses to read it into a `Value`: AFL found such ids).
        let error = ErrorObject { code: code::INTERNAL_ERROR, message: "x".into(), data: None };
        let answer = serde_json::from_slice::<Value>(&error_response(Some(id), &error));
        match serde_json::from_str::<Value>(id.get()) {
            Ok(id) => assert_eq!(answer.expect("an error response is JSON")["id"], id),
            Err(_) => assert!(answer.is_err(), "an id serde_json cannot read became readable"),
        }
    }
    let name = msg.param_str("name");
    let uri = msg.param_str("uri");
    // The checks see the message as a full parse does (the relay forwards its own encoding
    // of it); a message serde_json cannot hold as a Value (a lone surrogate) is refused there.
    let Ok(value) = serde_json::from_str::<Value>(msg.raw.get()) else { return };
    let params = value.get("params");
    assert_eq!(name.as_deref(), params.and_then(|p| p.get("name")).and_then(Value::as_str), "param_str(name)");
    assert_eq!(uri.as_deref(), params.and_then(|p| p.get("uri")).and_then(Value::as_str), "param_str(uri)");
    let screened = authz::screen(&value);
    let verdict = authz::police(&value, TARGET, authz);
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    match &verdict {
        Verdict::Allow => {
            assert!(screened.is_none(), "screen refused what police allowed");
            check_allowed(&value, authz);
        }
        Verdict::Deny(answer) | Verdict::Hidden(answer) => {
            assert_eq!(answer["jsonrpc"], "2.0");
            assert_eq!(answer["id"], id, "the refusal answers the message's id");
            assert!(answer["error"]["code"].is_i64());
            if let Some(s) = screened {
                assert!(matches!(verdict, Verdict::Deny(_)));
                assert_eq!(&s, answer);
            }
        }
    }
}

/// An allowed policed call: the rules allow its item, and a listing shows it.
fn check_allowed(value: &Value, authz: &dyn Authorizer) {
    let method = value.get("method").and_then(Value::as_str).unwrap_or_default();
    let params = value.get("params");
    let (kind, name, method) = match method {
        "tools/call" => (ItemKind::Tool, params.and_then(|p| p.get("name")), "tools/list"),
        "prompts/get" => (ItemKind::Prompt, params.and_then(|p| p.get("name")), "prompts/list"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            (ItemKind::Resource, params.and_then(|p| p.get("uri")), "resources/list")
        }
        _ => return,
    };
    let name = name.and_then(Value::as_str).expect("an allowed call names its item with a string");
    let item = Item { method, kind, name, target: TARGET, arguments: None };
    assert!(authz.lists(&item), "{name:?} may be called but would not be listed");
}

fn check_answer(bytes: &[u8], authz: &dyn Authorizer) {
    let quick = authz::may_need_filtering(bytes);
    let Ok(mut answer) = serde_json::from_slice::<Value>(bytes) else { return };
    let changed = authz::filter_all(&mut answer, TARGET, authz);
    // The relay forwards an answer unread when the quick look says `Ok(false)`, and refuses one
    // it says `Err` about (two `result` keys, say, which a full parse would take the last of:
    // AFL found one), so only `Ok(false)` must mean "nothing to filter".
    if quick == Ok(false) {
        assert!(!changed, "the filter removed items from an answer the quick look passed");
    }
    assert!(!authz::filter_all(&mut answer, TARGET, authz), "filtering twice changes more");
}
