//! The one body type used on both sides of the relay, and bounded reading.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use http_body::Body as HttpBody;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use prometheus_client::metrics::gauge::Gauge;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response or request body: buffered or streamed.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("body could not be read: {0}")]
    Io(BoxError),
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ReadError::TooLarge { limit }),
        Err(e) => Err(ReadError::Io(e)),
    }
}

/// A request body that was too slow (the gateway's body time-out): the error a body reader
/// sees, so that the relay can answer 408.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request body timed out")]
pub struct BodyTimedOut;

/// The gateway-wide [`Budget`] ran out during a read (carried in [`ReadError::Io`]).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the gateway's request-body buffer is full")]
pub struct OverBudget;

/// Bytes of request bodies that may be buffered at once, shared by every request of a gateway:
/// many clients sending large bodies together cannot make it run out of memory.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    gauge: Gauge,
}

impl Budget {
    /// `gauge` follows the bytes held.
    pub fn new(limit: usize, gauge: Gauge) -> Budget {
        Budget { limit, used: AtomicUsize::new(0), gauge }
    }

    /// Bytes not held by any request now.
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.used.load(Ordering::Relaxed))
    }

    fn take(&self, n: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if taken {
            self.gauge.inc_by(n as i64);
        }
        taken
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
        self.gauge.dec_by(n as i64);
    }
}

/// Bytes held from a [`Budget`] by one read; given back when the read ends, however it ends.
struct Reservation<'a> {
    budget: &'a Budget,
    held: usize,
}

impl Reservation<'_> {
    fn grow(&mut self, n: usize) -> bool {
        let ok = self.budget.take(n);
        if ok {
            self.held += n;
        }
        ok
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

/// [`read_limited`], holding each frame's bytes from `budget` as it arrives ([`OverBudget`]
/// when it runs out).
pub async fn read_budgeted<B>(body: B, limit: usize, budget: &Budget) -> Result<Bytes, ReadError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut held = Reservation { budget, held: 0 };
    // A body that arrives in one frame (the usual small MCP request) is not copied.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|e| ReadError::Io(e.into()))?.into_data() else {
            continue;
        };
        len += data.len();
        if len > limit {
            return Err(ReadError::TooLarge { limit });
        }
        if !held.grow(data.len()) {
            return Err(ReadError::Io(Box::new(OverBudget)));
        }
        match (first.take(), &mut joined) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                // Sized from what the body announces, never beyond the limit; the first frame
                // is copied in and let go.
                let expected = usize::try_from(body.size_hint().lower()).unwrap_or(limit).saturating_add(len);
                let mut all = BytesMut::with_capacity(expected.min(limit));
                all.extend_from_slice(&f);
                all.extend_from_slice(&data);
                joined = Some(all);
            }
            (_, Some(all)) => all.extend_from_slice(&data),
        }
    }
    Ok(match joined {
        Some(all) => all.freeze(),
        None => first.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> {
        let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
            parts.iter().map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes())))).collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_budgeted_read_holds_bytes_only_while_it_runs() {
        let gauge = Gauge::default();
        let budget = Budget::new(10, gauge.clone());
        let read = read_budgeted(chunks(&["abc", "def"]), 100, &budget).await.unwrap();
        assert_eq!(read, "abcdef");
        assert_eq!((budget.available(), gauge.get()), (10, 0), "given back after the read");

        let over = read_budgeted(chunks(&["abcdef", "ghijkl"]), 100, &budget).await;
        assert!(matches!(over, Err(ReadError::Io(e)) if e.is::<OverBudget>()));
        assert_eq!((budget.available(), gauge.get()), (10, 0), "given back after a failure");

        assert!(matches!(
            read_budgeted(chunks(&["abcdef", "ghijkl"]), 8, &budget).await,
            Err(ReadError::TooLarge { limit: 8 })
        ));
    }
}
