//! The request-body guard: a body gets `requestBodyTimeout` from its start plus one second
//! per `requestBodyMinRate` bytes received (Apache `mod_reqtimeout` semantics). Most MCP bodies
//! arrive with the head and are read without ever being polled twice: a timer is only armed
//! when the body is not ready.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use agw_http::body::{BodyTimedOut, BoxError};
use agw_mcp::metrics::{CloseLabels, Metrics};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::Settings;

/// A client's request body, cut with [`BodyTimedOut`] when it is too slow.
pub(crate) struct GuardedBody {
    inner: Incoming,
    start: Instant,
    timeout: Duration,
    min_rate: u64,
    received: u64,
    timer: Option<(Pin<Box<Sleep>>, Instant)>,
    /// Set when the body was cut, for the answer to say so (408).
    tripped: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl GuardedBody {
    pub(crate) fn new(inner: Incoming, settings: &Settings, metrics: Arc<Metrics>) -> (GuardedBody, Arc<AtomicBool>) {
        let tripped = Arc::new(AtomicBool::new(false));
        let body = GuardedBody {
            inner,
            start: Instant::now(),
            timeout: settings.body_timeout,
            min_rate: settings.body_min_rate,
            received: 0,
            timer: None,
            tripped: tripped.clone(),
            metrics,
        };
        (body, tripped)
    }

    fn deadline(&self) -> Instant {
        let earned = match self.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.received as f64 / rate as f64),
        };
        self.start + self.timeout + earned
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.tripped.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline();
                let (timer, armed) =
                    this.timer.get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(deadline)), deadline));
                if *armed != deadline {
                    timer.as_mut().reset(deadline);
                    *armed = deadline;
                }
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.tripped.store(true, Ordering::Relaxed);
                this.metrics.connections_closed.get_or_create(&CloseLabels { reason: "body_timeout" }).inc();
                Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
