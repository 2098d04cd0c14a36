//! `extAuthz` over plain HTTP: the request (its method, path, chosen headers and body) is
//! replayed to the service; a 2xx answer allows, any other is the client's answer. MCP calls
//! travel as `x-mcp-method`, `x-mcp-tool`, `x-mcp-target` and (opt-in) `x-mcp-tool-arguments`.

use ::http::header::{HOST, LOCATION};
use ::http::uri::Authority;
use ::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use agw_config::FieldPath;
use agw_config::model::ExtAuthzHttp;
use agw_http::HttpClient;
use agw_http::body;
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::to_cel;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};

use super::{Allowed, CHECK_TIMEOUT, Check, Compiler, Decision, McpCall, Subject};

/// Largest answer read from the service.
const MAX_ANSWER: usize = 1 << 20;

#[derive(Debug)]
pub(super) struct Settings {
    authority: Authority,
    path: Option<Expression>,
    redirect: Option<Expression>,
    body: Option<Expression>,
    include_response_headers: Vec<HeaderName>,
    add_request_headers: Vec<(String, Expression)>,
    metadata: Vec<(String, Expression)>,
}

impl Settings {
    pub(super) fn compile(c: &mut Compiler<'_>, at: &FieldPath, host: &str, h: &ExtAuthzHttp) -> Option<Settings> {
        let authority = match host.parse::<Authority>() {
            Ok(a) => a,
            Err(_) => {
                c.errors.push(agw_config::FieldError::new(at.key("host"), format!("`{host}` is not host:port")));
                return None;
            }
        };
        Some(Settings {
            authority,
            path: h.path.as_deref().and_then(|p| c.compile(at.key("path"), p)),
            redirect: h.redirect.as_deref().and_then(|p| c.compile(at.key("redirect"), p)),
            body: h.body.as_ref().and_then(|p| c.compile(at.key("body"), p.expose())),
            include_response_headers: h
                .include_response_headers
                .iter()
                .filter_map(|n| HeaderName::try_from(n.as_str()).ok())
                .collect(),
            add_request_headers: h
                .add_request_headers
                .iter()
                .filter_map(|(k, src)| {
                    c.compile(at.key("addRequestHeaders").key(k), src.expose()).map(|e| (k.clone(), e))
                })
                .collect(),
            metadata: c.map(at.key("metadata"), &h.metadata),
        })
    }
}

fn text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The check request.
fn request(
    check: &Check,
    set: &Settings,
    s: &Subject<'_>,
    inputs: &Inputs,
    call: Option<&McpCall>,
) -> Result<Request<agw_http::body::Body>, String> {
    let mut method = s.parts.method.clone();
    let mut path = match &set.path {
        Some(e) => e.eval_json(inputs).map(text).ok_or("`path` could not be evaluated")?,
        None => s.parts.uri.path_and_query().map_or_else(|| "/".to_string(), |p| p.to_string()),
    };
    let mut headers = ::http::HeaderMap::new();
    for (name, value) in check.headers_for(s.parts, s.host, s.tls) {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            headers.insert(n, v);
        }
    }
    for (name, e) in &set.add_request_headers {
        let Some(value) = e.eval_json(inputs).map(text) else { continue };
        match name.as_str() {
            ":method" => method = Method::from_bytes(value.as_bytes()).map_err(|_| "`:method` is not a method")?,
            ":path" => path = value,
            ":authority" => {
                if let Ok(v) = HeaderValue::try_from(value) {
                    headers.insert(HOST, v);
                }
            }
            _ => {
                if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value)) {
                    headers.insert(n, v);
                }
            }
        }
    }
    // Only the gateway names the MCP call: a client's own `x-mcp-*` headers never pass.
    for name in ["x-mcp-method", "x-mcp-tool", "x-mcp-target", "x-mcp-tool-arguments"] {
        headers.remove(name);
    }
    if let Some(c) = call {
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        put("x-mcp-method", &c.method);
        if let Some(t) = &c.tool {
            put("x-mcp-tool", t);
        }
        if let Some(t) = &c.target {
            put("x-mcp-target", t);
        }
        if check.mcp_arguments
            && c.tool.is_some()
            && let Some(a) = super::arguments_text(c.arguments.as_ref())
        {
            put("x-mcp-tool-arguments", &a);
        }
    }
    let body = match &set.body {
        Some(e) => Bytes::from(e.eval_json(inputs).map(text).ok_or("`body` could not be evaluated")?),
        None => match check.body_for(s.body)? {
            Some((b, partial)) => {
                let flag = if partial { "true" } else { "false" };
                headers.insert(HeaderName::from_static("x-envoy-auth-partial-body"), HeaderValue::from_static(flag));
                Bytes::copy_from_slice(b)
            }
            None => Bytes::new(),
        },
    };
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let uri = ::http::Uri::builder()
        .scheme("http")
        .authority(set.authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| format!("bad check URL: {e}"))?;
    let mut req = Request::new(body::full(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

pub(super) async fn ask(
    check: &Check,
    set: &Settings,
    client: &HttpClient,
    s: &Subject<'_>,
    inputs: &Inputs,
    call: Option<&McpCall>,
) -> Result<Decision, String> {
    let req = request(check, set, s, inputs, call)?;
    let exchange = async {
        let resp = client.send(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let bytes = Limited::new(body, MAX_ANSWER).collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>((parts, bytes))
    };
    let (answer, bytes) =
        tokio::time::timeout(CHECK_TIMEOUT, exchange).await.map_err(|_| "timed out".to_string())??;
    if answer.status.is_success() {
        let request_headers = set
            .include_response_headers
            .iter()
            .filter_map(|n| answer.headers.get(n).map(|v| (n.clone(), v.clone(), false)))
            .collect();
        let metadata = (!set.metadata.is_empty()).then(|| {
            let mut headers = Map::new();
            for (n, v) in &answer.headers {
                headers
                    .insert(n.as_str().to_string(), Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()));
            }
            let response = serde_json::json!({
                "code": answer.status.as_u16(),
                "headers": headers,
                "body": String::from_utf8_lossy(&bytes),
            });
            let with_response = Inputs { response: Some(to_cel(&response)), ..inputs.clone() };
            set.metadata.iter().filter_map(|(k, e)| Some((k.clone(), e.eval_json(&with_response)?))).collect()
        });
        return Ok(Decision::Allow(Allowed { request_headers, metadata, ..Allowed::default() }));
    }
    if matches!(answer.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        && let Some(e) = &set.redirect
    {
        let to = e.eval_json(inputs).map(text).ok_or("`redirect` could not be evaluated")?;
        let location = HeaderValue::try_from(to).map_err(|_| "`redirect` is not a header value")?;
        return Ok(Decision::Deny {
            status: StatusCode::FOUND,
            headers: vec![(LOCATION, location)],
            body: Bytes::new(),
            metadata: None,
        });
    }
    let headers = answer.headers.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    Ok(Decision::Deny { status: answer.status, headers, body: bytes, metadata: None })
}
