//! The source runtime's benchmark (a command, not a timed test). In one run, on one local
//! tansu (SQLite storage): a raw librdkafka producer (idempotent, acks=all) writes N records
//! of the size paybridge's events have (the ceiling); then `paybridge run` (release build,
//! default settings) drains a sandbox backlog of N RippleNet notifications including the
//! acknowledgements; then 32 concurrent callers send webhooks for another backlog while the
//! pollers run; then a Checkout source drains N messages (receive → Kafka → ack), against a
//! ceiling measured with records of a Checkout event's size. Prints a Markdown report;
//! bench/REPORT.md keeps the latest one.
//!
//! Run: `cargo bench --bench poll_path` (N = 5000; `PAYBRIDGE_BENCH_N` changes it;
//! `PAYBRIDGE_BENCH_ONLY=checkout` or `=payments_direct` runs that scenario alone; the
//! Payments Direct backlog is `PAYBRIDGE_BENCH_PD_N`, default 10,000).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paybridge::registry::ValueFormat;
use paybridge::sink::kafka::EventRecord;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use support::process::Paybridge;
use support::ripplenet::{Setup, config, requests, setup};
use support::sandbox::Sandbox;

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

/// CPU seconds (user + system) a process has used so far; 0 when it is gone.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used by the broker, paybridge and this process (sandbox, load generator).
#[derive(Clone, Copy, Default)]
struct Cpu {
    broker: f64,
    bridge: f64,
    bench: f64,
}

impl Cpu {
    fn now(broker: Option<u32>, bridge: Option<u32>) -> Self {
        Cpu {
            broker: broker.map(cpu_seconds).unwrap_or_default(),
            bridge: bridge.map(cpu_seconds).unwrap_or_default(),
            bench: cpu_seconds(std::process::id()),
        }
    }

    /// CPU milliseconds per 1,000 events since `start`, by process.
    fn per_thousand(self, start: Cpu, events: usize) -> String {
        let k = events as f64 / 1000.0;
        format!(
            "broker {:.0} ms, paybridge {:.0} ms, sandbox+bench {:.0} ms",
            (self.broker - start.broker) * 1e3 / k,
            (self.bridge - start.bridge) * 1e3 / k,
            (self.bench - start.bench) * 1e3 / k
        )
    }
}

/// The tests' config at default settings (their ack batch of 40 removed). To explore settings,
/// `PAYBRIDGE_BENCH_SOURCE` adds lines to the source (e.g. `pages_in_flight = 4`) and
/// `PAYBRIDGE_BENCH_KAFKA` to `[kafka]` (e.g. `properties = { "linger.ms" = "20" }`).
fn bench_config(s: &Setup, source_extra: &str) -> String {
    let source = std::env::var("PAYBRIDGE_BENCH_SOURCE").unwrap_or_default();
    let kafka = std::env::var("PAYBRIDGE_BENCH_KAFKA").unwrap_or_default();
    config(s, &format!("{source}\n{source_extra}"))
        .replace("ack_batch_size = 40\n", "")
        .replace("[kafka]\n", &format!("[kafka]\n{kafka}\n"))
}

