//! `retry` on `host:` backends: the request is sent again when the backend cannot be reached,
//! does not answer within `backendRequestTimeout`, or answers with one of `codes` (or a
//! response `condition` holds). Each retry carries `x-retry-attempt: <n>`.
//!
//! Only a request whose body can be replayed is retried: its size must be known (a
//! `Content-Length`, or no body) and at most [`MAX_REPLAY`]; the body is then read once and sent
//! from memory on every attempt. MCP backends are never retried by the gateway: a JSON-RPC
//! message such as `tools/call` may have had its effect even when the answer was lost, and the
//! relay already answers each request with a JSON-RPC error the client can act on.

use std::time::Duration;

use agw_config::FieldPath;
use agw_config::model;
use agw_policy::expr::{Expression, Inputs};
use agw_policy::rules::to_cel;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode};

use super::Compiler;

/// Largest request body kept in memory to be sent again (agentgateway's bound too).
pub(crate) const MAX_REPLAY: u64 = 64 * 1024;

#[derive(Debug)]
pub(crate) struct Retry {
    /// Attempts after the first.
    pub(crate) retries: u8,
    pub(crate) backoff: Option<Duration>,
    codes: Vec<StatusCode>,
    precondition: Option<Expression>,
    condition: Option<Expression>,
}

/// Set on a request whose `retry` precondition held (or that has none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retryable;

impl Retry {
    pub(crate) fn resolve(at: &FieldPath, r: &model::Retry, c: &mut Compiler<'_>) -> Option<Retry> {
        let codes = r.codes.iter().filter_map(|code| StatusCode::from_u16(*code).ok()).collect();
        let precondition = r.precondition.as_deref().and_then(|s| c.expression(&at.key("precondition"), s));
        let condition = r.condition.as_deref().and_then(|s| c.response_expression(&at.key("condition"), s));
        Some(Retry {
            retries: r.attempts.unwrap_or(1),
            backoff: r.backoff.map(|d| d.get()).filter(|d| !d.is_zero()),
            codes,
            precondition,
            condition,
        })
    }

    /// Whether this request may be retried at all (its precondition).
    pub(crate) fn admits(&self, inputs: &Inputs) -> bool {
        self.precondition.as_ref().is_none_or(|p| p.eval_bool(inputs))
    }

    /// Whether a response with this status and headers is tried again.
    pub(crate) fn retries_response(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if self.codes.contains(&status) {
            return true;
        }
        let Some(c) = &self.condition else { return false };
        let headers: serde_json::Map<String, serde_json::Value> = headers
            .keys()
            .map(|k| {
                let v: Vec<&str> = headers.get_all(k).iter().filter_map(|v| v.to_str().ok()).collect();
                (k.as_str().to_string(), serde_json::Value::String(v.join(", ")))
            })
            .collect();
        let response = to_cel(&serde_json::json!({"code": status.as_u16(), "headers": headers}));
        c.eval_bool(&Inputs { response: Some(response), ..Inputs::default() })
    }
}

/// The size of a body that can be replayed: known and small enough ([`MAX_REPLAY`], or what
/// `buffer` read).
pub(crate) fn replayable_size(parts: &http::request::Parts) -> Option<u64> {
    let headers: &HeaderMap = &parts.headers;
    if headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    let limit = parts.extensions.get::<super::buffer::Buffered>().map_or(MAX_REPLAY, |b| b.0.max(MAX_REPLAY));
    match headers.get(CONTENT_LENGTH) {
        None => Some(0),
        Some(v) => v.to_str().ok()?.trim().parse::<u64>().ok().filter(|n| *n <= limit),
    }
}
