//! Relay errors and their one mapping to HTTP status and JSON-RPC error.

use std::time::Duration;

use http::StatusCode;

use crate::jsonrpc::{ErrorObject, ParseError, code};

/// What went wrong with a client's request, from the relay's point of view.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body could not be read")]
    BodyRead,
    #[error("invalid JSON-RPC: {0}")]
    Parse(#[from] ParseError),
    #[error("`initialize` must be sent on its own, not in a batch")]
    InitializeInBatch,
    #[error("Bad Request: Mcp-Session-Id header is required (send `initialize` first)")]
    SessionRequired,
    #[error("Session not found (it may have expired): send `initialize` to start a new one")]
    SessionUnknown,
    #[error("method not allowed: use POST, GET or DELETE")]
    MethodNotAllowed,
    #[error("Host or Origin header is not allowed (DNS rebinding protection)")]
    DnsRebinding,
    #[error("too many live sessions ({0}); try again later")]
    TooManySessions(usize),
    #[error("{0}")]
    Upstream(#[from] UpstreamFailure),
    #[error("request body was not received in time")]
    BodyTimeout,
    #[error("the gateway is buffering too many request bodies; try again later")]
    BodyBudget,
}

/// An upstream did not give a usable answer.
#[derive(Debug, thiserror::Error)]
#[error("upstream MCP server '{target}' {kind}")]
pub struct UpstreamFailure {
    pub target: String,
    pub kind: FailureKind,
}

/// How an upstream failed. The `Display` text is what the client is told; the detail strings
/// go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum FailureKind {
    #[error("is unreachable")]
    Connect(String),
    #[error("did not answer within {}", humanize(*.0))]
    Timeout(Duration),
    #[error("closed the connection before answering")]
    Io(String),
    #[error("answered with HTTP {0}")]
    Status(StatusCode),
    #[error("sent an invalid response")]
    Garbage(String),
    #[error("sent a message larger than {0} bytes")]
    TooLarge(usize),
    #[error("no longer knows this session; send `initialize` to start a new one")]
    SessionExpired,
}

impl FailureKind {
    /// Detail for the log (never shown to the client).
    pub fn detail(&self) -> Option<&str> {
        match self {
            FailureKind::Connect(d) | FailureKind::Io(d) | FailureKind::Garbage(d) => Some(d),
            FailureKind::Timeout(_)
            | FailureKind::Status(_)
            | FailureKind::TooLarge(_)
            | FailureKind::SessionExpired => None,
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

impl RelayError {
    /// The HTTP status used when the error answers the whole HTTP request.
    pub fn status(&self) -> StatusCode {
        match self {
            RelayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RelayError::BodyRead => StatusCode::BAD_REQUEST,
            RelayError::Parse(_) => StatusCode::BAD_REQUEST,
            RelayError::InitializeInBatch => StatusCode::BAD_REQUEST,
            RelayError::SessionRequired => StatusCode::BAD_REQUEST,
            RelayError::SessionUnknown => StatusCode::NOT_FOUND,
            RelayError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RelayError::DnsRebinding => StatusCode::FORBIDDEN,
            RelayError::TooManySessions(_) => StatusCode::SERVICE_UNAVAILABLE,
            RelayError::Upstream(f) => match f.kind {
                FailureKind::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                FailureKind::Connect(_)
                | FailureKind::Io(_)
                | FailureKind::Status(_)
                | FailureKind::Garbage(_)
                | FailureKind::TooLarge(_) => StatusCode::BAD_GATEWAY,
                FailureKind::SessionExpired => StatusCode::NOT_FOUND,
            },
            RelayError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            RelayError::BodyBudget => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON-RPC error object for this error.
    pub fn to_rpc(&self) -> ErrorObject {
        let code = match self {
            RelayError::BodyTooLarge { .. } => code::INVALID_REQUEST,
            RelayError::BodyRead => code::PARSE_ERROR,
            RelayError::Parse(e) => e.code(),
            RelayError::InitializeInBatch => code::INVALID_REQUEST,
            RelayError::SessionRequired => code::SERVER_ERROR,
            RelayError::SessionUnknown => code::SESSION_NOT_FOUND,
            RelayError::MethodNotAllowed => code::SERVER_ERROR,
            RelayError::DnsRebinding => code::SERVER_ERROR,
            RelayError::TooManySessions(_) => code::SERVER_ERROR,
            RelayError::Upstream(f) if matches!(f.kind, FailureKind::SessionExpired) => code::SESSION_NOT_FOUND,
            RelayError::Upstream(_) => code::INTERNAL_ERROR,
            RelayError::BodyTimeout => code::INVALID_REQUEST,
            RelayError::BodyBudget => code::SERVER_ERROR,
        };
        let data = match self {
            RelayError::Upstream(f) => Some(serde_json::json!({ "target": f.target })),
            _ => None,
        };
        ErrorObject { code, message: self.to_string(), data }
    }
}