/// With `PAYBRIDGE_BENCH_PERF=FILE`, records a `perf` profile of paybridge while it drains
/// the poll-path backlog (`perf report -i FILE` reads it).
fn profile(pid: u32) -> Option<std::process::Child> {
    let out = std::env::var("PAYBRIDGE_BENCH_PERF").ok()?;
    let child = std::process::Command::new("perf")
        .args(["record", "-F", "999", "-g", "-o", &out, "-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    child.map_err(|e| eprintln!("perf: {e}")).ok()
}

/// An event record like the ones paybridge publishes for the sandbox's notifications.
async fn sample_record(s: &Setup, uuid: &str) -> EventRecord {
    let token = s.sandbox.token().await;
    let raw: Value = s.sandbox.get_json(&format!("/v4/orchestration/payment/notification/{uuid}"), Some(&token)).await;
    let event = paybridge::normalize::ripplenet::notification("acme", &raw, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("sample does not normalize: {e}"));
    EventRecord::from_event(&event, ValueFormat::Json).unwrap_or_else(|e| panic!("{e}"))
}

/// The ceiling: N records of `sample`'s size through a raw idempotent acks=all producer,
/// all in flight, then every delivery awaited. Records/s.
/// `in_flight`: max.in.flight.requests.per.connection (librdkafka's default is 5).
async fn raw_producer(s: &Setup, topic: &str, sample: &EventRecord, n: usize, in_flight: u32) -> f64 {
    let producer: FutureProducer = s
        .broker
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("max.in.flight.requests.per.connection", in_flight.to_string())
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    // Warm up: connect, learn the partition leaders and the producer id, outside the timing.
    let warm = FutureRecord::to(topic).key(&sample.key).payload(&sample.value).headers(sample.owned_headers());
    let _ = producer.send(warm, Duration::from_secs(30)).await;
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

/// (time in ms) of each Checkout request to `endpoint`, in order.
async fn checkout_requests(sb: &Sandbox, endpoint: &str) -> Vec<i64> {
    sb.ledger("kind=request&provider=checkout")
        .await
        .iter()
        .filter(|e| e["endpoint"] == endpoint)
        .filter_map(|e| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap_or_default()).ok())
        .map(|t| t.timestamp_millis())
        .collect()
}

/// An event record of the size the sandbox's Checkout orders give.
fn checkout_sample() -> EventRecord {
    let raw = serde_json::json!({
        "messageInfo": {"messageId": "8f1d6c1e-6d0c-4a47-9d54-7b1f2a3c4d5e", "receiptHandle": "AQEB"},
        "createdAt": "2026-11-21T10:00:00.000Z",
        "orderNotification": {
            "checkoutIntent": "CHECKOUT_INTENT_AUTH_ONLY",
            "status": "STATUS_SUCCESS",
            "transactionReferenceNumber": "Q12345-0001-228",
            "checkoutReference": "QSA2345",
            "totalTransactionAmount": "1000",
            "transactionTimestamp": "2026-11-21T10:00:00.000Z",
            "fraudCheckStatus": "FRAUD_CHECK_STATUS_APPROVED"
        }
    });
    let event = paybridge::normalize::checkout::message("merchant-001", &raw, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("sample does not normalize: {e}"));
    EventRecord::from_event(&event, ValueFormat::Json).unwrap_or_else(|e| panic!("{e}"))
}

/// The Checkout poll path at default settings (`PAYBRIDGE_BENCH_CHECKOUT` adds source lines),
/// with its own ceiling (records of a Checkout event's size, best of two runs around it).
struct CheckoutRun {
    rate: f64,
    ceiling: f64,
    calls_per_event: f64,
    rss: f64,
    cpu: String,
    event_bytes: usize,
    receives: usize,
    acks: usize,
}

async fn checkout_scenario(s: &Setup, n: usize) -> CheckoutRun {
    let keys = support::keys::rsa_keys();
    let sb = support::checkout::sandbox(&keys).await;
    let sample = checkout_sample();
    let before = raw_producer(s, &s.broker.new_topic("bench-raw", 3), &sample, n, 2).await;
    let mut left = n;
    while left > 0 {
        let batch = left.min(1000);
        support::checkout::create(&sb, batch, None).await;
        left -= batch;
    }
    let (topic, dlq) = (s.broker.new_topic("bench-co", 3), s.broker.new_topic("bench-co-dlq", 1));
    let extra = std::env::var("PAYBRIDGE_BENCH_CHECKOUT").unwrap_or_default();
    let kafka = std::env::var("PAYBRIDGE_BENCH_KAFKA").unwrap_or_default();
    let text = support::checkout::config(&s.broker, &topic, &dlq, &sb, &keys.private_file.display().to_string())
        .replace("backoff_max = \"1s\"\n", &format!("backoff_max = \"1s\"\n{extra}\n"))
        .replace("[kafka]\n", &format!("[kafka]\n{kafka}\n"));
    let broker_pid = s.broker.pid();
    let cpu = Cpu::now(broker_pid, None);
    let bridge = Paybridge::start_default_log(&text);
    let cpu = Cpu { bridge: cpu_seconds(bridge.pid()), ..cpu };
    let started = Instant::now();
    while support::checkout::unacked(&sb).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(300), "Checkout backlog not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = Cpu::now(broker_pid, Some(bridge.pid())).per_thousand(cpu, n);
    let receives = checkout_requests(&sb, "checkout.receive").await;
    let acks = checkout_requests(&sb, "checkout.ack").await;
    let span = acks.last().copied().unwrap_or_default() - receives.first().copied().unwrap_or_default();
    let rss = peak_rss_mib(bridge.pid());
    drop(bridge);
    let after = raw_producer(s, &s.broker.new_topic("bench-raw", 3), &sample, n, 2).await;
    CheckoutRun {
        rate: n as f64 / (span.max(1) as f64 / 1e3),
        ceiling: before.max(after),
        calls_per_event: (receives.len() + acks.len()) as f64 / n as f64,
        rss,
        cpu,
        event_bytes: sample.value.len(),
        receives: receives.len(),
        acks: acks.len(),
    }
}

/// The Payments Direct cursor search at default settings draining a backlog of `n` payments
/// (one window, pages of 100), against a ceiling of records of a payment event's size.
struct PaymentsDirectRun {
    rate: f64,
    ceiling: f64,
    calls_per_event: f64,
    rss: f64,
    cpu: String,
    event_bytes: usize,
    searches: usize,
}

fn published(admin_port: u16, source: &str) -> f64 {
    support::ripplenet::metrics(admin_port)
        .lines()
        .find(|l| l.starts_with(&format!("paybridge_events_published_total{{source=\"{source}\"}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

async fn payments_direct_scenario(s: &Setup, n: usize) -> PaymentsDirectRun {
    let sb = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let mut left = n;
    while left > 0 {
        let batch = left.min(1000);
        sb.pd_create(batch).await;
        left -= batch;
    }
    let token = sb.pd_token().await;
    let one = sb.post_json(&token, "/v3/payments/filter", serde_json::json!({"page": {"size": 1}})).await;
    let body: Value = one.json().await.unwrap_or_default();
    let event = paybridge::normalize::payments_direct::payment(
        "rpd",
        &body["data"][0],
        paybridge::normalize::payments_direct::Via::default(),
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("sample does not normalize: {e}"));
    let sample = EventRecord::from_event(&event, ValueFormat::Json).unwrap_or_else(|e| panic!("{e}"));
    let before = raw_producer(s, &s.broker.new_topic("bench-raw", 3), &sample, n, 2).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (topic, dlq, state) = (
        s.broker.new_topic("bench-pd", 3),
        s.broker.new_topic("bench-pd-dlq", 1),
        s.broker.new_topic("bench-pd-state", 1),
    );
    let kafka = std::env::var("PAYBRIDGE_BENCH_KAFKA").unwrap_or_default();
    let text = support::base_config(&s.broker, &topic, &dlq)
        .replacen("[kafka]\n", &format!("[kafka]\nstate_topic = \"{state}\"\n{kafka}\n"), 1)
        .replacen("delivery_timeout = \"5s\"", "delivery_timeout = \"60s\"", 1)
        + &format!(
            "\n[[sources]]\nkind = \"payments_direct\"\nname = \"pd\"\nbase_url = \"{base}\"\nsafety_lag = \"1s\"\n\
             start_from = \"10m\"\n[sources.auth]\ntoken_url = \"{base}/v2/oauth/token\"\nclient_id = \"sandbox-client\"\n\
             client_secret = \"sandbox-secret\"\naudience = \"urn:ripplexcurrent-test:sandbox\"\n",
            base = sb.url("")
        );
    let broker_pid = s.broker.pid();
    let cpu = Cpu::now(broker_pid, None);
    let bridge = Paybridge::start_default_log(&text);
    let cpu = Cpu { bridge: cpu_seconds(bridge.pid()), ..cpu };
    let started = Instant::now();
    while published(bridge.admin_port, "pd") < n as f64 {
        assert!(started.elapsed() < Duration::from_secs(600), "Payments Direct backlog not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let cpu = Cpu::now(broker_pid, Some(bridge.pid())).per_thousand(cpu, n);
    let searches = sb
        .ledger("kind=request&provider=payments_direct")
        .await
        .iter()
        .filter(|e| e["endpoint"] == "payments_direct.search")
        .count();
    let rss = peak_rss_mib(bridge.pid());
    drop(bridge);
    let after = raw_producer(s, &s.broker.new_topic("bench-raw", 3), &sample, n, 2).await;
    PaymentsDirectRun {
        rate: n as f64 / took.as_secs_f64(),
        ceiling: before.max(after),
        calls_per_event: searches.saturating_sub(1) as f64 / n as f64,
        rss,
        cpu,
        event_bytes: sample.value.len(),
        searches: searches.saturating_sub(1),
    }
}

fn print_payments_direct(pd: &PaymentsDirectRun, n: usize) {
    println!(
        "Payments Direct, N = {n} payments ({} bytes per event): {:.0} events/s (start to last publish), ceiling {:.0}, {:.2} ×, {:.3} calls/event ({} searches), RSS {:.1} MiB; CPU per 1,000: {}",
        pd.event_bytes,
        pd.rate,
        pd.ceiling,
        pd.rate / pd.ceiling,
        pd.calls_per_event,
        pd.searches,
        pd.rss,
        pd.cpu
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("PAYBRIDGE_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let s = setup().await;
    let pd_n: usize = std::env::var("PAYBRIDGE_BENCH_PD_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    if std::env::var("PAYBRIDGE_BENCH_ONLY").is_ok_and(|v| v == "payments_direct") {
        let pd = payments_direct_scenario(&s, pd_n).await;
        print_payments_direct(&pd, pd_n);
        return;
    }
    // PAYBRIDGE_BENCH_ONLY=checkout: only the Checkout scenario (to explore its settings).
    if std::env::var("PAYBRIDGE_BENCH_ONLY").is_ok_and(|v| v == "checkout") {
        let co = checkout_scenario(&s, n).await;
        println!(
            "Checkout, N = {n}: {:.0} events/s, ceiling {:.0}, {:.2} ×, {:.3} calls/event ({} receives, {} acks), RSS {:.1} MiB; CPU per 1,000: {}",
            co.rate,
            co.ceiling,
            co.rate / co.ceiling,
            co.calls_per_event,
            co.receives,
            co.acks,
            co.rss,
            co.cpu
        );
        return;
    }
    let created = s.sandbox.create(n).await;
    let sample = sample_record(&s, &created[0]).await;
    let broker_pid = s.broker.pid();
    // The ceiling with librdkafka's default in-flight limit (5) and with paybridge's (2).
    let raw_default = raw_producer(&s, &s.broker.new_topic("bench-raw", 3), &sample, n, 5).await;
    let cpu = Cpu::now(broker_pid, None);
    let raw_two = raw_producer(&s, &s.broker.new_topic("bench-raw", 3), &sample, n, 2).await;
    let ceiling_cpu = Cpu::now(broker_pid, None).per_thousand(cpu, n);

    // Poll path: defaults (page 100, ack batch 100, pages in flight 8), pollers every minute:
    // only "full page → read on" drains the backlog.
    let cpu = Cpu::now(broker_pid, None);
    let bridge = Paybridge::start_default_log(&bench_config(&s, ""));
    let cpu = Cpu { bridge: cpu_seconds(bridge.pid()), ..cpu };
    let profiler = profile(bridge.pid());
    wait_acked(&s, n as u64, Duration::from_secs(300)).await;
    let poll_cpu = Cpu::now(broker_pid, Some(bridge.pid())).per_thousand(cpu, n);
    if let Some(mut perf) = profiler {
        let _ = std::process::Command::new("kill").args(["-INT", &perf.id().to_string()]).status();
        let _ = perf.wait();
    }
    // From the first NEW read to the last acknowledgement, as the sandbox saw them.
    let first_read = requests(&s.sandbox, "ripplenet.poll_new").await.first().map(|r| r.0).unwrap_or_default();
    let last_ack = requests(&s.sandbox, "ripplenet.ack_batch").await.last().map(|r| r.0).unwrap_or_default();
    let poll_rate = n as f64 / ((last_ack - first_read).max(1) as f64 / 1e3);
    let poll_calls = calls(&s).await;
    let poll_rss = peak_rss_mib(bridge.pid());
    drop(bridge);

    // Webhooks: a fresh backlog, pollers running, 32 callers.
    let before = calls(&s).await;
    let hooks = s.sandbox.create(n).await;
    let mut bridge =
        Paybridge::start_default_log(&bench_config(&s, "[sources.webhook]\nenabled = true\npath = \"/hooks/rn\""));
    let url = format!("{}/hooks/rn", bridge.intake());
    let cpu = Cpu::now(broker_pid, Some(bridge.pid()));
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
    let hook_cpu = Cpu::now(broker_pid, Some(bridge.pid())).per_thousand(cpu, n);
    let hook_rate = n as f64 / answered.as_secs_f64();
    latencies.sort();
    wait_acked(&s, 2 * n as u64, Duration::from_secs(120)).await;
    let after = calls(&s).await;
    let hook_calls = total(&after) - total(&before);
    let hook_rss = peak_rss_mib(bridge.pid());
    bridge.stop();
    // The ceiling again (a broker that slowed down with a larger SQLite file shows); the
    // ratios use the best of the four runs.
    let raw_default_after = raw_producer(&s, &s.broker.new_topic("bench-raw", 3), &sample, n, 5).await;
    let raw_two_after = raw_producer(&s, &s.broker.new_topic("bench-raw", 3), &sample, n, 2).await;
    let ceiling = [raw_default, raw_two, raw_default_after, raw_two_after].into_iter().fold(0.0, f64::max);
    let co = checkout_scenario(&s, n).await;
    let pd = payments_direct_scenario(&s, pd_n).await;

    let ok = statuses.get(&200).copied().unwrap_or(0);
    println!("# Poll-path benchmark\n");
    println!(
        "N = {n} notifications, events of {} bytes, tansu 0.6.0 (SQLite), 2 cores, release build.\n",
        sample.value.len()
    );
    println!("| scenario | events/s | × ceiling | upstream calls / event | peak RSS MiB |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| raw librdkafka producer (idempotent, acks=all): the ceiling, best of four runs | {ceiling:.0} | 1.00 | – | – |"
    );
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
        "| raw producer, records of a Checkout event's size ({} bytes), best of two runs | {:.0} | 1.00 | – | – |",
        co.event_bytes, co.ceiling
    );
    println!(
        "| Checkout poll path (receive → Kafka → ack), backlog drained incl. acks | {:.0} | {:.2} (of its ceiling) | {:.3} | {:.1} |",
        co.rate,
        co.rate / co.ceiling,
        co.calls_per_event,
        co.rss
    );
    println!(
        "\nWebhooks: {ok} of {n} answered 200 ({statuses:?}); latency p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms.",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999)
    );
    println!(
        "\nRaw producer runs (records/s): before the scenarios {raw_default:.0} with max.in.flight 5, {raw_two:.0} with 2; after them {raw_default_after:.0} and {raw_two_after:.0}."
    );
    println!(
        "\nCPU per 1,000 events (2 cores = 2,000 ms per second): raw producer (in-flight 2): {ceiling_cpu}; poll path: {poll_cpu}; webhooks: {hook_cpu}."
    );
    println!("Checkout: {} receives and {} ack calls; CPU per 1,000 events: {}.", co.receives, co.acks, co.cpu);
    print_payments_direct(&pd, pd_n);
    let mut by_endpoint: Vec<_> = poll_calls.into_iter().collect();
    by_endpoint.sort();
    println!("\nPoll path calls by endpoint: {by_endpoint:?}");
    let mut by_endpoint: Vec<_> =
        after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).collect();
    by_endpoint.sort();
    println!("Webhook run calls by endpoint: {by_endpoint:?}");
}
