//! `transformations`: CEL changes to the request before the backend and to the response before
//! the client — headers (`replace`, `add`, `set`, `remove`, in that order) and the body.
//!
//! A body is read whole only when a `body` expression is configured or an expression mentions
//! `request.body` / `response.body`; at most [`MAX_BODY`] (a larger request gets 413, a larger
//! response 502). Otherwise bodies stream as before, and an SSE answer stays a stream.

use agw_config::model;
use agw_config::{FieldError, FieldPath};
use agw_http::body::{self, Body};
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::to_cel;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderMap, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use super::Compiler;
use crate::error::GatewayError;
use crate::listener::Admitted;

/// Largest body read for a transformation.
pub(crate) const MAX_BODY: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct Transformations {
    request: Option<Transform>,
    response: Option<Transform>,
}

#[derive(Debug)]
struct Transform {
    replace: Option<Expression>,
    add: Vec<(HeaderName, Expression)>,
    set: Vec<(HeaderName, Expression)>,
    remove: Vec<HeaderName>,
    body: Option<Expression>,
    /// Some expression reads the body: it is read whole and bound.
    reads_body: bool,
}

/// Which side an expression belongs to (what it may read).
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Request,
    Response,
}

impl Transformations {
    pub(crate) fn resolve(at: &FieldPath, t: &model::Transformations, c: &mut Compiler<'_>) -> Transformations {
        Transformations {
            request: t.request.as_ref().map(|r| Transform::resolve(&at.key("request"), r, Side::Request, c)),
            response: t.response.as_ref().map(|r| Transform::resolve(&at.key("response"), r, Side::Response, c)),
        }
    }

    pub(crate) fn changes_request_body(&self) -> bool {
        self.request.as_ref().is_some_and(|r| r.body.is_some())
    }

    pub(crate) fn has_response(&self) -> bool {
        self.response.is_some()
    }

    /// Changes the request; `inputs` are the request's variables.
    pub(crate) async fn request(
        &self,
        parts: &mut Parts,
        body: Admitted,
        inputs: &Inputs,
        host: &str,
    ) -> Result<Admitted, GatewayError> {
        let Some(t) = &self.request else { return Ok(body) };
        if !t.reads_body {
            t.headers(&mut parts.headers, inputs);
            return Ok(body);
        }
        let bytes = read(body).await.map_err(|e| match e {
            ReadError::TooLarge => GatewayError::BodyTooLarge,
            ReadError::Failed => GatewayError::BadRequestBody,
        })?;
        let mut request = crate::authz::request_json(parts, host);
        request["body"] = Value::String(String::from_utf8_lossy(&bytes).into_owned());
        let inputs = Inputs { request: Some(to_cel(&request)), ..inputs.clone() };
        t.headers(&mut parts.headers, &inputs);
        let bytes = t.new_body(&inputs).unwrap_or(bytes);
        set_length(&mut parts.headers, bytes.len());
        Ok(Admitted::Read(Some(bytes)))
    }

    /// Changes the response; `inputs` are the request's variables.
    pub(crate) async fn response(&self, resp: Response<Body>, inputs: &Inputs) -> Response<Body> {
        let Some(t) = &self.response else { return resp };
        let (mut parts, b) = resp.into_parts();
        let mut response =
            serde_json::json!({"code": parts.status.as_u16(), "headers": crate::authz::headers_json(&parts.headers)});
        if !t.reads_body {
            let inputs = Inputs { response: Some(to_cel(&response)), ..inputs.clone() };
            t.headers(&mut parts.headers, &inputs);
            return Response::from_parts(parts, b);
        }
        let bytes = match read(b).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = ?e, "response body could not be read for a transformation");
                return GatewayError::UpstreamFailed.into_response();
            }
        };
        response["body"] = Value::String(String::from_utf8_lossy(&bytes).into_owned());
        let inputs = Inputs { response: Some(to_cel(&response)), ..inputs.clone() };
        t.headers(&mut parts.headers, &inputs);
        let bytes = t.new_body(&inputs).unwrap_or(bytes);
        set_length(&mut parts.headers, bytes.len());
        Response::from_parts(parts, body::full(bytes))
    }
}

impl Transform {
    fn resolve(at: &FieldPath, t: &model::Transform, side: Side, c: &mut Compiler<'_>) -> Transform {
        let compile = |at: FieldPath, src: &str, c: &mut Compiler<'_>| match side {
            Side::Request => c.expression(&at, src),
            Side::Response => c.response_side_expression(&at, src),
        };
        let headers = |kind: &str, map: &std::collections::BTreeMap<String, String>, c: &mut Compiler<'_>| {
            let mut out = Vec::new();
            for (name, src) in map {
                let at = at.key(kind).key(name);
                match HeaderName::try_from(name.as_str()) {
                    Ok(n) => out.extend(compile(at, src, c).map(|e| (n, e))),
                    Err(_) => c.errors.push(FieldError::new(at, "not a valid header name")),
                }
            }
            out
        };
        let add = headers("add", &t.add, c);
        let set = headers("set", &t.set, c);
        let remove = t
            .remove
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                HeaderName::try_from(n.as_str())
                    .map_err(|_| c.errors.push(FieldError::new(at.key("remove").index(i), "not a valid header name")))
                    .ok()
            })
            .collect();
        let replace = t.replace.as_deref().and_then(|s| compile(at.key("replace"), s, c));
        let body = t.body.as_deref().and_then(|s| compile(at.key("body"), s, c));
        let mention = if side == Side::Request { "request.body" } else { "response.body" };
        let sources = t.add.values().chain(t.set.values()).chain(t.replace.iter()).chain(t.body.iter());
        let reads_body = body.is_some() || sources.into_iter().any(|s| s.contains(mention));
        Transform { replace, add, set, remove, body, reads_body }
    }

    fn headers(&self, h: &mut HeaderMap, inputs: &Inputs) {
        if let Some(r) = &self.replace
            && let Some(Value::Object(map)) = r.eval_json(inputs)
        {
            h.clear();
            for (name, v) in map {
                let Ok(name) = HeaderName::try_from(name.as_str()) else { continue };
                let values = match v {
                    Value::Array(items) => items,
                    one => vec![one],
                };
                for v in values {
                    if let Some(v) = v.as_str().and_then(|s| HeaderValue::from_str(s).ok()) {
                        h.append(name.clone(), v);
                    }
                }
            }
        }
        let value = |e: &Expression| e.eval_bytes(inputs).and_then(|b| HeaderValue::from_bytes(&b).ok());
        for (name, e) in &self.add {
            if let Some(v) = value(e) {
                h.append(name.clone(), v);
            }
        }
        for (name, e) in &self.set {
            if let Some(v) = value(e) {
                h.insert(name.clone(), v);
            }
        }
        for name in &self.remove {
            h.remove(name);
        }
    }

    /// The new body, or `None` to keep it (no `body`, or its evaluation failed).
    fn new_body(&self, inputs: &Inputs) -> Option<Bytes> {
        let b = self.body.as_ref()?.eval_body(inputs)?;
        if b.len() > MAX_BODY {
            tracing::warn!("transformed body larger than 1 MiB; left unchanged");
            return None;
        }
        Some(Bytes::from(b))
    }
}

#[derive(Debug)]
enum ReadError {
    TooLarge,
    Failed,
}

async fn read<B>(body: B) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes, Error = agw_http::body::BoxError> + Unpin,
{
    let mut body = body;
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(ReadError::Failed) };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_BODY {
                return Err(ReadError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

fn set_length(h: &mut HeaderMap, len: usize) {
    h.remove(TRANSFER_ENCODING);
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
}
