//! Gateway-level errors (before a backend is reached) and their one mapping to a response.
//! MCP errors are answered by the relay itself, as JSON-RPC.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use agw_http::body::{self, Body};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no listener for this host name")]
    NoListener,
    #[error("no route matches this request")]
    NoRoute,
    #[error("this connection's TLS server name is for another host: open a new connection for this one")]
    MisdirectedRequest,
    #[error("upstream is unreachable")]
    UpstreamConnect,
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    #[error("upstream failed")]
    UpstreamFailed,
    #[error("gateway is shutting down")]
    ShuttingDown,
    #[error("the request is not allowed by the authorization rules")]
    Forbidden,
    #[error("request path refused: {0}")]
    BadPath(#[from] crate::path::PathError),
    #[error("request body was not received in time")]
    RequestBodyTimeout,
    #[error("{}", .0.public())]
    OAuth(#[from] crate::oauth::OAuthError),
    #[error("rate limit exceeded; retry later")]
    RateLimited,
    #[error("the rate-limit service could not be asked; retry later")]
    RateLimitUnavailable,
    #[error("the request did not complete within the route's requestTimeout")]
    RequestTimeout,
    #[error("the route's traffic policy cannot be applied to this request")]
    PolicyFailed,
    #[error("the request body could not be read")]
    BadRequestBody,
    #[error("the request body is larger than this route accepts")]
    BodyTooLarge,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::NoListener | GatewayError::NoRoute => StatusCode::NOT_FOUND,
            GatewayError::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            GatewayError::UpstreamConnect | GatewayError::UpstreamFailed => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Forbidden => StatusCode::FORBIDDEN,
            GatewayError::BadPath(_) => StatusCode::BAD_REQUEST,
            GatewayError::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::OAuth(e) => e.status(),
            GatewayError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            // As agentgateway answers with `failureMode: failClosed`.
            GatewayError::RateLimitUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::RequestTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::PolicyFailed => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::BadRequestBody => StatusCode::BAD_REQUEST,
            GatewayError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// A short JSON body: `{"error": "..."}`; never internal detail.
    pub fn into_response(self) -> Response<Body> {
        let text = serde_json::json!({ "error": self.to_string() }).to_string();
        let mut r = Response::new(body::full(text));
        *r.status_mut() = self.status();
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}
