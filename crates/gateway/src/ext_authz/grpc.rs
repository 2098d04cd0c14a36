//! `extAuthz` over Envoy's gRPC protocol: a `CheckRequest` built from the request, and the
//! `CheckResponse` read as a decision.

use std::collections::HashMap;

use ::http::{HeaderName, HeaderValue, StatusCode};
use agw_policy::expr::{Expression, Inputs};
use bytes::Bytes;

use super::{Allowed, CHECK_TIMEOUT, Check, Decision, McpCall, Subject};
use crate::envoy::Struct;
use crate::envoy::auth::{
    AttributeContext, CHECK, CheckRequest, CheckResponse, HeaderValueOption, HttpRequest, Metadata, Peer, Request,
};

/// The check request. The MCP call goes in `context_extensions`: `mcp.method`,
/// `mcp.tool.name`, `mcp.target` and, when asked, `mcp.tool.arguments` (JSON).
pub(super) fn request(
    check: &Check,
    s: &Subject<'_>,
    inputs: &Inputs,
    call: Option<&McpCall>,
    (context, metadata): (&HashMap<String, String>, &[(String, Expression)]),
) -> Result<CheckRequest, String> {
    let body = check.body_for(s.body)?;
    let raw = check.body.is_some_and(|(_, _, raw)| raw);
    let (text, raw_body) = match body {
        Some((b, _)) if raw => (String::new(), b.to_vec()),
        Some((b, _)) => (String::from_utf8_lossy(b).into_owned(), Vec::new()),
        None => (String::new(), Vec::new()),
    };
    let mut context_extensions = context.clone();
    if let Some(c) = call {
        context_extensions.insert("mcp.method".into(), c.method.clone());
        if let Some(t) = &c.tool {
            context_extensions.insert("mcp.tool.name".into(), t.clone());
        }
        if let Some(t) = &c.target {
            context_extensions.insert("mcp.target".into(), t.clone());
        }
        if check.mcp_arguments
            && c.tool.is_some()
            && let Some(a) = super::arguments_text(c.arguments.as_ref())
        {
            context_extensions.insert("mcp.tool.arguments".into(), a);
        }
    }
    let filter_metadata: HashMap<String, Struct> =
        metadata.iter().filter_map(|(k, e)| Some((k.clone(), Struct::from_json(&e.eval_json(inputs)?)?))).collect();
    let parts = s.parts;
    let http = HttpRequest {
        id: String::new(),
        method: parts.method.to_string(),
        headers: check.headers_for(parts, s.host, s.tls).into_iter().collect(),
        path: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.to_string()),
        host: s.host.to_string(),
        scheme: if s.tls { "https" } else { "http" }.into(),
        size: s.body.map_or(-1, |b| i64::try_from(b.len()).unwrap_or(i64::MAX)),
        protocol: format!("{:?}", parts.version),
        body: text,
        raw_body,
    };
    Ok(CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer::of(s.peer)),
            destination: None,
            request: Some(Request { http: Some(http) }),
            context_extensions,
            metadata_context: (!metadata.is_empty()).then_some(Metadata { filter_metadata }),
        }),
    })
}

/// Asks the service; transport failures and gRPC errors are `Err` (the failure mode's).
pub(super) async fn ask(service: &crate::grpc::Service, request: CheckRequest) -> Result<Decision, String> {
    let answer: CheckResponse = service.call(CHECK, &request, CHECK_TIMEOUT).await.map_err(|e| e.to_string())?;
    let metadata = answer.dynamic_metadata.as_ref().map(|m| m.to_json()).and_then(|v| match v {
        serde_json::Value::Object(o) if !o.is_empty() => Some(o),
        _ => None,
    });
    if answer.status.as_ref().map_or(0, |s| s.code) != 0 {
        let denied = answer.denied_response.unwrap_or_default();
        let status = denied
            .status
            .and_then(|s| u16::try_from(s.code).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|s| !s.is_informational())
            .unwrap_or(StatusCode::FORBIDDEN);
        let headers = denied.headers.iter().filter_map(header).map(|(n, v, _)| (n, v)).collect();
        return Ok(Decision::Deny { status, headers, body: Bytes::from(denied.body), metadata });
    }
    let ok = answer.ok_response.unwrap_or_default();
    Ok(Decision::Allow(Allowed {
        request_headers: ok.headers.iter().filter_map(header).collect(),
        remove_headers: ok
            .headers_to_remove
            .iter()
            .filter_map(|n| HeaderName::try_from(n.as_str()).ok())
            // Envoy refuses to remove pseudo-headers and `host`; so do we.
            .filter(|n| n != ::http::header::HOST)
            .collect(),
        response_headers: ok.response_headers_to_add.iter().filter_map(header).map(|(n, v, _)| (n, v)).collect(),
        metadata,
    }))
}

fn header(h: &HeaderValueOption) -> Option<(HeaderName, HeaderValue, bool)> {
    let (n, v) = h.header.as_ref()?.to_http()?;
    (!super::is_hop_by_hop(&n)).then(|| (n, v, h.appends()))
}
