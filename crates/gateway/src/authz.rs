//! Authorization with CEL rules: the variables rules see, the MCP authorizer handed to the
//! relay, the HTTP-level check, and audit events.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use agw_config::model::AuditMode;
use agw_mcp::authz::{Authorizer, Item, ItemKind};
use agw_mcp::metrics::Metrics;
use agw_policy::rules::{self, Decision, McpItem, Prepared, Rules, Uses, Vars, to_cel};
use http::request::Parts;
use serde_json::{Map, Value, json};
use tracing::info;

use crate::auth::Identity;

/// The variables the rules see for this request (`mcp` is added per item). Only the ones
/// the rules read (`uses`) are computed.
pub fn request_vars(parts: &Parts, host: &str, peer: SocketAddr, identity: &Identity, uses: Uses) -> Vars {
    let request = uses.reads("request").then(|| to_cel(&request_json(parts, host)));
    Vars {
        jwt: identity.jwt.as_ref().filter(|_| uses.reads("jwt")).map(|c| c.to_cel()),
        request,
        source: uses.reads("source").then(|| {
            let mut source = json!({"address": peer.ip().to_string(), "port": peer.port()});
            if let Some(c) = &identity.client_cert {
                source["subjectAltNames"] = json!(c.subject_alt_names);
                source["spiffeId"] = json!(c.spiffe_id);
                source["subject"] = json!(c.subject);
                source["issuer"] = json!(c.issuer);
                source["subjectCn"] = json!(c.subject_cn);
            }
            to_cel(&source)
        }),
        api_key: identity.api_key.as_ref().filter(|_| uses.reads("apiKey")).map(to_cel),
        basic_auth: identity
            .basic_user
            .as_ref()
            .filter(|_| uses.reads("basicAuth"))
            .map(|u| to_cel(&json!({"username": u}))),
        extauthz: identity.extauthz.as_ref().filter(|_| uses.reads("extauthz")).map(to_cel),
        // Known after the body is read (`a2a::inspect`).
        a2a: None,
    }
}

/// `request` as CEL sees it: method, path, host and headers (repeated ones joined by `, `).
pub fn request_json(parts: &Parts, host: &str) -> Value {
    json!({"method": parts.method.as_str(), "path": parts.uri.path(), "host": host, "headers": headers_json(&parts.headers)})
}

/// Headers as a JSON object (repeated ones joined by `, `; values that are not text left out).
pub fn headers_json(h: &http::HeaderMap) -> Value {
    let mut headers = Map::new();
    for name in h.keys() {
        let values: Vec<&str> = h.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        headers.insert(name.as_str().to_string(), Value::String(values.join(", ")));
    }
    Value::Object(headers)
}

