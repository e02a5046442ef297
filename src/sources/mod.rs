//! Notification sources: each polls (or is called by) one provider, submits normalized
//! events to the pipeline, and acknowledges upstream only what the broker confirmed.

pub mod checkout;
pub mod payments_direct;
pub mod ripplenet;
pub mod runtime;
pub mod start;
pub mod webhook;
pub mod webhook_pace;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::pipeline::Submitter;
use crate::sink::kafka::KafkaSink;

/// What every source gets from the bridge.
#[derive(Clone)]
pub struct SourceContext {
    pub submitter: Submitter,
    /// For poison payloads that cannot become events (DLQ).
    pub sink: KafkaSink,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Cancelled when the bridge stops: pollers finish their current batch and exit.
    pub stop: CancellationToken,
}

/// Sleeps `duration`, or less when `stop` is cancelled. True when stopped.
pub async fn pause(stop: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(duration) => stop.is_cancelled(),
    }
}
