//! The few Envoy protobuf messages the remote policies speak, written by hand (field numbers
//! from Envoy's `.proto` files; no code generation). Public for the test kit's servers.

pub mod ratelimit;

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
