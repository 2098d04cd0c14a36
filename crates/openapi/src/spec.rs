//! Reading an OpenAPI 3.0 or 3.1 document (JSON or YAML) into operations: for each, the tool
//! an agent sees (name, description, input schema, annotations) and what the call needs (method,
//! path template, where each argument goes). The document is read as plain JSON, not through a
//! typed model, so that 3.1's JSON Schema (type lists, `const`, …) passes through unchanged.
//! Local `$ref`s are resolved with bounds on depth and size; a cycle becomes an open schema.

use std::collections::{BTreeMap, HashSet};

use http::Method;
use serde_json::{Map, Value, json};

/// Largest spec read.
pub const MAX_SPEC_BYTES: usize = 8 << 20;
/// Deepest chain of `$ref`s followed inside one schema.
const MAX_REF_DEPTH: usize = 32;
/// Most JSON nodes the resolved schemas of one spec may have (a small spec can reference the
/// same schema from many places).
const MAX_NODES: usize = 2_000_000;
/// Most operations (tools) per spec.
pub const MAX_OPERATIONS: usize = 2_000;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum In {
    Path,
    Query,
    Header,
}

impl In {
    pub fn key(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
        }
    }
}

/// How the request body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` (or `…+json`): the `body` argument as JSON.
    Json,
    /// `application/octet-stream`: the `body` argument is base64.
    Binary,
}

/// One operation of the spec.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The tool's name: the `operationId`, else `<method>_<path>` (e.g. `get_pets_petId`).
    pub name: String,
    pub method: Method,
    /// The path template, e.g. `/pets/{petId}`.
    pub path: String,
    /// Declared parameters by location and name.
    pub params: BTreeMap<(In, String), ()>,
    pub body: Option<BodyKind>,
    /// The MCP tool definition (`name`, `description`, `inputSchema`, `annotations`, `title`).
    pub tool: Value,
}

/// A spec read.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The first server's path (`/api/v3`), or empty.
    pub base_path: String,
    pub operations: Vec<Operation>,
}

/// Reads `text` (JSON or YAML).
pub fn parse(text: &str) -> Result<Spec, String> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(format!("the spec is over {} MiB", MAX_SPEC_BYTES >> 20));
    }
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        agw_config::source::Source::parse(text)
            .map_err(|e| format!("not valid YAML (line {}, column {}): {}", e.pos.line, e.pos.col, e.message))?
            .to_value()
    };
    from_value(&doc)
}

/// Reads a parsed document.
pub fn from_value(doc: &Value) -> Result<Spec, String> {
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or_default();
    if !version.starts_with("3.") {
        return Err(match doc.get("swagger") {
            Some(_) => "Swagger 2.0 is not supported: convert the spec to OpenAPI 3".into(),
            None => "not an OpenAPI 3 document (no `openapi: 3.x` field)".into(),
        });
    }
    let mut resolver = Resolver { doc, nodes: 0 };
    let mut operations = Vec::new();
    let mut names = HashSet::new();
    let paths = doc.get("paths").and_then(Value::as_object).ok_or("the spec has no `paths`")?;
    for (path, item) in paths {
        // A path is appended to the service's address: one that does not start with `/` could
        // change the host (`.evil.example/x`, `@evil.example/x`).
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(format!("path `{path}` must start with `/` and have no query or fragment"));
        }
        let item = resolver.deref(item, 0)?;
        let Some(item) = item.as_object() else { continue };
        let shared = item.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
        for method in METHODS {
            let Some(op) = item.get(method).and_then(Value::as_object) else { continue };
            if operations.len() >= MAX_OPERATIONS {
                return Err(format!("more than {MAX_OPERATIONS} operations"));
            }
            let mut name = tool_name(op.get("operationId").and_then(Value::as_str), method, path);
            if !names.insert(name.clone()) {
                let mut n = 2;
                while !names.insert(format!("{name}_{n}")) {
                    n += 1;
                }
                name = format!("{name}_{n}");
            }
            let own = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
            operations.push(resolver.operation(name, method, path, op, &shared, &own)?);
        }
    }
    Ok(Spec { base_path: base_path(doc), operations })
}

