//! RippleNet: the poll path draining a backlog (including the batch acknowledgements), at
//! default settings or another `pipeline.capacity`.

use std::time::{Duration, Instant};

use paybridge_sandbox::Scenario;
use tokio::task::JoinSet;

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

/// Pages paybridge has in flight by default (`pages_in_flight`).
const PAGES_IN_FLIGHT: usize = 8;

/// Notifications per second a raw client drains from a fresh sandbox holding `backlog` NEW
/// notifications, making paybridge's upstream calls and nothing else (no Kafka): one loop
/// reading NEW pages of 100 (each read flips them to SENT), each page acknowledged by one
/// batch call, up to [`PAGES_IN_FLIGHT`] acknowledgements at once. Timed by the sandbox,
/// from the first read to the last acknowledgement, as paybridge is.
pub async fn upstream_ceiling(backlog: usize) -> f64 {
    let sb = std::sync::Arc::new(Sandbox::start(Scenario::default()).await);
    in_batches(backlog, 10_000, |batch| sb.create(batch)).await;
    let token = sb.token().await;
    let read = format!("/v4/orchestration/payment/notification?status=NEW&size={DEFAULT_PAGE_SIZE}");
    let ack_url = sb.url("/v4/orchestration/payment/notification/ack");
    let mut acks: JoinSet<usize> = JoinSet::new();
    let (mut acked, started) = (0usize, Instant::now());
    while acked < backlog && started.elapsed() < Duration::from_secs(600) {
        while acks.len() >= PAGES_IN_FLIGHT {
            acked += acks.join_next().await.and_then(Result::ok).unwrap_or(0);
        }
        let page: serde_json::Value = sb.get(&token, &read).await.json().await.unwrap_or_default();
        let uuids: Vec<serde_json::Value> =
            page.as_array().map(|a| a.iter().map(|n| n["uuid"].clone()).collect()).unwrap_or_default();
        if uuids.is_empty() {
            break; // everything is read; what is left is acknowledgements in flight.
        }
        let (http, url, token) = (sb.http.clone(), ack_url.clone(), token.clone());
        acks.spawn(async move {
            let body = serde_json::json!({"uuids": uuids});
            let answer = http.put(&url).bearer_auth(&token).json(&body).send().await;
            let answer: serde_json::Value = match answer {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(e) => panic!("raw acknowledgement: {e}"),
            };
            answer["notification_ack_list"].as_array().map_or(0, Vec::len)
        });
    }
    while let Some(done) = acks.join_next().await {
        acked += done.unwrap_or(0);
    }
    assert_eq!(acked, backlog, "the raw client acknowledged the backlog");
    let first_read = request_times(&sb, "ripplenet", "ripplenet.poll_new").await.first().copied().unwrap_or_default();
    let last_ack = request_times(&sb, "ripplenet", "ripplenet.ack_batch").await.last().copied().unwrap_or_default();
    backlog as f64 / ((last_ack - first_read).max(1) as f64 / 1e3)
}
