//! What the cursor stage needs from the layers above it, as traits they implement: a way to
//! publish a page's events (the pipeline) and the tenure that may write (the cluster gate).
//! The sink never imports those layers.

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::ack::{BatchOutcome, Outcome};
use crate::event::CanonicalEvent;

/// The publisher no longer accepts batches (it is shutting down).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline is shutting down and accepts no more batches")]
pub struct PipelineClosed;

/// Publishes events and reports their outcomes (implemented by the pipeline's submitter).
pub trait Publisher: Send + Sync {
    /// Publishes `events` of `source`; resolves once every one is settled or retried.
    fn publish<'a>(
        &'a self,
        source: &'a str,
        events: Vec<CanonicalEvent>,
    ) -> BoxFuture<'a, Result<BatchOutcome, PipelineClosed>>;

    /// Counts `events`, resolved outside the publisher (a transaction's page), as the
    /// publisher counts its own.
    fn resolved_elsewhere(&self, source: &str, events: &[CanonicalEvent], outcomes: &[Outcome], latency: Duration);
}

/// Whether a task's tenure may still write (implemented by the cluster's fence; absent
/// without `[cluster]`).
pub trait Tenure: Send + Sync {
    /// True while the tenure owns the task or is releasing it; false once lost.
    fn may_write(&self) -> bool;
}