/// A valid MCP tool name (`[A-Za-z0-9_.-]`, at most 128 characters) from the operation id, or
/// one made of the method and path.
fn tool_name(id: Option<&str>, method: &str, path: &str) -> String {
    let raw = match id.filter(|s| !s.trim().is_empty()) {
        Some(id) => id.to_string(),
        None => format!("{method}_{}", path.trim_matches('/')),
    };
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' { c } else { '_' })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    let name = name.trim_matches('_');
    let name = if name.is_empty() { method } else { name };
    name.chars().take(128).collect()
}

/// The path of the first `servers` URL (`{variables}` replaced by their defaults).
fn base_path(doc: &Value) -> String {
    let Some(server) = doc.get("servers").and_then(Value::as_array).and_then(|s| s.first()) else {
        return String::new();
    };
    let mut url = server.get("url").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (k, v) in vars {
            if let Some(d) = v.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{k}}}"), d);
            }
        }
    }
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => url.strip_prefix("//").unwrap_or(&url),
    };
    // An absolute URL: its path; a relative one (`/api/v3`): itself.
    let path =
        if url.contains("://") || url.starts_with("//") { rest.find('/').map_or("", |i| &rest[i..]) } else { rest };
    let path = path.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
    if path.is_empty() || !path.starts_with('/') { String::new() } else { path.to_string() }
}

struct Resolver<'a> {
    doc: &'a Value,
    nodes: usize,
}

