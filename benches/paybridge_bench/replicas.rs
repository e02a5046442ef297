//! Scale-out: 1, 2 and 3 `paybridge run` processes in one group (`[cluster]`) draining the
//! same RippleNet NEW and Checkout backlogs. Timed by the sandbox, from the first read of
//! either provider to the last acknowledgement of either.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::running::{in_batches, request_times, until};
use crate::setup::{self, Topics};
use crate::support::Broker;
use crate::support::process::Paybridge;

/// One setup's drain.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplicaRun {
    pub processes: usize,
    /// Notifications per provider.
    pub backlog: usize,
    pub events_per_s: f64,
    /// Events each process published (its share).
    pub published: Vec<u64>,
}

pub async fn run(broker: &Broker, processes: usize, backlog: usize) -> ReplicaRun {
    let keys = crate::support::keys::rsa_keys();
    let sb = crate::support::checkout::sandbox(&keys).await;
    in_batches(backlog, 10_000, |batch| sb.create(batch)).await;
    in_batches(backlog, 1000, |batch| crate::support::checkout::create(&sb, batch, None)).await;
    let topics = Topics::new(broker, &format!("bench-replicas-{processes}"));
    let coordination = broker.new_topic(&format!("bench-replicas-{processes}-cluster"), 12);
    let group = crate::support::unique_topic("bench-replicas");
    let cluster = format!("\n[cluster]\ngroup_id = \"{group}\"\ntopic = \"{coordination}\"\n");
    let sections = [cluster, setup::ripplenet(&sb, ""), setup::checkout(&sb, &keys.private_file.display().to_string())];
    let config = setup::bridge_config(broker, &topics, None, &sections);
    let bridges: Vec<Paybridge> = (0..processes).map(|_| Paybridge::spawn_default_log(&config)).collect();
    let limit = Duration::from_secs(120 + backlog as u64 / 50);
    until("both backlogs acknowledged", limit, || async {
        crate::support::ripplenet::acked(&sb).await >= backlog as u64
            && crate::support::checkout::unacked(&sb).await == 0
    })
    .await;
    let first = earliest(&[
        request_times(&sb, "ripplenet", "ripplenet.poll_new").await,
        request_times(&sb, "checkout", "checkout.receive").await,
    ]);
    let last = latest(&[
        request_times(&sb, "ripplenet", "ripplenet.ack_batch").await,
        request_times(&sb, "checkout", "checkout.ack").await,
    ]);
    let published =
        bridges.iter().map(|b| crate::support::metric_sum(b.admin_port, "paybridge_events_published_total{")).collect();
    drop(bridges);
    ReplicaRun {
        processes,
        backlog,
        events_per_s: (2 * backlog) as f64 / ((last - first).max(1) as f64 / 1e3),
        published,
    }
}

/// The earliest time (ms) of several request-time series; 0 when all are empty.
fn earliest(series: &[Vec<i64>]) -> i64 {
    series.iter().filter_map(|s| s.first().copied()).min().unwrap_or_default()
}

/// The latest time (ms) of several request-time series; 0 when all are empty.
fn latest(series: &[Vec<i64>]) -> i64 {
    series.iter().filter_map(|s| s.last().copied()).max().unwrap_or_default()
}
