//! Checkout: receive (autoAck=false) → Kafka → ack by messageIdentifier, draining a backlog
//! at default settings. Timed by the sandbox, from the first receive to the last ack.

use std::time::Duration;

use crate::running::{PollRun, Running, calls, in_batches, request_times, until};
use crate::setup::{self, Topics};
use crate::support::Broker;

pub async fn poll_run(broker: &Broker, backlog: usize) -> PollRun {
    let keys = crate::support::keys::rsa_keys();
    let sb = crate::support::checkout::sandbox(&keys).await;
    in_batches(backlog, 1000, |batch| crate::support::checkout::create(&sb, batch, None)).await;
    let topics = Topics::new(broker, "bench-co");
    let section = setup::checkout(&sb, &keys.private_file.display().to_string());
    let run = Running::start(&setup::bridge_config(broker, &topics, None, &[section]), broker.pid());
    let limit = Duration::from_secs(120 + backlog as u64 / 100);
    until("Checkout backlog acknowledged", limit, || async { crate::support::checkout::unacked(&sb).await == 0 }).await;
    let receives = request_times(&sb, "checkout", "checkout.receive").await;
    let acks = request_times(&sb, "checkout", "checkout.ack").await;
    let span = acks.last().copied().unwrap_or_default() - receives.first().copied().unwrap_or_default();
    let calls = calls(&sb, "checkout").await;
    let process = run.finish(backlog, "co");
    PollRun {
        source: "checkout".into(),
        backlog,
        capacity: paybridge::config::PipelineConfig::default().capacity,
        events_per_s: backlog as f64 / (span.max(1) as f64 / 1e3),
        calls_per_event: calls.values().sum::<usize>() as f64 / backlog as f64,
        calls,
        event_bytes: setup::checkout_sample().value.len(),
        process,
        ..PollRun::default()
    }
}
