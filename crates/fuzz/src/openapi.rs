//! An OpenAPI spec as an `openapi` target reads it (`agw_openapi::spec::parse`), and a tool
//! call built from it (`agw_openapi::call::request`): a spec fetched by URL is controlled by
//! whoever controls the service, and a call's arguments by the agent.

use agw_mcp::upstream::HttpTarget;
use http::HeaderMap;
use serde_json::{Value, json};

/// Input: the spec's text (JSON or YAML), then, after the first NUL byte if any, the call's
/// arguments (JSON).
///
/// Invariants: every tool has a valid MCP name (1–128 of `A-Za-z0-9_.-`), unique in the spec,
/// and an object input schema; a built request stays on the service's host, its path starts
/// with the spec's base path, and no path argument adds a path segment (`/` is escaped).
pub fn openapi(data: &[u8]) {
    let (spec, args) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(spec) else { return };
    let Ok(spec) = agw_openapi::spec::parse(text) else { return };
    let mut names = std::collections::HashSet::new();
    for op in &spec.operations {
        let n = &op.name;
        assert!(!n.is_empty() && n.len() <= 128, "tool name length: {n:?}");
        assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "tool name: {n:?}");
        assert!(names.insert(n.clone()), "duplicate tool name {n:?}");
        assert_eq!(op.tool["inputSchema"]["type"], "object");
    }
    let args: Value = serde_json::from_slice(args).unwrap_or_else(|_| json!({"path": {"id": "a/b"}}));
    let service = HttpTarget::new("http://svc.internal:8080".parse().expect("a valid URI"));
    for op in &spec.operations {
        let Ok(req) = agw_openapi::call::request(&service, &spec.base_path, op, &args, &HeaderMap::new()) else {
            continue;
        };
        assert_eq!(req.uri().authority().map(|a| a.as_str()), Some("svc.internal:8080"), "{}", req.uri());
        assert!(req.uri().path().starts_with(&spec.base_path), "{} not under {}", req.uri(), spec.base_path);
        // Path segments: the template's, never more.
        let template_segments = format!("{}{}", spec.base_path, op.path).matches('/').count();
        assert!(req.uri().path().matches('/').count() <= template_segments, "{} from {}", req.uri(), op.path);
    }
}
