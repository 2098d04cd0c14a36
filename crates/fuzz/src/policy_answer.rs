//! Answers of remote policy services (`remoteRateLimit`'s `RateLimitResponse`, `extAuthz`'s
//! `CheckResponse`), as the gateway reads them: the gRPC frame, the protobuf message, then
//! what is taken from it (headers, metadata as JSON). A service is trusted to decide, not to
//! be well-formed.

use agw_gateway::envoy::auth::CheckResponse;
use agw_gateway::envoy::ratelimit::RateLimitResponse;
use agw_gateway::grpc;
use prost::Message;

pub fn policy_answer(data: &[u8]) {
    let Ok(message) = grpc::unframe(bytes::Bytes::copy_from_slice(data)) else { return };
    assert!(message.len() <= grpc::MAX_MESSAGE);
    if let Ok(r) = RateLimitResponse::decode(message.clone()) {
        for h in r.response_headers_to_add.iter().chain(&r.request_headers_to_add) {
            let _ = h.to_http();
        }
    }
    if let Ok(c) = CheckResponse::decode(message) {
        if let Some(m) = &c.dynamic_metadata {
            let json = m.to_json();
            assert!(json.is_object());
            // What comes back as JSON goes back as a Struct.
            assert!(agw_gateway::envoy::Struct::from_json(&json).is_some());
        }
        let denied = c.denied_response.iter().flat_map(|d| &d.headers);
        let ok = c.ok_response.iter().flat_map(|o| o.headers.iter().chain(&o.response_headers_to_add));
        for h in denied.chain(ok) {
            let _ = h.header.as_ref().and_then(|h| h.to_http());
            let _ = h.appends();
        }
    }
}
