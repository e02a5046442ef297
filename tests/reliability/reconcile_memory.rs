//! `paybridge reconcile` keeps its memory bounded however many records of the source Kafka
//! holds (the ids go to bucket files; the consumer's prefetch is capped): once the prefetch
//! and the allocator have reached their steady state, doubling the records adds nothing.
//!
//! A measurement, about four minutes, so not in `./scripts/test`: run it with
//! `cargo test --test reliability reconcile_memory -- --ignored --nocapture`.

use crate::support;

use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::Broker;

/// The peak RSS (`VmHWM`) of a running process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Records `ids` of the source `rn` (account acme) in `topic`, each a valid event with its
/// own id, written with a plain producer.
async fn fill(broker: &Broker, topic: &str, ids: std::ops::Range<u128>) {
    // One event serialized once; each record gets its own id in place of the template's.
    let template = support::ripplenet_event(0, "pay", 0);
    let placeholder = template.id.to_string();
    let text = serde_json::to_string(&template).unwrap_or_default();
    let source = template.source.clone();
    let producer: FutureProducer = broker
        .client_config()
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sent = Vec::new();
    for i in ids {
        let id = uuid::Uuid::from_u128(i).to_string();
        let value = text.replacen(&placeholder, &id, 1);
        let headers = OwnedHeaders::new()
            .insert(Header { key: "ce_id", value: Some(id.as_bytes()) })
            .insert(Header { key: "ce_source", value: Some(source.as_bytes()) });
        let key = format!("ripplenet/acme/pay-{}", i % 1000);
        let record = FutureRecord::to(topic).key(&key).payload(&value).headers(headers);
        sent.push(producer.send_result(record).unwrap_or_else(|(e, _)| panic!("{e}")));
        if sent.len() == 20_000 {
            for delivery in futures_util::future::join_all(sent.drain(..)).await {
                assert!(matches!(delivery, Ok(Ok(_))), "{delivery:?}");
            }
        }
    }
    for delivery in futures_util::future::join_all(sent).await {
        assert!(matches!(delivery, Ok(Ok(_))), "{delivery:?}");
    }
}

/// Reconciles `rn` over the last half hour against `topic`; its peak RSS in KiB, sampled
/// until it exits.
fn reconcile_peak(s: &support::ripplenet::Setup, dir: &std::path::Path, expected: u64) -> u64 {
    let config = support::ripplenet::config(s, "");
    let path = support::commands::write_config(dir, &config);
    let from = (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339();
    let to = chrono::Utc::now().to_rfc3339();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["reconcile", "--source", "rn", "--from", &from, "--to", &to, "--format", "json", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = support::child::read_in_background(child.stdout.take());
    let mut peak = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while child.try_wait().ok().flatten().is_none() {
        peak = peak.max(peak_kib(child.id()));
        assert!(std::time::Instant::now() < deadline, "reconcile did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stdout = stdout.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap_or_default();
    assert_eq!(report["kafka_records_read"].as_u64(), Some(expected), "{report}");
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of about four minutes: cargo test --test reliability reconcile_memory -- --ignored --nocapture"]
async fn reconcile_memory_stays_flat_from_400_000_to_800_000_records() {
    let sandbox = support::sandbox::Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("rm-events", 3), broker.new_topic("rm-dlq", 1));
    let s = support::ripplenet::Setup { broker, sandbox, topic: topic.clone(), dlq };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut peaks = Vec::new();
    for (ids, total) in [(0..100_000, 100_000), (100_000..400_000, 400_000), (400_000..800_000, 800_000)] {
        fill(&s.broker, &topic, ids).await;
        peaks.push(tokio::task::block_in_place(|| reconcile_peak(&s, dir.path(), total)));
        println!("reconcile over {total} records: peak RSS {} MiB", peaks[peaks.len() - 1] >> 10);
    }
    assert!(peaks.iter().all(|p| *p > 0), "the peaks were sampled");
    assert!(peaks[2] <= peaks[1] + 8 * 1024, "twice the records added more than 8 MiB: {peaks:?} KiB");
}
