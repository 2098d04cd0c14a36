//! The relay's plug point for authorization: which tools, prompts and resources a caller may
//! use (calls) and see (lists). The gateway implements [`Authorizer`] with CEL rules; the
//! relay decides where to ask and how to answer.
//!
//! A denied call gets the same error as a call to something that does not exist, so callers
//! cannot probe which tools exist.

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::jsonrpc::{self, ErrorObject, Message, code};

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
}

/// A list method whose answer is filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    pub fn of(method: &str) -> Option<ListKind> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::ResourceTemplates,
            _ => return None,
        })
    }

    /// The result field holding the items, and the item field naming each.
    fn fields(self) -> (&'static str, &'static str, ItemKind, &'static str) {
        match self {
            ListKind::Tools => ("tools", "name", ItemKind::Tool, "tools/list"),
            ListKind::Prompts => ("prompts", "name", ItemKind::Prompt, "prompts/list"),
            ListKind::Resources => ("resources", "uri", ItemKind::Resource, "resources/list"),
            ListKind::ResourceTemplates => {
                ("resourceTemplates", "uriTemplate", ItemKind::ResourceTemplate, "resources/templates/list")
            }
        }
    }
}

/// Removes the items the caller may not see from a list response (other fields, such as
/// `nextCursor`, stay). Returns whether anything changed.
pub fn filter_list(response: &mut Value, kind: ListKind, target: &str, authz: &dyn Authorizer) -> bool {
    let (list_field, name_field, item_kind, method) = kind.fields();
    let Some(items) = response.get_mut("result").and_then(|r| r.get_mut(list_field)).and_then(Value::as_array_mut)
    else {
        return false;
    };
    let before = items.len();
    items.retain(|item| match item.get(name_field).and_then(Value::as_str) {
        Some(name) => authz.lists(&Item { method, kind: item_kind, name, target, arguments: None }),
        // An item without a name cannot be matched by any rule: not shown.
        None => false,
    });
    items.len() != before
}

/// A call the caller may not make, answered like a call to something missing.
pub fn denied_call(msg: &Message<'_>, target: &str, authz: &dyn Authorizer) -> Option<Bytes> {
    let method = msg.method()?;
    let (kind, field) = match method {
        "tools/call" => (ItemKind::Tool, "name"),
        "prompts/get" => (ItemKind::Prompt, "name"),
        "resources/read" | "resources/subscribe" => (ItemKind::Resource, "uri"),
        _ => return None,
    };
    let params: Value = msg.params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or(Value::Null);
    // No name: the upstream answers the malformed request itself.
    let name = params.get(field).and_then(Value::as_str)?;
    let no_args = Value::Object(Default::default());
    let arguments = match kind {
        ItemKind::Tool => Some(params.get("arguments").unwrap_or(&no_args)),
        _ => None,
    };
    if authz.allows(&Item { method, kind, name, target, arguments }) {
        return None;
    }
    let error = match kind {
        ItemKind::Tool => {
            ErrorObject { code: code::INVALID_PARAMS, message: format!("Unknown tool: {name}"), data: None }
        }
        ItemKind::Prompt => {
            ErrorObject { code: code::INVALID_PARAMS, message: format!("Unknown prompt: {name}"), data: None }
        }
        ItemKind::Resource | ItemKind::ResourceTemplate => ErrorObject {
            code: code::RESOURCE_NOT_FOUND,
            message: "Resource not found".into(),
            data: Some(serde_json::json!({ "uri": name })),
        },
    };
    Some(jsonrpc::error_response(msg.id, &error))
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

/// The ids of requests by list kind, parsed for comparison with response ids.
pub type ListRequests = Vec<(Value, ListKind)>;

/// If `msg` is the response to one of `lists`, which kind.
pub fn list_kind_of(response: &Value, lists: &ListRequests) -> Option<ListKind> {
    let id = response.get("id")?;
    lists.iter().find(|(i, _)| i == id).map(|(_, k)| *k)
}

pub(crate) fn raw_id(id: &RawValue) -> Option<Value> {
    serde_json::from_str(id.get()).ok()
}