impl<'a> Resolver<'a> {
    /// Follows `value`'s `$ref` (if any) to what it points at.
    fn deref<'v>(&self, value: &'v Value, depth: usize) -> Result<std::borrow::Cow<'v, Value>, String> {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                if depth > MAX_REF_DEPTH {
                    return Err(format!("`$ref` chain deeper than {MAX_REF_DEPTH} at `{r}`"));
                }
                let target = self.pointer(r)?;
                Ok(std::borrow::Cow::Owned(self.deref(target, depth + 1)?.into_owned()))
            }
            None => Ok(std::borrow::Cow::Borrowed(value)),
        }
    }

    fn pointer(&self, r: &str) -> Result<&'a Value, String> {
        let Some(pointer) = r.strip_prefix('#') else {
            return Err(format!("`$ref: {r}`: only references inside the document are supported"));
        };
        let pointer = percent_encoding::percent_decode_str(pointer).decode_utf8_lossy();
        self.doc.pointer(&pointer).ok_or_else(|| format!("`$ref: {r}` points at nothing"))
    }

    /// `schema` with every `$ref` replaced by what it points at; a reference to a schema that
    /// is being expanded (a cycle) becomes `{}` with a description.
    fn schema(&mut self, schema: &Value, stack: &mut Vec<String>) -> Result<Value, String> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(format!("the resolved schemas exceed {MAX_NODES} nodes"));
        }
        if stack.len() > MAX_REF_DEPTH * 4 {
            return Err("schemas nested too deeply".into());
        }
        match schema {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    if stack.iter().any(|s| s == r) {
                        let name = r.rsplit('/').next().unwrap_or(r);
                        return Ok(json!({"description": format!("(recursive: {name})")}));
                    }
                    let target = self.pointer(r)?;
                    stack.push(r.to_string());
                    let mut resolved = self.schema(target, stack)?;
                    stack.pop();
                    // Siblings of `$ref` (3.1 allows `description` and the like) are kept.
                    if let Value::Object(out) = &mut resolved {
                        for (k, v) in map.iter().filter(|(k, _)| *k != "$ref") {
                            out.insert(k.clone(), self.schema(v, stack)?);
                        }
                    }
                    return Ok(resolved);
                }
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(k.clone(), self.schema(v, stack)?);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => {
                items.iter().map(|v| self.schema(v, stack)).collect::<Result<Vec<_>, _>>().map(Value::Array)
            }
            v => Ok(v.clone()),
        }
    }

    fn operation(
        &mut self,
        name: String,
        method: &str,
        path: &str,
        op: &Map<String, Value>,
        shared: &[Value],
        own: &[Value],
    ) -> Result<Operation, String> {
        let at = |e: String| format!("{} {path}: {e}", method.to_uppercase());
        // Path-level parameters, overridden by the operation's own of the same name and place.
        let mut params: BTreeMap<(In, String), (Value, bool)> = BTreeMap::new();
        for p in shared.iter().chain(own) {
            let p = self.deref(p, 0).map_err(at)?;
            let location = match p.get("in").and_then(Value::as_str) {
                Some("path") => In::Path,
                Some("query") => In::Query,
                Some("header") => In::Header,
                _ => continue, // cookie parameters are not sent
            };
            let Some(pname) = p.get("name").and_then(Value::as_str) else { continue };
            let mut schema = match (p.get("schema"), p.get("content").and_then(Value::as_object)) {
                (Some(s), _) => self.schema(s, &mut Vec::new()).map_err(at)?,
                (None, Some(c)) => match c.values().next().and_then(|m| m.get("schema")) {
                    Some(s) => self.schema(s, &mut Vec::new()).map_err(at)?,
                    None => json!({}),
                },
                _ => json!({"type": "string"}),
            };
            if let (Some(d), Value::Object(s)) = (p.get("description"), &mut schema) {
                s.insert("description".into(), d.clone());
            }
            let required = location == In::Path || p.get("required").and_then(Value::as_bool) == Some(true);
            params.insert((location, pname.to_string()), (schema, required));
        }
        let mut properties = Map::new();
        let mut required = Vec::new();
        for location in [In::Path, In::Query, In::Header] {
            let mut props = Map::new();
            let mut req = Vec::new();
            for ((l, n), (schema, r)) in &params {
                if *l == location {
                    props.insert(n.clone(), schema.clone());
                    if *r {
                        req.push(Value::String(n.clone()));
                    }
                }
            }
            if props.is_empty() {
                continue;
            }
            if !req.is_empty() {
                required.push(Value::String(location.key().into()));
            }
            properties.insert(location.key().into(), json!({"type": "object", "properties": props, "required": req}));
        }
        let mut body = None;
        if let Some(rb) = op.get("requestBody") {
            let rb = self.deref(rb, 0).map_err(at)?;
            let content = rb.get("content").and_then(Value::as_object);
            let json_media = content.and_then(|c| {
                c.iter().find(|(t, _)| {
                    let t = t.split(';').next().unwrap_or_default().trim();
                    t == "application/json" || t.ends_with("+json")
                })
            });
            let schema = if let Some((_, media)) = json_media {
                body = Some(BodyKind::Json);
                Some(match media.get("schema") {
                    Some(s) => self.schema(s, &mut Vec::new()).map_err(at)?,
                    None => json!({}),
                })
            } else if content.is_some_and(|c| c.contains_key("application/octet-stream")) {
                body = Some(BodyKind::Binary);
                Some(json!({"type": "string", "contentEncoding": "base64", "description": "base64-encoded content"}))
            } else {
                None
            };
            if let Some(schema) = schema {
                if rb.get("required").and_then(Value::as_bool) == Some(true) {
                    required.push(Value::String("body".into()));
                }
                properties.insert("body".into(), schema);
            }
        }
        let summary = op.get("summary").and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        let description = op.get("description").and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        let mut tool = json!({
            "name": name,
            "description": description.or(summary).unwrap_or(&name),
            "inputSchema": {"type": "object", "properties": properties, "required": required},
        });
        if let Some(s) = summary {
            tool["title"] = Value::String(s.chars().take(64).collect());
        }
        let read_only = matches!(method, "get" | "head" | "options");
        let mut annotations = json!({"readOnlyHint": read_only});
        if !read_only {
            annotations["destructiveHint"] = Value::Bool(method == "delete");
            annotations["idempotentHint"] = Value::Bool(matches!(method, "put" | "delete"));
        }
        annotations["openWorldHint"] = Value::Bool(true);
        tool["annotations"] = annotations;
        if op.get("deprecated").and_then(Value::as_bool) == Some(true) {
            let d = tool["description"].as_str().unwrap_or_default().to_string();
            tool["description"] = Value::String(format!("(deprecated) {d}"));
        }
        Ok(Operation {
            name,
            method: Method::from_bytes(method.to_uppercase().as_bytes()).expect("a standard method"),
            path: path.to_string(),
            params: params.into_keys().map(|k| (k, ())).collect(),
            body,
            tool,
        })
    }
}

#[cfg(test)]
mod tests;
