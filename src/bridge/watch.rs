//! What watches a running bridge in the background: the brokers' reachability for
//! `/readyz`, the sink's refusals for readiness and the alert metrics, and during shutdown
//! whether the brokers are gone.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::sink::kafka::KafkaSink;

/// How often the broker's metadata is checked for /readyz.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Metadata requests in a row the brokers must leave unanswered during shutdown before it
/// stops waiting for confirmations (about a second each).
const BROKER_GONE_PROBES: u32 = 3;

/// Cancels `gone` once the brokers have not answered [`BROKER_GONE_PROBES`] metadata
/// requests in a row (each given at most a second).
pub(super) async fn watch_brokers_gone(sink: KafkaSink, gone: CancellationToken) {
    let mut misses = 0;
    while misses < BROKER_GONE_PROBES {
        let probe = sink.clone();
        let started = tokio::time::Instant::now();
        let answered = tokio::task::spawn_blocking(move || probe.metadata_reachable(Duration::from_secs(1)))
            .await
            .unwrap_or(false);
        misses = if answered { 0 } else { misses + 1 };
        // A refused connection fails at once: probe about once a second either way.
        tokio::time::sleep_until(started + Duration::from_secs(1)).await;
    }
    gone.cancel();
}

/// Marks the broker reachable in `health` whenever it answers a metadata request.
pub(super) async fn check_broker(sink: KafkaSink, health: Arc<Health>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(BROKER_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = sink.clone();
        let reachable =
            tokio::task::spawn_blocking(move || probe.metadata_reachable(BROKER_CHECK_INTERVAL)).await.unwrap_or(false);
        if reachable {
            health.broker_reachable();
        } else {
            tracing::warn!("Kafka brokers did not answer a metadata request");
        }
    }
}

/// Keeps readiness and the alert metrics in step with the sink's refusals (a topic that
/// refuses records, open DLQ breakers) until `stop`.
pub(super) async fn follow_refusals(
    sink: KafkaSink,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut state = sink.refusals().subscribe();
    let mut open: Vec<String> = Vec::new();
    loop {
        let current = state.borrow_and_update().clone();
        health.set_refusal(current.reason());
        metrics.topic_refusing(current.topic.is_some());
        let now_open: Vec<String> = current.breakers.iter().map(|(source, _)| source.clone()).collect();
        for closed in open.iter().filter(|s| !now_open.contains(s)) {
            metrics.dlq_breaker(closed, false);
        }
        for source in &now_open {
            metrics.dlq_breaker(source, true);
        }
        open = now_open;
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}
