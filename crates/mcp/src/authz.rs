//! The relay's plug point for authorization: which tools, prompts and resources a caller may
//! use (calls) and see (lists). The gateway implements [`Authorizer`] with CEL rules; the
//! relay decides where to ask and how to answer.
//!
//! Enforcement fails closed. With an authorizer, every message is parsed in full and the
//! upstream gets the gateway's own encoding of what was checked (no parser differential);
//! a policed message whose name cannot be read, or whose keys are ambiguous under case folding
//! (some JSON decoders match keys case-insensitively), is refused; every answer that carries a
//! list is filtered by its shape, whatever its id, on every stream. A denied call gets the same
//! error as a call to something that does not exist, so callers cannot probe what exists
//! (an authorizer can also refuse a call it lets exist with an error of its own: tool pinning,
//! see [`crate::guard`]).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::apps::{self, Edit};
use crate::jsonrpc::{ErrorObject, code};

/// What a rule is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Tool,
    Prompt,
    Resource,
    ResourceTemplate,
}

/// One tool, prompt or resource, as a rule sees it.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// The MCP method: `tools/call`, `tools/list`, …
    pub method: &'a str,
    pub kind: ItemKind,
    /// Tool or prompt name, resource URI, or URI template, as the upstream knows it.
    pub name: &'a str,
    pub target: &'a str,
    /// A tool call's arguments (`None` while listing: unknown).
    pub arguments: Option<&'a Value>,
}

pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// May the caller use this item (a call)?
    fn allows(&self, item: &Item<'_>) -> bool;
    /// Should this item be listed? (Arguments are unknown: listed if some could be allowed.)
    fn lists(&self, item: &Item<'_>) -> bool;
    /// Could the caller read this resource? Asked about the UI resource (MCP Apps) that a
    /// tool or a tool result names, so that a host is never pointed at a resource it may not
    /// read. Not a decision on a request (implementations need not audit it).
    fn would_allow(&self, item: &Item<'_>) -> bool {
        self.lists(item)
    }
    /// Should this listed item be shown? `listed` is the item as the upstream listed it (a
    /// tool's definition, for pinning). By default, as [`Authorizer::lists`] says.
    fn shows(&self, item: &Item<'_>, listed: &Value) -> bool {
        let _ = listed;
        self.lists(item)
    }
    /// A refusal the caller is told about, asked of a call [`Authorizer::allows`] let
    /// through (e.g. a tool whose definition changed since it was pinned). By default none.
    fn refuses(&self, item: &Item<'_>) -> Option<ErrorObject> {
        let _ = item;
        None
    }
    /// `target` said its tool list changed (`notifications/tools/list_changed`).
    fn list_changed(&self, target: &str) {
        let _ = target;
    }
}

/// Tells `authz` about a `notifications/tools/list_changed` from `target` in `msg` (one message).
pub fn notice(msg: &Value, target: &str, authz: &dyn Authorizer) {
    if msg.get("method").and_then(Value::as_str) == Some(LIST_CHANGED) {
        authz.list_changed(target);
    }
}

/// The notification an upstream sends when its tools change.
pub const LIST_CHANGED: &str = "notifications/tools/list_changed";

/// A list in a result: the field holding the items, the field naming each, their kind and
/// the method that lists them.
const LISTS: [(&str, &str, ItemKind, &str); 4] = [
    ("tools", "name", ItemKind::Tool, "tools/list"),
    ("prompts", "name", ItemKind::Prompt, "prompts/list"),
    ("resources", "uri", ItemKind::Resource, "resources/list"),
    ("resourceTemplates", "uriTemplate", ItemKind::ResourceTemplate, "resources/templates/list"),
];

/// Methods whose items are policed, and where the item's name is.
fn policed(method: &str) -> Option<(ItemKind, &'static str)> {
    Some(match method {
        "tools/call" => (ItemKind::Tool, "name"),
        "prompts/get" => (ItemKind::Prompt, "name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => (ItemKind::Resource, "uri"),
        _ => return None,
    })
}

/// Every method the gateway knows the exact spelling of.
const KNOWN_METHODS: [&str; 11] = [
    "tools/call",
    "tools/list",
    "prompts/get",
    "prompts/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/list",
    "resources/templates/list",
    "completion/complete",
    "initialize",
];

/// Case folding as lenient JSON decoders do it (Go's `EqualFold`: ASCII case, `ſ`≈`s`,
/// the Kelvin sign ≈ `k`).
fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).map(|c| if c == 'ſ' { 's' } else { c }).collect()
}

