//! With the broker down, submitting 10× the pipeline capacity blocks the submitters and
//! the process's memory stays under the bound docs/src/performance.md documents:
//! capacity × event size × 4, plus a fixed 64 MiB.
//! (Alone in its test binary, so no other test shares the process's memory.)

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use paybridge::metrics::Metrics;
use paybridge::pipeline::{Pipeline, PipelineSettings};
use paybridge::sink::kafka::KafkaSink;
use support::{Broker, kafka_config_with, ripplenet_event};

const CAPACITY: usize = 500;
const BATCH: usize = 50;
const PADDING: usize = 20_000;
const SUBMITTERS: usize = 10;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_capacity_blocks_submitters_and_memory_stays_bounded() {
    let mut broker = Broker::start_own();
    let topic = broker.new_topic("mem-events", 1);
    let dlq = broker.new_topic("mem-dlq", 1);
    let config = kafka_config_with(&broker, &topic, &dlq, "delivery_timeout = \"60s\"");
    let sink = KafkaSink::new(&config).unwrap_or_else(|e| panic!("{e}"));
    let pipeline = Pipeline::start(
        sink,
        PipelineSettings { capacity: CAPACITY, delivery_deadline: Duration::from_secs(60) },
        Arc::new(Metrics::new()),
    );
    broker.stop();
    let baseline = rss_bytes();

    // 10 sources, each submitting capacity-sized work in batches: 10× capacity in all.
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for s in 0..SUBMITTERS {
        let submitter = pipeline.submitter();
        let accepted = accepted.clone();
        tasks.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for b in 0..CAPACITY / BATCH {
                let first = ((s * CAPACITY) + b * BATCH) as u64;
                let events: Vec<_> =
                    (first..first + BATCH as u64).map(|n| ripplenet_event(n, "pay-mem", PADDING)).collect();
                match submitter.submit("mem", events).await {
                    Ok(handle) => handles.push(handle),
                    Err(_) => break,
                }
                accepted.fetch_add(BATCH, Ordering::SeqCst);
            }
            handles
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let inside = accepted.load(Ordering::SeqCst);
    assert_eq!(inside, CAPACITY, "exactly one capacity's worth of events got in; the rest wait");
    assert_eq!(pipeline.submitter().depth(), CAPACITY);
    let event_size = serde_json::to_vec(&ripplenet_event(0, "pay-mem", PADDING)).map(|v| v.len()).unwrap_or(0);
    let bound = CAPACITY * event_size * 4 + 64 * 1024 * 1024;
    let grown = rss_bytes().saturating_sub(baseline);
    let unbounded = SUBMITTERS * CAPACITY * event_size;
    assert!(
        grown < bound,
        "memory grew by {} MiB, above the bound of {} MiB (all submitted work would be ≥ {} MiB)",
        grown >> 20,
        bound >> 20,
        unbounded >> 20
    );

    pipeline.shutdown(Duration::from_secs(1)).await;
    for task in tasks {
        for handle in task.await.unwrap_or_default() {
            let outcome = handle.outcome().await;
            assert_eq!(outcome.count(|o| o.is_settled()), 0, "nothing is settled while the broker is down");
        }
    }
}
