//! The few Envoy protobuf messages the remote policies speak, written by hand (field numbers
//! from Envoy's `.proto` files; no code generation). Public for the test kit's servers.

pub mod auth;
pub mod ratelimit;

use std::collections::HashMap;

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `google.protobuf.UInt64Value`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct UInt64Value {
    #[prost(uint64, tag = "1")]
    pub value: u64,
}

/// `envoy.config.core.v3.HeaderValue`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct HeaderValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
    /// Used instead of `value` when not empty.
    #[prost(bytes = "vec", tag = "3")]
    pub raw_value: Vec<u8>,
}

impl HeaderValue {
    pub fn new(key: &str, value: &str) -> HeaderValue {
        HeaderValue { key: key.into(), value: value.into(), raw_value: Vec::new() }
    }

    /// As an HTTP header; `None` when the name or value is not valid in HTTP.
    pub fn to_http(&self) -> Option<(http::HeaderName, http::HeaderValue)> {
        let name = http::HeaderName::from_bytes(self.key.as_bytes()).ok()?;
        let value = if self.raw_value.is_empty() {
            http::HeaderValue::from_str(&self.value).ok()?
        } else {
            http::HeaderValue::from_bytes(&self.raw_value).ok()?
        };
        Some((name, value))
    }
}

/// `google.protobuf.Struct`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Struct {
    #[prost(map = "string, message", tag = "1")]
    pub fields: HashMap<String, Value>,
}

/// `google.protobuf.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(int32, tag = "1")]
    Null(i32),
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
    #[prost(message, tag = "5")]
    Struct(Struct),
    #[prost(message, tag = "6")]
    List(ListValue),
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// Deepest nesting converted between JSON and `Struct` (deeper parts become null).
const MAX_DEPTH: usize = 32;

impl Struct {
    /// A JSON object as a `Struct` (`None` for anything else).
    pub fn from_json(v: &serde_json::Value) -> Option<Struct> {
        match value_from_json(v, 0).kind {
            Some(Kind::Struct(s)) => Some(s),
            _ => None,
        }
    }

    /// As a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        struct_to_json(self, 0)
    }
}

fn value_from_json(v: &serde_json::Value, depth: usize) -> Value {
    use serde_json::Value as J;
    let kind = match v {
        _ if depth > MAX_DEPTH => Kind::Null(0),
        J::Null => Kind::Null(0),
        J::Bool(b) => Kind::Bool(*b),
        J::Number(n) => Kind::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Kind::String(s.clone()),
        J::Array(a) => Kind::List(ListValue { values: a.iter().map(|v| value_from_json(v, depth + 1)).collect() }),
        J::Object(o) => {
            Kind::Struct(Struct { fields: o.iter().map(|(k, v)| (k.clone(), value_from_json(v, depth + 1))).collect() })
        }
    };
    Value { kind: Some(kind) }
}

fn struct_to_json(s: &Struct, depth: usize) -> serde_json::Value {
    serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), value_to_json(v, depth + 1))).collect())
}

fn value_to_json(v: &Value, depth: usize) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.kind {
        _ if depth > MAX_DEPTH => J::Null,
        None | Some(Kind::Null(_)) => J::Null,
        Some(Kind::Bool(b)) => J::Bool(*b),
        // Whole numbers read back as integers (a `Struct` has only doubles).
        Some(Kind::Number(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => J::from(*n as i64),
        Some(Kind::Number(n)) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Some(Kind::String(s)) => J::String(s.clone()),
        Some(Kind::List(l)) => J::Array(l.values.iter().map(|v| value_to_json(v, depth + 1)).collect()),
        Some(Kind::Struct(s)) => struct_to_json(s, depth),
    }
}