/// The authenticated caller's name for the access log: the JWT `sub`, else the Basic user.
pub fn authenticated_subject(identity: &Identity) -> Option<String> {
    identity
        .jwt
        .as_ref()
        .and_then(|c| c.get("sub"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| identity.basic_user.clone())
}

/// Who to name in audit events: the JWT subject, else the Basic user, else anonymous.
pub fn subject(identity: &Identity) -> String {
    if let Some(sub) = identity.jwt.as_ref().and_then(|c| c.get("sub")).and_then(Value::as_str) {
        return sub.to_string();
    }
    if let Some(user) = &identity.basic_user {
        return user.clone();
    }
    if identity.api_key.is_some() {
        return "api-key".into();
    }
    "anonymous".into()
}

fn kind(k: ItemKind) -> rules::ItemKind {
    match k {
        ItemKind::Tool => rules::ItemKind::Tool,
        ItemKind::Prompt => rules::ItemKind::Prompt,
        ItemKind::Resource | ItemKind::ResourceTemplate => rules::ItemKind::Resource,
    }
}

/// `mcpAuthorization` for one request, given to the MCP relay.
#[derive(Debug)]
pub struct McpAuthorizer {
    rules: Prepared,
    pub subject: String,
    pub audit: AuditMode,
    /// Items hidden from and shown in listings (reported once per request, on drop).
    hidden: AtomicUsize,
    shown: AtomicUsize,
    /// The list method and target, once something was listed.
    listed: OnceLock<(String, String)>,
    metrics: Option<Arc<Metrics>>,
    /// Call decisions logged for this request; past [`MAX_AUDIT_LINES`], decisions are only
    /// counted (allowed, denied) and summed up in one line on drop.
    logged: AtomicUsize,
    unlogged: (AtomicUsize, AtomicUsize),
}

/// Audit lines one request may write about its calls (a batch holds several); the rest are
/// summed up, so a request cannot multiply the log.
pub const MAX_AUDIT_LINES: usize = 8;

impl McpAuthorizer {
    pub fn new(
        rules: &Rules,
        vars: Vars,
        subject: String,
        audit: AuditMode,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<McpAuthorizer> {
        Arc::new(McpAuthorizer {
            metrics,
            rules: rules.prepare(vars),
            subject,
            audit,
            hidden: AtomicUsize::new(0),
            shown: AtomicUsize::new(0),
            listed: OnceLock::new(),
            logged: AtomicUsize::new(0),
            unlogged: (AtomicUsize::new(0), AtomicUsize::new(0)),
        })
    }

    fn audit_call(&self, item: &Item<'_>, d: &Decision) {
        if self.audit == AuditMode::All || (self.audit == AuditMode::Denied && !d.allowed) {
            if self.logged.fetch_add(1, Ordering::Relaxed) >= MAX_AUDIT_LINES {
                let counter = if d.allowed { &self.unlogged.0 } else { &self.unlogged.1 };
                counter.fetch_add(1, Ordering::Relaxed);
                return;
            }
            info!(
                target: "audit",
                subject = %self.subject,
                method = item.method,
                mcp_target = item.target,
                name = agw_mcp::metrics::cut(item.name),
                decision = if d.allowed { "allow" } else { "deny" },
                rule = d.rule.map(|r| r as i64).unwrap_or(-1),
                reason = d.reason.describe(),
                "authorization decision"
            );
        }
    }
}

fn mcp_item<'a>(item: &Item<'a>) -> McpItem<'a> {
    McpItem {
        method: item.method,
        kind: kind(item.kind),
        name: item.name,
        target: item.target,
        arguments: item.arguments,
    }
}

impl Authorizer for McpAuthorizer {
    fn allows(&self, item: &Item<'_>) -> bool {
        let d = self.rules.decide(&mcp_item(item));
        self.audit_call(item, &d);
        if let Some(m) = &self.metrics {
            m.decision("mcp", d.allowed);
        }
        d.allowed
    }

    fn lists(&self, item: &Item<'_>) -> bool {
        let visible = self.rules.could_allow(&mcp_item(item));
        let counter = if visible { &self.shown } else { &self.hidden };
        counter.fetch_add(1, Ordering::Relaxed);
        self.listed.get_or_init(|| (item.method.to_string(), item.target.to_string()));
        visible
    }

    /// A UI resource a tool names: neither a call nor a listed item, so neither audited nor
    /// counted in the listing's `shown`/`hidden`.
    fn would_allow(&self, item: &Item<'_>) -> bool {
        self.rules.could_allow(&mcp_item(item))
    }
}

impl Drop for McpAuthorizer {
    /// One audit event per filtered listing (not one per item: lists can be long).
    fn drop(&mut self) {
        let (allowed, denied) = (self.unlogged.0.load(Ordering::Relaxed), self.unlogged.1.load(Ordering::Relaxed));
        if allowed + denied > 0 {
            info!(target: "audit", subject = %self.subject, allowed, denied, decision = "summary", "more authorization decisions in this request");
        }
        let hidden = self.hidden.load(Ordering::Relaxed);
        let shown = self.shown.load(Ordering::Relaxed);
        let Some((method, target)) = self.listed.get() else { return };
        if self.audit == AuditMode::All || (self.audit == AuditMode::Denied && hidden > 0) {
            info!(target: "audit", subject = %self.subject, method, mcp_target = target, shown, hidden, decision = "filter", "authorization decision");
        }
    }
}

/// HTTP-level `authorization`: `Err(rule)` when refused.
pub fn check_http(
    rules: &Rules,
    vars: &Vars,
    subject: &str,
    parts: &Parts,
    audit: AuditMode,
    metrics: &Metrics,
) -> Result<(), Decision> {
    let d = rules.decide(vars);
    metrics.decision("http", d.allowed);
    if audit == AuditMode::All || (audit == AuditMode::Denied && !d.allowed) {
        info!(
            target: "audit",
            subject,
            method = parts.method.as_str(),
            path = parts.uri.path(),
            decision = if d.allowed { "allow" } else { "deny" },
            rule = d.rule.map(|r| r as i64).unwrap_or(-1),
            reason = d.reason.describe(),
            "authorization decision"
        );
    }
    if d.allowed { Ok(()) } else { Err(d) }
}
