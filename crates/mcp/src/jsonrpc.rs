//! Just enough JSON-RPC 2.0 to route and police MCP messages without re-encoding them.
//!
//! A message is read once into borrowed parts (`id`, `method`, `params` stay raw JSON); the
//! original bytes are what go upstream unless a policy has to change them.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Standard JSON-RPC error codes, plus the one MCP uses for missing resources.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined: used by MCP SDKs for "session required / not found".
    pub const SERVER_ERROR: i64 = -32000;
    /// Used by MCP SDKs when a session id is not (or no longer) known.
    pub const SESSION_NOT_FOUND: i64 = -32001;
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
}

/// What a message is, from its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// Keeps `"id": null` as a present (raw `null`) id instead of folding it into "absent".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// One parsed JSON-RPC message, borrowing from the body it came from.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The message exactly as received.
    pub raw: &'a RawValue,
    pub kind: Kind,
    /// The raw id (`1`, `"abc"`, …); `None` for notifications.
    pub id: Option<&'a RawValue>,
    pub method: Option<Cow<'a, str>>,
    pub params: Option<&'a RawValue>,
    pub result: Option<&'a RawValue>,
    pub error: Option<&'a RawValue>,
}

/// Why a body is not JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("not a JSON-RPC 2.0 message: {0}")]
    Invalid(&'static str),
    #[error("empty batch")]
    EmptyBatch,
    #[error("batch of more than {0} messages")]
    BatchTooLarge(usize),
}

impl ParseError {
    pub fn code(&self) -> i64 {
        match self {
            ParseError::Json(_) => code::PARSE_ERROR,
            ParseError::Invalid(_) | ParseError::EmptyBatch | ParseError::BatchTooLarge(_) => code::INVALID_REQUEST,
        }
    }
}

impl<'a> Message<'a> {
    pub fn parse(raw: &'a RawValue) -> Result<Message<'a>, ParseError> {
        let env: Envelope<'a> = serde_json::from_str(raw.get()).map_err(|e| ParseError::Json(e.to_string()))?;
        if env.jsonrpc.as_deref() != Some("2.0") {
            return Err(ParseError::Invalid("`jsonrpc` must be \"2.0\""));
        }
        let is_call = env.method.is_some();
        if is_call && env.id.is_some_and(|id| id.get() == "null") {
            // MCP forbids null ids; a JSON-RPC server would still run the call.
            return Err(ParseError::Invalid("`id` must not be null"));
        }
        let id = env.id.filter(|id| id.get() != "null");
        if let Some(id) = id {
            let text = id.get();
            let first = text.as_bytes().first().copied().unwrap_or(b' ');
            if !(first == b'"' || first == b'-' || first.is_ascii_digit()) {
                return Err(ParseError::Invalid("`id` must be a string or an integer"));
            }
            // `1.0` and `1e0` are the same id to most peers and a different one to a byte
            // comparison; MCP ids are strings or integers.
            if first != b'"' && text.contains(['.', 'e', 'E']) {
                return Err(ParseError::Invalid("`id` must be a string or an integer"));
            }
        }
        let kind = match (&env.method, env.result.is_some() || env.error.is_some()) {
            (Some(_), false) if id.is_some() => Kind::Request,
            (Some(_), false) => Kind::Notification,
            (None, true) => Kind::Response,
            (Some(_), true) => return Err(ParseError::Invalid("has both `method` and `result`")),
            (None, false) => return Err(ParseError::Invalid("has neither `method` nor `result`")),
        };
        Ok(Message {
            raw,
            kind,

            id: if kind == Kind::Response { env.id } else { id },
            method: env.method,
            params: env.params,
            result: env.result,
            error: env.error,
        })
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The string field `name` of `params` (tool and prompt names), if any.
    pub fn param_str(&self, field: &str) -> Option<String> {
        let params = self.params?;
        let map: std::collections::HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(params.get()).ok()?;
        let v = map.get(field)?;
        serde_json::from_str::<Cow<'_, str>>(v.get()).ok().map(Cow::into_owned)
    }
}

/// A request body: one message or a batch (protocol version 2025-03-26 allowed batches).
#[derive(Debug)]
pub struct Body<'a> {
    pub messages: Vec<Message<'a>>,
    pub batch: bool,
}

impl<'a> Body<'a> {
    /// A body from any peer (upstream answers may be batches of any length).
    pub fn parse(text: &'a str) -> Result<Body<'a>, ParseError> {
        Body::parse_limited(text, usize::MAX)
    }

    /// A client's request body: a batch of more than `max_batch` messages is refused as soon
    /// as the scan reaches message `max_batch + 1`, before any message is examined.
    pub fn parse_limited(text: &'a str, max_batch: usize) -> Result<Body<'a>, ParseError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') {
            let items = batch_items(text, max_batch)?;
            if items.is_empty() {
                return Err(ParseError::EmptyBatch);
            }
            let messages: Vec<Message<'a>> = items.into_iter().map(Message::parse).collect::<Result<_, _>>()?;
            // Compared as values, so `"a"` and `"\u0061"` are the same id (as they are to peers).
            let mut ids = std::collections::HashSet::new();
            for id in messages.iter().filter(|m| m.kind == Kind::Request).filter_map(|m| m.id) {
                let canonical = serde_json::from_str::<serde_json::Value>(id.get())
                    .map_or_else(|_| id.get().to_string(), |v| v.to_string());
                if !ids.insert(canonical) {
                    return Err(ParseError::Invalid("two requests of the batch have the same `id`"));
                }
            }
            Ok(Body { messages, batch: true })
        } else {
            let raw: &'a RawValue = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
            Ok(Body { messages: vec![Message::parse(raw)?], batch: false })
        }
    }

