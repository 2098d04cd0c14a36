//! `requestMirror`: a copy of a share of the requests goes to another `host:` backend, in a
//! task of its own; its answer is read and dropped. The client's request never waits for the
//! mirror and never sees its failures. Copies carry the body when it is small and its size is
//! known (see [`super::retry::replayable_size`]), else they go without one. At most
//! [`MAX_IN_FLIGHT`] copies per route are on their way at once; more are skipped, so a slow
//! mirror cannot pile up work.

use std::sync::Arc;
use std::time::Duration;

use agw_config::FieldPath;
use agw_config::model;
use agw_http::HttpClient;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, HeaderValue};
use http::request::Parts;
use http::{Request, Uri};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use super::Compiler;

/// Most mirrored requests of one route on their way at once.
pub(crate) const MAX_IN_FLIGHT: usize = 64;
/// How long a mirrored request may take, answer included.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Mirror {
    authority: http::uri::Authority,
    share: f64,
    in_flight: Arc<Semaphore>,
}

impl Mirror {
    pub(crate) fn resolve(at: &FieldPath, m: &model::RequestMirror, c: &mut Compiler<'_>) -> Option<Mirror> {
        let Ok(authority) = m.backend.host.parse::<http::uri::Authority>() else {
            c.err(at.key("backend").key("host"), format!("`{}` is not `host:port`", m.backend.host));
            return None;
        };
        Some(Mirror {
            authority,
            share: m.percentage.clamp(0.0, 1.0),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Whether this request is mirrored (drawn by its share).
    pub(crate) fn fires(&self) -> bool {
        self.share >= 1.0 || (self.share > 0.0 && agw_policy::random::unit() < self.share)
    }

    /// Sends a copy of the request (`body`: its bytes, or `None` to send it without one).
    pub(crate) fn send(&self, client: &HttpClient, parts: &Parts, body: Option<Bytes>) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::debug!(mirror = %self.authority, "mirror busy; copy skipped");
            return;
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = Uri::builder().scheme("http").authority(self.authority.clone()).path_and_query(path).build()
        else {
            return;
        };
        let mut req = Request::new(agw_http::body::full(body.clone().unwrap_or_default()));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = parts.headers.clone();
        crate::backend::strip_hop_by_hop(req.headers_mut());
        req.headers_mut().remove(CONTENT_LENGTH);
        if let Some(b) = &body {
            req.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(b.len()));
        }
        if let Ok(host) = HeaderValue::from_str(self.authority.as_str()) {
            req.headers_mut().insert(HOST, host);
        }
        let client = client.clone();
        let authority = self.authority.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let sent = tokio::time::timeout(MIRROR_TIMEOUT, async {
                let resp = client.send(req).await?;
                // Read the answer so the connection can be used again; its content is dropped.
                let _ = resp.into_body().collect().await;
                Ok::<(), agw_http::SendError>(())
            })
            .await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(mirror = %authority, error = %e, "mirrored request failed"),
                Err(_) => tracing::debug!(mirror = %authority, "mirrored request timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(share: f64) -> Mirror {
        Mirror { authority: "m:1".parse().unwrap(), share, in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)) }
    }

    #[test]
    fn the_share_of_requests_mirrored_is_drawn_per_request() {
        let m = mirror(0.3);
        let fired = (0..10_000).filter(|_| m.fires()).count();
        // Binomial(10000, 0.3): standard deviation 46; ±250 is over 5 deviations.
        assert!((2_750..=3_250).contains(&fired), "{fired}");
        assert_eq!((0..1000).filter(|_| mirror(0.0).fires()).count(), 0);
        assert_eq!((0..1000).filter(|_| mirror(1.0).fires()).count(), 1000);
    }
}
