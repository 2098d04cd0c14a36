//! Calls from the gateway to the identity provider: bounded in time and size, at most a few
//! at once per route, and the metadata document cached. Every URL here was derived from the
//! configured issuer when the config was loaded; requests only choose which one.

use std::sync::Arc;
use std::time::Duration;

use agw_http::HttpClient;
use agw_http::body::{self, Body};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::OAuthError;

/// Time for one call to the provider, from connecting to the last byte of the answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest metadata document accepted from the provider.
pub const MAX_METADATA_BYTES: usize = 256 << 10;
/// Largest answer relayed from the provider's registration or token endpoint.
pub const MAX_RELAYED_BYTES: usize = 64 << 10;
/// How long a fetched metadata document is served from the cache.
pub const METADATA_TTL: Duration = Duration::from_secs(300);
/// How long a failed fetch is remembered: a flood of metadata requests while the provider is
/// down costs it one request per this interval.
pub const FAILURE_TTL: Duration = Duration::from_secs(5);
/// Calls to the provider in flight at once, per route; more are answered 503.
pub const MAX_CALLS: usize = 16;

/// A provider's answer, read in full (bounded).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// The provider's endpoints for one route, with their client and limits.
#[derive(Debug)]
pub struct Upstream {
    client: HttpClient,
    calls: Semaphore,
    metadata_url: Option<Uri>,
    cache: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    doc: Result<Arc<Map<String, Value>>, OAuthError>,
}

impl Upstream {
    pub fn new(client: HttpClient, metadata_url: Option<Uri>) -> Upstream {
        Upstream { client, calls: Semaphore::new(MAX_CALLS), metadata_url, cache: Mutex::new(None) }
    }

    /// The provider's metadata: from the cache, or fetched by one caller while the others
    /// wait for it.
    pub async fn metadata(&self) -> Result<Arc<Map<String, Value>>, OAuthError> {
        let Some(url) = &self.metadata_url else { return Err(OAuthError::NoMetadata) };
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            let ttl = if c.doc.is_ok() { METADATA_TTL } else { FAILURE_TTL };
            if c.at.elapsed() < ttl {
                return c.doc.clone();
            }
        }
        let doc = self.fetch_metadata(url).await.map(Arc::new);
        if let Err(e) = &doc {
            warn!(url = %agw_config::redact::url(&url.to_string()), error = %e, "authorization server metadata fetch failed");
        }
        *cache = Some(Cached { at: Instant::now(), doc: doc.clone() });
        doc
    }

    async fn fetch_metadata(&self, url: &Uri) -> Result<Map<String, Value>, OAuthError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(url.clone())
            .header(ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|e| OAuthError::Upstream(e.to_string()))?;
        let answer = self.call(req, MAX_METADATA_BYTES).await?;
        if !answer.status.is_success() {
            return Err(OAuthError::UpstreamStatus(answer.status.as_u16()));
        }
        match serde_json::from_slice(&answer.body) {
            Ok(Value::Object(map)) => {
                debug!(url = %agw_config::redact::url(&url.to_string()), "authorization server metadata fetched");
                Ok(map)
            }
            Ok(_) => Err(OAuthError::BadMetadata("not a JSON object")),
            Err(_) => Err(OAuthError::BadMetadata("not JSON")),
        }
    }

    /// POSTs `body` to `url` and reads the answer (at most [`MAX_RELAYED_BYTES`]).
    pub async fn post(
        &self,
        url: &Uri,
        content_type: &'static str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Answer, OAuthError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(CONTENT_TYPE, content_type)
            .header(ACCEPT, "application/json")
            .body(body::full(body))
            .map_err(|e| OAuthError::Upstream(e.to_string()))?;
        req.headers_mut().extend(headers);
        self.call(req, MAX_RELAYED_BYTES).await
    }

    /// One call, within the time limit and the per-route cap on calls in flight.
    async fn call(&self, req: Request<Body>, limit: usize) -> Result<Answer, OAuthError> {
        let Ok(_slot) = self.calls.try_acquire() else { return Err(OAuthError::Busy) };
        match self.client.fetch(req, limit, CALL_TIMEOUT).await {
            Ok(f) => Ok(Answer { status: f.status, content_type: f.headers.get(CONTENT_TYPE).cloned(), body: f.body }),
            Err(agw_http::FetchError::TooLarge(limit)) => Err(OAuthError::UpstreamTooLarge(limit)),
            Err(agw_http::FetchError::Timeout(_)) => Err(OAuthError::UpstreamTimeout),
            Err(e) => Err(OAuthError::Upstream(e.to_string())),
        }
    }
}