    pub fn requests(&self) -> impl Iterator<Item = &Message<'a>> {
        self.messages.iter().filter(|m| m.kind == Kind::Request)
    }
}

/// The raw items of a batch, refusing more than `max`.
fn batch_items(text: &str, max: usize) -> Result<Vec<&RawValue>, ParseError> {
    use serde::de::{Deserializer, Error as _, SeqAccess, Visitor};
    struct Items<'c> {
        max: usize,
        over: &'c std::cell::Cell<bool>,
    }
    impl<'de> Visitor<'de> for Items<'_> {
        type Value = Vec<&'de RawValue>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON-RPC batch")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<&'de RawValue>()? {
                if items.len() == self.max {
                    self.over.set(true);
                    return Err(A::Error::custom("batch too large"));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    let over = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let items = de.deserialize_seq(Items { max, over: &over }).and_then(|items| de.end().map(|()| items));
    items.map_err(|e| if over.get() { ParseError::BatchTooLarge(max) } else { ParseError::Json(e.to_string()) })
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    error: &'a ErrorObject,
}

/// Serialises an error response for `id` (`None` → `"id": null`).
pub fn error_response(id: Option<&RawValue>, error: &ErrorObject) -> Bytes {
    let null = RawValue::from_string("null".into()).expect("null is JSON");
    let resp = ErrorResponse { jsonrpc: "2.0", id: id.unwrap_or(&null), error };
    Bytes::from(serde_json::to_vec(&resp).expect("error responses serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Kind, ParseError> {
        Body::parse(text).map(|b| b.messages[0].kind)
    }

    #[test]
    fn classifies_messages() {
        assert_eq!(one(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), Ok(Kind::Request));
        assert_eq!(one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), Ok(Kind::Notification));
        assert_eq!(one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#), Ok(Kind::Response));
        assert_eq!(one(r#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"x"}}"#), Ok(Kind::Response));
        assert!(
            matches!(one(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#), Err(ParseError::Invalid(_))),
            "null request ids are refused"
        );
        assert_eq!(one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#), Ok(Kind::Response));
        for id in ["1.0", "1e0", "-0.5"] {
            assert!(
                matches!(one(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"x"}}"#)), Err(ParseError::Invalid(_))),
                "{id}"
            );
        }
        assert!(matches!(
            Body::parse(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":1,"method":"b"}]"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            Body::parse(r#"[{"jsonrpc":"2.0","id":"a","method":"a"},{"jsonrpc":"2.0","id":"\u0061","method":"b"}]"#),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn rejects_non_jsonrpc() {
        assert!(matches!(one("{"), Err(ParseError::Json(_))));
        assert!(matches!(one("nonsense"), Err(ParseError::Json(_))));
        assert!(matches!(one(r#"{"id":1,"method":"x"}"#), Err(ParseError::Invalid(_))));
        assert!(matches!(one(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#), Err(ParseError::Invalid(_))));
        assert!(matches!(one(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#), Err(ParseError::Invalid(_))));
        assert!(matches!(one(r#"{"jsonrpc":"2.0","id":1}"#), Err(ParseError::Invalid(_))));
        assert!(matches!(one(r#"{"jsonrpc":"2.0","id":1,"method":"x","result":1}"#), Err(ParseError::Invalid(_))));
        assert_eq!(Body::parse("[]").unwrap_err(), ParseError::EmptyBatch);
        assert!(matches!(one("[1]"), Err(ParseError::Json(_))));
    }

    #[test]
    fn oversized_batches_are_refused() {
        let msg = r#"{"jsonrpc":"2.0","method":"notifications/x"}"#;
        let batch = |n: usize| format!("[{}]", vec![msg; n].join(","));
        assert_eq!(Body::parse_limited(&batch(3), 3).unwrap().messages.len(), 3);
        assert_eq!(Body::parse_limited(&batch(4), 3).unwrap_err(), ParseError::BatchTooLarge(3));
        // Refused by count even when a later item is broken: the scan stops first.
        assert_eq!(
            Body::parse_limited(&format!("[{msg},{msg},{msg},{msg},garbage]"), 3).unwrap_err(),
            ParseError::BatchTooLarge(3)
        );
        assert!(matches!(Body::parse_limited("[1,2", 3), Err(ParseError::Json(_))));
        assert!(matches!(Body::parse_limited(&format!("{} x", batch(1)), 3), Err(ParseError::Json(_))));
    }

    #[test]
    fn batches_and_params() {
        let body = Body::parse(
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e\u0063ho","arguments":{}}},
                {"jsonrpc":"2.0","method":"notifications/cancelled"}]"#,
        )
        .unwrap();
        assert!(body.batch);
        assert_eq!(body.requests().count(), 1);
        assert_eq!(body.messages[0].param_str("name").as_deref(), Some("echo"));
        assert_eq!(body.messages[0].id.unwrap().get(), "1");
    }

    #[test]
    fn error_responses_serialise() {
        let id = RawValue::from_string("\"x\"".into()).unwrap();
        let err = ErrorObject { code: code::INTERNAL_ERROR, message: "boom".into(), data: None };
        assert_eq!(
            &error_response(Some(&id), &err)[..],
            br#"{"jsonrpc":"2.0","id":"x","error":{"code":-32603,"message":"boom"}}"#
        );
        assert_eq!(
            &error_response(None, &err)[..],
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"boom"}}"#
        );
    }
}
