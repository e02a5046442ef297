//! The source runtime's benchmark (a command, not a timed test). In one run, on one local
//! tansu (SQLite storage): a raw librdkafka producer (idempotent, acks=all) writes N records
//! of the size paybridge's events have (the ceiling); then `paybridge run` (release build,
//! default settings) drains a sandbox backlog of N RippleNet notifications including the
//! acknowledgements; then 32 concurrent callers send webhooks for another backlog while the
//! pollers run. Prints a Markdown report; bench/REPORT.md keeps the latest one.
//!
//! Run: `cargo bench --bench poll_path` (N = 5000; `PAYBRIDGE_BENCH_N` changes it).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paybridge::sink::kafka::EventRecord;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use support::process::Paybridge;
use support::ripplenet::{Setup, config, setup};

const CALLERS: usize = 32;

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// An event record like the ones paybridge publishes for the sandbox's notifications.
async fn sample_record(s: &Setup, uuid: &str) -> EventRecord {
    let token = s.sandbox.token().await;
    let raw: Value = s.sandbox.get_json(&format!("/v4/orchestration/payment/notification/{uuid}"), Some(&token)).await;
    let event = paybridge::normalize::ripplenet::notification("acme", &raw, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("sample does not normalize: {e}"));
    EventRecord::from_event(&event).unwrap_or_else(|e| panic!("{e}"))
}

/// The ceiling: N records of `sample`'s size through a raw idempotent acks=all producer,
/// all in flight, then every delivery awaited. Records/s.
async fn raw_producer(s: &Setup, topic: &str, sample: &EventRecord, n: usize) -> f64 {
    let producer: FutureProducer = s
        .broker
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{}-{i}", sample.key);
        loop {
            let record = FutureRecord::to(topic).key(&key).payload(&sample.value).headers(sample.owned_headers());
            match producer.send_result(record) {
                Ok(d) => break deliveries.push(d),
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    for d in deliveries {
        let _ = d.await;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Upstream calls to RippleNet so far, by endpoint (tokens excluded).
async fn calls(s: &Setup) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in s.sandbox.ledger("kind=request&provider=ripplenet").await {
        let endpoint = e["endpoint"].as_str().unwrap_or_default().to_owned();
        if endpoint != "ripplenet.token" {
            *counts.entry(endpoint).or_insert(0) += 1;
        }
    }
    counts
}

fn total(c: &HashMap<String, usize>) -> usize {
    c.values().sum()
}

async fn wait_acked(s: &Setup, target: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    while support::ripplenet::acked(&s.sandbox).await < target {
        assert!(started.elapsed() < limit, "not drained within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map(|d| d.as_secs_f64() * 1e3).unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("PAYBRIDGE_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let s = setup().await;
    let created = s.sandbox.create(n).await;
    let sample = sample_record(&s, &created[0]).await;
    let raw_topic = s.broker.new_topic("bench-raw", 3);
    let ceiling = raw_producer(&s, &raw_topic, &sample, n).await;

    // Poll path: defaults (page 100, ack batch 100, pages in flight 8), pollers every minute:
    // only "full page → read on" drains the backlog.
    let bridge = Paybridge::start(&config(&s, "").replace("ack_batch_size = 40\n", ""));
    let drained = wait_acked(&s, n as u64, Duration::from_secs(300)).await;
    let poll_rate = n as f64 / drained.as_secs_f64();
    let poll_calls = calls(&s).await;
    let poll_rss = peak_rss_mib(bridge.pid());
    drop(bridge);

    // Webhooks: a fresh backlog, pollers running, 32 callers.
    let before = calls(&s).await;
    let hooks = s.sandbox.create(n).await;
    let mut bridge = Paybridge::start(
        &config(&s, "[sources.webhook]\nenabled = true\npath = \"/hooks/rn\"").replace("ack_batch_size = 40\n", ""),
    );
    let url = format!("{}/hooks/rn", bridge.intake());
    let queue = Arc::new(std::sync::Mutex::new(hooks.into_iter()));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let (queue, http, url) = (queue.clone(), http.clone(), url.clone());
        callers.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let Some(id) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else { break };
                let t = Instant::now();
                let status = http
                    .post(&url)
                    .json(&serde_json::json!({"msg_id": id}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                seen.push((t.elapsed(), status));
            }
            seen
        });
    }
    let mut latencies = Vec::new();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    while let Some(Ok(seen)) = callers.join_next().await {
        for (latency, status) in seen {
            latencies.push(latency);
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    let answered = started.elapsed();
    let hook_rate = n as f64 / answered.as_secs_f64();
    latencies.sort();
    wait_acked(&s, 2 * n as u64, Duration::from_secs(120)).await;
    let after = calls(&s).await;
    let hook_calls = total(&after) - total(&before);
    let hook_rss = peak_rss_mib(bridge.pid());
    bridge.stop();

    let ok = statuses.get(&200).copied().unwrap_or(0);
    println!("# Poll-path benchmark\n");
    println!(
        "N = {n} notifications, events of {} bytes, tansu 0.6.0 (SQLite), 2 cores, release build.\n",
        sample.value.len()
    );
    println!("| scenario | events/s | × ceiling | upstream calls / event | peak RSS MiB |");
    println!("| --- | --- | --- | --- | --- |");
    println!("| raw librdkafka producer (idempotent, acks=all): the ceiling | {ceiling:.0} | 1.00 | – | – |");
    println!(
        "| RippleNet poll path, backlog drained incl. acks | {poll_rate:.0} | {:.2} | {:.3} | {poll_rss:.1} |",
        poll_rate / ceiling,
        total(&poll_calls) as f64 / n as f64
    );
    println!(
        "| RippleNet webhooks, {CALLERS} callers, pollers on | {hook_rate:.0} | {:.2} | {:.3} | {hook_rss:.1} |",
        hook_rate / ceiling,
        hook_calls as f64 / n as f64
    );
    println!(
        "\nWebhooks: {ok} of {n} answered 200 ({statuses:?}); latency p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms.",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999)
    );
    let mut by_endpoint: Vec<_> = poll_calls.into_iter().collect();
    by_endpoint.sort();
    println!("\nPoll path calls by endpoint: {by_endpoint:?}");
    let mut by_endpoint: Vec<_> =
        after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).collect();
    by_endpoint.sort();
    println!("Webhook run calls by endpoint: {by_endpoint:?}");
}