/// Whether `a` and `b` are equal under [`fold`], without building the folded strings.
fn folded_eq(a: &str, b: &str) -> bool {
    let folded =
        |s: &str| s.chars().flat_map(char::to_lowercase).map(|c| if c == 'ſ' { 's' } else { c }).collect::<Vec<_>>();
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    folded(a) == folded(b)
}

/// Keys of `obj` that another key equals under case folding.
fn ambiguous_keys(obj: &Map<String, Value>) -> bool {
    // Messages have a handful of keys: comparing pairs beats hashing folded copies.
    if obj.len() <= 16 {
        return obj.keys().enumerate().any(|(i, a)| obj.keys().skip(i + 1).any(|b| folded_eq(a, b)));
    }
    let mut seen = std::collections::HashSet::new();
    obj.keys().any(|k| !seen.insert(fold(k)))
}

/// What to do with one client message.
#[derive(Debug)]
pub enum Verdict {
    /// Forward it.
    Allow,
    /// Do not forward it: it cannot be checked. Requests get this answer (notifications get
    /// none).
    Deny(Value),
    /// Do not forward it: the rules hide the item. Requests get this answer, the same as for
    /// an item that does not exist.
    Hidden(Value),
}

/// Is `method` one whose messages name a tool, prompt or resource the rules decide on?
pub fn is_policed(method: &str) -> bool {
    policed(method).is_some() || method == "completion/complete"
}

/// The checks that do not depend on the target: keys ambiguous under case folding, a known
/// method spelled in another case, a policed method whose `params` is not an object.
/// Returns the answer for a refused message.
pub fn screen(msg: &Value) -> Option<Value> {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let obj = msg.as_object()?;
    if ambiguous_keys(obj) {
        return Some(error(&id, code::INVALID_REQUEST, "message has keys that differ only in case".into(), None));
    }
    let method = obj.get("method").and_then(Value::as_str)?;
    if !KNOWN_METHODS.contains(&method) && KNOWN_METHODS.iter().any(|k| fold(k) == fold(method)) {
        return Some(error(&id, code::METHOD_NOT_FOUND, format!("Method not found: {method}"), None));
    }
    if !is_policed(method) {
        return None;
    }
    let invalid = |why: &str| Some(error(&id, code::INVALID_PARAMS, format!("Invalid params: {why}"), None));
    match obj.get("params") {
        Some(Value::Object(params)) if ambiguous_keys(params) => invalid("keys that differ only in case"),
        Some(Value::Object(_)) => None,
        _ => invalid("`params` must be an object"),
    }
}

fn error(id: &Value, code: i64, message: String, data: Option<Value>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": ErrorObject { code, message, data }})
}

/// The answer to a call of something missing (or hidden).
pub fn unknown(kind: ItemKind, name: &str, id: &Value) -> Value {
    match kind {
        ItemKind::Tool => error(id, code::INVALID_PARAMS, format!("Unknown tool: {name}"), None),
        ItemKind::Prompt => error(id, code::INVALID_PARAMS, format!("Unknown prompt: {name}"), None),
        ItemKind::Resource | ItemKind::ResourceTemplate => {
            error(id, code::RESOURCE_NOT_FOUND, "Resource not found".into(), Some(json!({"uri": name})))
        }
    }
}

