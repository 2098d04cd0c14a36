//! `directResponse`: the gateway answers the request itself, always or (the conditional form)
//! when the first condition that holds picks an answer.

use agw_config::model::{ConditionalDirectResponse, DirectResponse};
use agw_config::{FieldError, FieldPath};
use agw_http::body::{self, Body};
use agw_policy::expr::{Expression, Inputs};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::Compiler;

/// Largest body a `bodyExpression` may produce; a larger one is cut off (and logged).
const MAX_BODY: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct DirectResponses {
    /// In order; the first whose condition holds (or that has none) answers.
    answers: Vec<Answer>,
}

#[derive(Debug)]
struct Answer {
    condition: Option<Expression>,
    status: StatusCode,
    body: Content,
    headers: Vec<(HeaderName, Expression)>,
}

#[derive(Debug)]
enum Content {
    Fixed(Bytes),
    Expression(Expression),
}

impl DirectResponses {
    pub(crate) fn resolve(at: &FieldPath, d: &DirectResponse, c: &mut Compiler<'_>) -> Option<DirectResponses> {
        let entries: Vec<(FieldPath, ConditionalDirectResponse)> = match &d.conditional {
            Some(list) => list.iter().enumerate().map(|(i, e)| (at.key("conditional").index(i), e.clone())).collect(),
            None => vec![(
                at.clone(),
                ConditionalDirectResponse {
                    condition: None,
                    status: d.status?,
                    body: d.body.clone(),
                    body_expression: d.body_expression.clone(),
                    headers: d.headers.clone(),
                },
            )],
        };
        let mut answers = Vec::new();
        for (at, e) in entries {
            let condition = e.condition.as_deref().and_then(|s| c.expression(&at.key("condition"), s));
            let Ok(status) = StatusCode::from_u16(e.status) else {
                c.errors.push(FieldError::new(at.key("status"), "not an HTTP status"));
                continue;
            };
            let body = match &e.body_expression {
                Some(src) => Content::Expression(c.expression(&at.key("bodyExpression"), src)?),
                None => Content::Fixed(Bytes::from(e.body.clone().unwrap_or_default())),
            };
            let mut headers = Vec::new();
            for (name, src) in &e.headers {
                let at = at.key("headers").key(name);
                let Ok(name) = HeaderName::try_from(name.as_str()) else {
                    c.errors.push(FieldError::new(at, "not a valid header name"));
                    continue;
                };
                headers.extend(c.expression(&at, src).map(|e| (name, e)));
            }
            answers.push(Answer { condition, status, body, headers });
        }
        Some(DirectResponses { answers })
    }

    /// The answer for this request, or `None` (no condition holds: on to the backend).
    pub(crate) fn answer(&self, inputs: &Inputs) -> Option<Response<Body>> {
        let a = self.answers.iter().find(|a| a.condition.as_ref().is_none_or(|c| c.eval_bool(inputs)))?;
        let bytes = match &a.body {
            Content::Fixed(b) => b.clone(),
            Content::Expression(e) => evaluated_body(e, inputs),
        };
        let mut r = Response::new(body::full(bytes));
        *r.status_mut() = a.status;
        for (name, e) in &a.headers {
            if let Some(v) = e.eval_bytes(inputs).and_then(|b| HeaderValue::from_bytes(&b).ok()) {
                r.headers_mut().insert(name.clone(), v);
            }
        }
        Some(r)
    }
}

/// A string or bytes as they are, anything else as JSON; a failed evaluation is an empty body.
fn evaluated_body(e: &Expression, inputs: &Inputs) -> Bytes {
    let mut out = match e.eval_body(inputs) {
        Some(b) => Bytes::from(b),
        None => {
            tracing::debug!(expression = e.source(), "directResponse bodyExpression failed; empty body");
            Bytes::new()
        }
    };
    if out.len() > MAX_BODY {
        tracing::warn!(expression = e.source(), "directResponse bodyExpression larger than 1 MiB; cut");
        out.truncate(MAX_BODY);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use agw_config::model::DirectResponse as Raw;

    fn compile(raw: &Raw) -> (Option<DirectResponses>, Vec<FieldError>) {
        let mut errors = Vec::new();
        let mut c = Compiler { errors: &mut errors, uses: Vec::new() };
        let d = DirectResponses::resolve(&FieldPath::root(), raw, &mut c);
        (d, errors)
    }

    #[test]
    fn conditions_pick_the_first_answer_that_holds() {
        let entry = |condition: Option<&str>, status: u16| ConditionalDirectResponse {
            condition: condition.map(str::to_string),
            status,
            ..Default::default()
        };
        let raw = Raw {
            conditional: Some(vec![entry(Some("false"), 500), entry(Some("1 == 1"), 503), entry(None, 200)]),
            ..Default::default()
        };
        let (d, errors) = compile(&raw);
        assert!(errors.is_empty(), "{errors:?}");
        let r = d.unwrap().answer(&Inputs::default()).unwrap();
        assert_eq!(r.status(), 503);
        let raw = Raw { conditional: Some(vec![entry(Some("false"), 500)]), ..Default::default() };
        assert!(compile(&raw).0.unwrap().answer(&Inputs::default()).is_none(), "none holds: on to the backend");
        let raw = Raw { conditional: Some(vec![entry(Some("mcp.tool.name == 'x'"), 500)]), ..Default::default() };
        let (_, errors) = compile(&raw);
        assert!(errors[0].message.contains("`mcp` is not known here"), "{errors:?}");
    }
}
