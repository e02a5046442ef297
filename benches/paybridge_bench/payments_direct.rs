//! Payments Direct: the cursor search draining one window of payments (pages of 100, each
//! page's events committed, then its position). Timed from /readyz 200 to the last event
//! the broker confirmed (paybridge's own counter, read every 20 ms).

use std::time::{Duration, Instant};

use paybridge_sandbox::Scenario;

use crate::measure;
use crate::running::{PollRun, Running, calls, calls_since, in_batches, until};
use crate::setup::{self, Topics};
use crate::support::Broker;
use crate::support::sandbox::Sandbox;

pub async fn poll_run(broker: &Broker, backlog: usize) -> PollRun {
    let sb = Sandbox::start(Scenario::default()).await;
    in_batches(backlog, 1000, |batch| sb.pd_create(batch)).await;
    drain(broker, sb, backlog, "payments_direct").await
}

/// A backlog of `events` states: payments that each went INITIATED → VALIDATING →
/// TRANSFERRING → COMPLETED before the search first shows them, so every one of them needs
/// its history read (the three states before COMPLETED).
pub async fn lifecycles_run(broker: &Broker, events: usize) -> PollRun {
    let sb = Sandbox::start(Scenario::default()).await;
    let payments = (events / 4).max(1);
    in_batches(payments, 1000, |batch| sb.pd_create(batch)).await;
    for _ in 0..3 {
        let moved = sb.control("/_sandbox/payments_direct/advance", serde_json::json!({"failure_rate": 0.0})).await;
        assert!(moved.is_success(), "advance: {moved}");
    }
    drain(broker, sb, payments * 4, crate::report::LIFECYCLES).await
}

/// Starts paybridge on the sandbox's payments and times it until `backlog` events are
/// confirmed.
async fn drain(broker: &Broker, sb: Sandbox, backlog: usize, label: &str) -> PollRun {
    let sample = setup::payments_direct_sample(&sb).await;
    let before = calls(&sb, "payments_direct").await;
    // Past the 1 s safety lag, so the whole backlog is in the first window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let topics = Topics::new(broker, "bench-pd");
    let section = setup::payments_direct(&sb);
    let run = Running::start(&setup::bridge_config(broker, &topics, None, &[section]), broker.pid());
    let ready = Instant::now();
    let admin = run.bridge.admin_port;
    let limit = Duration::from_secs(120 + backlog as u64 / 100);
    until("Payments Direct backlog published", limit, || async move {
        measure::counter(&measure::metrics(admin), "paybridge_events_published_total", "pd") >= backlog as f64
    })
    .await;
    let took = ready.elapsed();
    let calls = calls_since(&sb, "payments_direct", &before).await;
    let process = run.finish(backlog, "pd");
    PollRun {
        source: label.into(),
        backlog,
        capacity: paybridge::config::PipelineConfig::default().capacity,
        events_per_s: backlog as f64 / took.as_secs_f64(),
        calls_per_event: calls.values().sum::<usize>() as f64 / backlog as f64,
        calls,
        event_bytes: sample.value.len(),
        process,
        ..PollRun::default()
    }
}