/// Checks one parsed client message against the rules. `target` is the upstream target the
/// message goes to; names are the upstream's (unprefixed).
pub fn police(msg: &Value, target: &str, authz: &dyn Authorizer) -> Verdict {
    if let Some(refused) = screen(msg) {
        return Verdict::Deny(refused);
    }
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = msg.get("method").and_then(Value::as_str) else { return Verdict::Allow };
    let params = msg.get("params");
    if method == "completion/complete" {
        return police_completion(params, &id, target, authz);
    }
    let Some((kind, field)) = policed(method) else { return Verdict::Allow };
    let invalid = |why: &str| Verdict::Deny(error(&id, code::INVALID_PARAMS, format!("Invalid params: {why}"), None));
    let Some(params) = params.and_then(Value::as_object) else { return invalid("`params` must be an object") };
    let Some(name) = params.get(field).and_then(Value::as_str) else {
        return invalid(&format!("`{field}` must be a string"));
    };
    let no_args = Value::Object(Map::new());
    let arguments = match kind {
        ItemKind::Tool => match params.get("arguments") {
            None => Some(&no_args),
            Some(a @ Value::Object(o)) if !ambiguous_keys(o) => Some(a),
            Some(Value::Object(_)) => return invalid("arguments with keys that differ only in case"),
            Some(_) => return invalid("`arguments` must be an object"),
        },
        _ => None,
    };
    let item = Item { method, kind, name, target, arguments };
    if !authz.allows(&item) {
        return Verdict::Hidden(unknown(kind, name, &id));
    }
    match authz.refuses(&item) {
        Some(refusal) => Verdict::Deny(error(&id, refusal.code, refusal.message, refusal.data)),
        None => Verdict::Allow,
    }
}

/// `completion/complete` names a prompt or a resource; completing a hidden one is refused
/// like getting it.
fn police_completion(params: Option<&Value>, id: &Value, target: &str, authz: &dyn Authorizer) -> Verdict {
    let r = params.and_then(|p| p.get("ref"));
    let (kind, field, method) = match r.and_then(|r| r.get("type")).and_then(Value::as_str) {
        Some("ref/prompt") => (ItemKind::Prompt, "name", "prompts/get"),
        Some("ref/resource") => (ItemKind::Resource, "uri", "resources/read"),
        _ => return Verdict::Deny(error(id, code::INVALID_PARAMS, "Invalid params: unknown `ref` type".into(), None)),
    };
    let Some(name) = r.and_then(|r| r.get(field)).and_then(Value::as_str) else {
        return Verdict::Deny(error(
            id,
            code::INVALID_PARAMS,
            format!("Invalid params: `ref.{field}` must be a string"),
            None,
        ));
    };
    if authz.allows(&Item { method, kind, name, target, arguments: None }) {
        Verdict::Allow
    } else {
        Verdict::Hidden(unknown(kind, name, id))
    }
}

/// Removes the items the caller may not see from any list in a response's `result` (other
/// fields, such as `nextCursor`, stay), and the UI resource URIs (MCP Apps) the caller could not
/// read from the tools left and from the result's own `_meta` (a tool call's result). Returns
/// whether anything changed.
pub fn filter_result(response: &mut Value, target: &str, authz: &dyn Authorizer) -> bool {
    let mut changed = filter_lists(response, target, authz);
    if let Some(result) = response.get_mut("result") {
        let readable = |uri: &str| {
            let item = Item { method: "resources/read", kind: ItemKind::Resource, name: uri, target, arguments: None };
            if authz.would_allow(&item) { Edit::Keep } else { Edit::Remove }
        };
        if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
            for tool in tools {
                changed |= apps::edit_meta_uris(tool, readable);
            }
        }
        changed |= apps::edit_meta_uris(result, readable);
    }
    changed
}

