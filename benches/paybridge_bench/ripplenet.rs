//! RippleNet: the poll path draining a backlog (including the batch acknowledgements), at
//! default settings or another `pipeline.capacity`.

use std::time::Duration;

use paybridge_sandbox::Scenario;

use crate::running::{PollRun, Running, calls, calls_since, in_batches, request_times, until};
use crate::setup::{self, Topics};
use crate::support::Broker;
use crate::support::sandbox::Sandbox;

/// A fresh sandbox with `backlog` NEW notifications; `paybridge run` (one RippleNet source)
/// drains it. Timed by the sandbox, from the first NEW read to the last acknowledgement.
/// RippleNet's default `page_size`.
const DEFAULT_PAGE_SIZE: usize = 100;

pub async fn poll_run(broker: &Broker, backlog: usize, capacity: Option<usize>) -> PollRun {
    let sb = Sandbox::start(Scenario::default()).await;
    let uuids = in_batches(backlog, 10_000, |batch| sb.create(batch)).await;
    let sample = setup::ripplenet_sample(&sb, &uuids[0]).await;
    let before = calls(&sb, "ripplenet").await;
    let topics = Topics::new(broker, "bench-rn");
    // The two pollers' pages must fit the pipeline (validation refuses 2 × page_size above
    // pipeline.capacity): a small capacity gets smaller pages.
    let page = match capacity {
        Some(capacity) if capacity < 2 * DEFAULT_PAGE_SIZE => format!("page_size = {}", (capacity / 2).max(1)),
        _ => String::new(),
    };
    let config = setup::bridge_config(broker, &topics, capacity, &[setup::ripplenet(&sb, &page)]);
    let run = Running::start(&config, broker.pid());
    let limit = Duration::from_secs(120 + backlog as u64 / 200);
    until("RippleNet backlog acknowledged", limit, || async {
        crate::support::ripplenet::acked(&sb).await >= backlog as u64
    })
    .await;
    let first_read = request_times(&sb, "ripplenet", "ripplenet.poll_new").await.first().copied().unwrap_or_default();
    let last_ack = request_times(&sb, "ripplenet", "ripplenet.ack_batch").await.last().copied().unwrap_or_default();
    let calls = calls_since(&sb, "ripplenet", &before).await;
    let process = run.finish(backlog, "rn");
    PollRun {
        source: "ripplenet".into(),
        backlog,
        capacity: capacity.unwrap_or(paybridge::config::PipelineConfig::default().capacity),
        events_per_s: backlog as f64 / ((last_ack - first_read).max(1) as f64 / 1e3),
        calls_per_event: calls.values().sum::<usize>() as f64 / backlog as f64,
        calls,
        event_bytes: sample.value.len(),
        process,
        ..PollRun::default()
    }
}
