//! An MCP App (the `io.modelcontextprotocol/ui` extension), served with
//! [`Options::apps`](super::Options::apps): the tool `show_dashboard` names its UI resource in
//! `_meta.ui.resourceUri` and in the older `_meta["ui/resourceUri"]`, and so does its result;
//! the resource `ui://dashboard/app.html` and the template `ui://dashboard/{view}.html` are
//! HTML pages that name the server that served them, so tests can tell targets apart.

use serde_json::{Value, json};

/// The UI resource, as this server knows it.
pub const DASHBOARD_URI: &str = "ui://dashboard/app.html";
/// The MIME type of MCP App pages.
pub const APP_MIME: &str = "text/html;profile=mcp-app";

fn meta() -> Value {
    json!({"ui": {"resourceUri": DASHBOARD_URI, "visibility": ["model", "app"]}, "ui/resourceUri": DASHBOARD_URI})
}

pub(super) fn tools() -> Vec<Value> {
    vec![json!({
        "name": "show_dashboard",
        "description": "Shows the dashboard app",
        "inputSchema": {"type": "object", "properties": {}},
        "_meta": meta()
    })]
}

/// `show_dashboard`'s result: text, plus the UI resource it should be shown with.
pub(super) fn call(server: &str) -> Value {
    json!({"content": [{"type": "text", "text": format!("dashboard data from {server}")}], "_meta": meta()})
}

pub(super) fn resources() -> Vec<Value> {
    vec![json!({"uri": DASHBOARD_URI, "name": "dashboard", "description": "The dashboard app", "mimeType": APP_MIME})]
}

pub(super) fn templates() -> Vec<Value> {
    vec![json!({"uriTemplate": "ui://dashboard/{view}.html", "name": "dashboard-view", "mimeType": APP_MIME})]
}

/// The page at `uri`, if it is one of the app's.
pub(super) fn read(uri: &str, server: &str) -> Option<Value> {
    let view = uri.strip_prefix("ui://dashboard/")?.strip_suffix(".html")?;
    if view.is_empty() || view.contains('/') {
        return None;
    }
    let html = format!("<!doctype html><title>{view}</title><p>{view} served by {server}</p>");
    Some(json!([{"uri": uri, "mimeType": APP_MIME, "text": html, "_meta": {"ui": {"prefersBorder": true}}}]))
}