fn filter_lists(response: &mut Value, target: &str, authz: &dyn Authorizer) -> bool {
    let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) else { return false };
    let mut changed = false;
    for (list_field, name_field, kind, method) in LISTS {
        let Some(items) = result.get_mut(list_field).and_then(Value::as_array_mut) else { continue };
        let before = items.len();
        items.retain(|item| match item.get(name_field).and_then(Value::as_str) {
            Some(name) => authz.shows(&Item { method, kind, name, target, arguments: None }, item),
            // An item without a name cannot be matched by any rule: not shown.
            None => false,
        });
        changed |= items.len() != before;
    }
    changed
}

/// Whether an answer (one message or a batch) may need filtering: whether some message's
/// `result` has a list field, or a `_meta` with a UI link key (`ui`, `ui/resourceUri`). Keys
/// are read as JSON strings (escapes resolved), values are only skipped, so this costs a
/// fraction of a full parse; when it says no, there is nothing a filter would change. An
/// answer that is not JSON is an error.
pub fn may_need_filtering(answer: &[u8]) -> Result<bool, String> {
    use serde::Deserialize;
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;

    /// Which keys of an object matter: a `result`'s (list fields, and `_meta` looked into),
    /// or a `_meta`'s (the UI link keys). A value that is not an object has none.
    #[derive(Clone, Copy)]
    enum Look {
        Result,
        Meta,
    }
    impl<'de> DeserializeSeed<'de> for Look {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Look {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                match self {
                    Look::Result if key == "_meta" => found |= map.next_value_seed(Look::Meta)?,
                    Look::Result => {
                        found |= LISTS.iter().any(|(field, ..)| *field == key);
                        map.next_value::<IgnoredAny>()?;
                    }
                    Look::Meta => {
                        found |= apps::META_KEYS.contains(&key.as_ref());
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(false)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    /// `result`: whether it has something to filter.
    struct ResultKeys(bool);
    impl<'de> Deserialize<'de> for ResultKeys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Look::Result.deserialize(d).map(ResultKeys)
        }
    }
    #[derive(Deserialize)]
    struct Msg {
        #[serde(default)]
        result: Option<ResultKeys>,
    }
    let holds = |m: &Msg| m.result.as_ref().is_some_and(|r| r.0);
    let bad = |e: serde_json::Error| format!("answer cannot be checked: {e}");
    if answer.trim_ascii_start().first() == Some(&b'[') {
        let all: Vec<Msg> = serde_json::from_slice(answer).map_err(bad)?;
        Ok(all.iter().any(holds))
    } else {
        let one: Msg = serde_json::from_slice(answer).map_err(bad)?;
        Ok(holds(&one))
    }
}

/// Filters every message of a parsed answer (one message or a batch).
pub fn filter_all(answer: &mut Value, target: &str, authz: &dyn Authorizer) -> bool {
    match answer {
        Value::Array(items) => items.iter_mut().fold(false, |changed, m| filter_result(m, target, authz) | changed),
        one => filter_result(one, target, authz),
    }
}

/// Raw JSON values joined as a JSON array.
pub fn join_array<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = vec![b'['];
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allows only the tool `echo` (and lists only it).
    #[derive(Debug)]
    struct EchoOnly;
    impl Authorizer for EchoOnly {
        fn allows(&self, item: &Item<'_>) -> bool {
            item.name == "echo"
        }
        fn lists(&self, item: &Item<'_>) -> bool {
            item.name == "echo"
        }
    }

    fn verdict(msg: Value) -> Option<i64> {
        match police(&msg, "t", &EchoOnly) {
            Verdict::Allow => None,
            Verdict::Deny(answer) | Verdict::Hidden(answer) => Some(answer["error"]["code"].as_i64().unwrap()),
        }
    }

    #[test]
    fn calls_that_cannot_be_read_are_refused() {
        let call = |params: Value| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
        assert_eq!(verdict(call(json!({"name": "echo"}))), None);
        assert_eq!(verdict(call(json!({"name": "get-env"}))), Some(-32602));
        assert_eq!(verdict(call(json!({"name": ["get-env"]}))), Some(-32602), "non-string name");
        assert_eq!(verdict(call(json!({}))), Some(-32602), "no name");
        assert_eq!(verdict(call(json!("get-env"))), Some(-32602), "params not an object");
        assert_eq!(verdict(call(json!({"name": "echo", "NAME": "get-env"}))), Some(-32602), "case-variant keys");
        assert_eq!(verdict(call(json!({"name": "echo", "arguments": {"path": "/ok", "PATH": "/etc"}}))), Some(-32602));
        assert_eq!(verdict(call(json!({"name": "echo", "arguments": "x"}))), Some(-32602));
        let top =
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "METHOD": "tools/call", "params": {"name": "get-env"}});
        assert_eq!(verdict(top), Some(-32600));
        let folded = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "ſame": 1, "same": 2}});
        assert_eq!(verdict(folded), Some(-32602), "ſ folds to s");
        let spelled = json!({"jsonrpc": "2.0", "id": 1, "method": "Tools/Call", "params": {"name": "get-env"}});
        assert_eq!(verdict(spelled), Some(-32601), "a known method in another case");
        let note = json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "get-env"}});
        assert_eq!(verdict(note), Some(-32602), "a notification is checked like a request");
    }

    #[test]
    fn case_folded_duplicates_are_found_by_both_paths() {
        let reference = |m: &Map<String, Value>| {
            let mut seen = std::collections::HashSet::new();
            m.keys().any(|k| !seen.insert(fold(k)))
        };
        let cases: [&[&str]; 7] = [
            &["name", "arguments"],
            &["name", "NAME"],
            &["ſame", "same"],
            &["\u{212a}ey", "key"],
            &["İ", "i"],
            &["straße", "STRASSE"],
            &["a", "b", "c", "A"],
        ];
        for keys in cases {
            for padding in [0, 20] {
                let mut m: Map<String, Value> = keys.iter().map(|k| (k.to_string(), Value::Null)).collect();
                for i in 0..padding {
                    m.insert(format!("pad{i}"), Value::Null);
                }
                assert_eq!(ambiguous_keys(&m), reference(&m), "{keys:?} with {padding} more keys");
            }
        }
        let kelvin: Map<String, Value> =
            [("\u{212a}ey".to_string(), Value::Null), ("key".into(), Value::Null)].into_iter().collect();
        assert!(ambiguous_keys(&kelvin), "the Kelvin sign folds to k");
    }

    #[test]
    fn completions_of_hidden_items_are_refused() {
        let c = |r: Value| json!({"jsonrpc": "2.0", "id": 1, "method": "completion/complete", "params": {"ref": r, "argument": {"name": "a", "value": ""}}});
        assert_eq!(verdict(c(json!({"type": "ref/prompt", "name": "secret"}))), Some(-32602));
        assert_eq!(verdict(c(json!({"type": "ref/resource", "uri": "file:///x"}))), Some(-32002));
        assert_eq!(verdict(c(json!({"type": "ref/other"}))), Some(-32602));
    }

    #[test]
    fn a_quick_look_finds_every_list_a_filter_would_see() {
        let yes = |s: &str| may_need_filtering(s.as_bytes()).unwrap();
        assert!(yes(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#));
        assert!(yes(r#"{"jsonrpc":"2.0","id":1,"result":{"t\u006fols":[]}}"#), "escaped keys");
        assert!(yes(
            r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{"resourceTemplates":[]}}]"#
        ));
        assert!(!yes(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"tools"}]}}"#));
        assert!(yes(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"ui":{}}}}"#), "a result's UI link");
        assert!(yes(r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{"a":1,"ui/resourceUri":"x"}}}"#));
        assert!(yes(r#"{"jsonrpc":"2.0","id":1,"result":{"_m\u0065ta":{"\u0075i":1}}}"#), "escaped");
        assert!(yes(r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{},"_meta":{"ui":1}}}"#), "a second _meta");
        assert!(!yes(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"progressToken":1}}}"#));
        assert!(!yes(r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":"ui"}}"#), "a _meta that is no object");
        assert!(!yes(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"_meta":{"ui":{}}}]}}"#), "deeper: not ours");
        assert!(!yes(r#"{"jsonrpc":"2.0","id":1,"result":"tools"}"#), "a result that is not an object");
        assert!(!yes(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#));
        assert!(may_need_filtering(br#"{"result":{},"result":{"tools":[]}}"#).is_err(), "two results: refused");
        assert!(may_need_filtering(b"<html>").is_err());
        assert!(may_need_filtering(br#"{"result":{"\ud800":1}}"#).is_err(), "a key that is not a string");
    }

    /// Allows the tools `echo` and `show` and the resource `ui://echo/app.html`; checks that UI
    /// resources are asked about as reads of target `t`.
    #[derive(Debug)]
    struct AppsRules;
    impl Authorizer for AppsRules {
        fn allows(&self, item: &Item<'_>) -> bool {
            match item.kind {
                ItemKind::Tool => ["echo", "show"].contains(&item.name),
                _ => item.name == "ui://echo/app.html",
            }
        }
        fn lists(&self, item: &Item<'_>) -> bool {
            self.allows(item)
        }
        fn would_allow(&self, item: &Item<'_>) -> bool {
            assert_eq!((item.method, item.kind, item.target), ("resources/read", ItemKind::Resource, "t"));
            self.allows(item)
        }
    }

    #[test]
    fn ui_resources_the_caller_cannot_read_are_not_named() {
        let meta =
            |uri: &str| json!({"ui": {"resourceUri": uri, "visibility": ["model", "app"]}, "ui/resourceUri": uri});
        let mut answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "echo", "_meta": meta("ui://echo/app.html")},
            {"name": "show", "_meta": meta("ui://secret/app.html")},
            {"name": "admin", "_meta": meta("ui://echo/app.html")}
        ]}});
        assert!(filter_all(&mut answer, "t", &AppsRules));
        assert_eq!(
            answer["result"]["tools"],
            json!([
                {"name": "echo", "_meta": meta("ui://echo/app.html")},
                {"name": "show", "_meta": {"ui": {"visibility": ["model", "app"]}}}
            ]),
            "a hidden tool goes with its metadata; a visible one loses only the link it cannot follow"
        );
        let mut call = json!({"jsonrpc": "2.0", "id": 2, "result": {"content": [], "_meta": {"ui/resourceUri": "ui://secret/app.html"}}});
        assert!(filter_all(&mut call, "t", &AppsRules));
        assert_eq!(call["result"], json!({"content": []}), "a tool result's link too");
        let mut fine =
            json!({"jsonrpc": "2.0", "id": 3, "result": {"content": [], "_meta": meta("ui://echo/app.html")}});
        assert!(!filter_all(&mut fine, "t", &AppsRules));
        assert!(!filter_all(&mut answer, "t", &AppsRules), "filtering twice changes nothing");
    }

    #[test]
    fn lists_are_filtered_by_shape_whatever_the_id() {
        let mut answer = json!([
            {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "echo"}, {"name": "get-env"}, {"title": "nameless"}], "nextCursor": "c"}},
            {"jsonrpc": "2.0", "id": "whatever", "result": {"prompts": [{"name": "secret"}], "resources": [{"uri": "echo"}]}},
            {"jsonrpc": "2.0", "id": 3, "result": {"content": []}}
        ]);
        assert!(filter_all(&mut answer, "t", &EchoOnly));
        assert_eq!(answer[0]["result"], json!({"tools": [{"name": "echo"}], "nextCursor": "c"}));
        assert_eq!(answer[1]["result"], json!({"prompts": [], "resources": [{"uri": "echo"}]}));
        assert_eq!(answer[2]["result"], json!({"content": []}));
    }
}
