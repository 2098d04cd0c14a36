//! `delay`: latency injected before the request goes on (fault injection). It counts against
//! the route's `requestTimeout`: a delay that would pass the deadline ends the request with 504
//! at the deadline.

use std::time::Duration;

use agw_config::FieldPath;
use agw_config::model::{self, Delay as RawDelay};
use agw_policy::expr::{Expression, Inputs};
use tokio::time::Instant;

use super::Compiler;
use crate::error::GatewayError;

/// Longest delay injected (a longer result is cut to it).
const MAX_DELAY: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub(crate) enum Delay {
    Fixed(Duration),
    Computed(Expression),
}

impl Delay {
    pub(crate) fn resolve(at: &FieldPath, d: &RawDelay, c: &mut Compiler<'_>) -> Option<Delay> {
        // A duration string (`2s`) is the plain form; anything else is CEL.
        if let Ok(fixed) = model::Duration::parse(&d.duration) {
            if fixed.get() > MAX_DELAY {
                c.err(at.key("duration"), "at most 1h");
            }
            return Some(Delay::Fixed(fixed.get()));
        }
        c.expression(&at.key("duration"), &d.duration).map(Delay::Computed)
    }

    /// How long this request waits (`None`: not at all).
    pub(crate) fn of(&self, inputs: &Inputs) -> Option<Duration> {
        let d = match self {
            Delay::Fixed(d) => Some(*d).filter(|d| !d.is_zero()),
            Delay::Computed(e) => e.eval_duration(inputs),
        };
        d.map(|d| d.min(MAX_DELAY))
    }

    /// Waits, unless the route's deadline comes first.
    pub(crate) async fn wait(&self, inputs: &Inputs, deadline: Option<Instant>) -> Result<(), GatewayError> {
        let Some(d) = self.of(inputs) else { return Ok(()) };
        let until = Instant::now() + d;
        match deadline {
            Some(deadline) if deadline < until => {
                tokio::time::sleep_until(deadline).await;
                Err(GatewayError::RequestTimeout)
            }
            _ => {
                tokio::time::sleep_until(until).await;
                Ok(())
            }
        }
    }
}
