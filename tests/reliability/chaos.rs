//! Chaos: all three providers with faults (5% 5xx, 2% lost responses after the change was
//! applied, 1% duplicate and shuffled webhooks, 429 bursts with Retry-After, token expiry,
//! refused acknowledgements), the real broker killed and restarted, and `paybridge run`
//! killed with SIGKILL at random moments and restarted. Then, from the sandbox's ledger, every
//! process's commit log and a full read of the topic:
//!
//! - every upstream notification is in Kafka (RippleNet notifications, Checkout messages,
//!   every state every Payments Direct payment passed through, from the sandbox's own
//!   history: its first state, each transition, and every state a search served);
//! - nothing acknowledged upstream (RippleNet and Checkout acks, 2xx webhook answers) is
//!   missing from Kafka, and no acknowledgement precedes its event's confirmation;
//! - distinct event ids = distinct upstream notifications (no phantom ids);
//! - duplicates before dedupe are reported.
//!
//! `PAYBRIDGE_CHAOS_N` sets the number of notifications (default 2,100, a third per provider);
//! docs/src/reliability.md records a long run. `PAYBRIDGE_CHAOS_KEEP=1` keeps the evidence (every log, the
//! sandbox's ledger, the events) under target/tmp even when nothing was lost.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use support::chaos::{self, CO_ACCOUNT, PD_ACCOUNT, RN_ACCOUNT};
use support::process::Paybridge;
use support::sandbox::Sandbox;
use support::sources;
use support::{Broker, Record};

/// A small deterministic generator (no seed from the clock: a failing run can be repeated
/// with `PAYBRIDGE_CHAOS_SEED`).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn faults() -> Vec<Value> {
    let mut rules = Vec::new();
    let endpoints = [
        "ripplenet.token",
        "ripplenet.poll_new",
        "ripplenet.poll_sent",
        "ripplenet.get",
        "ripplenet.ack_batch",
        "checkout.token",
        "checkout.receive",
        "checkout.ack",
        "payments_direct.token",
        "payments_direct.search",
        "payments_direct.get",
        "payments_direct.states",
    ];
    for endpoint in endpoints {
        rules.push(json!({"endpoint": endpoint, "action": "status", "status": 503, "probability": 0.05}));
        if !endpoint.ends_with(".token") {
            rules.push(json!({"endpoint": endpoint, "action": "lost_response", "probability": 0.02}));
        }
    }
    for endpoint in ["ripplenet.ack_batch", "checkout.ack"] {
        rules.push(json!({"endpoint": endpoint, "action": "ack_invalid", "probability": 0.01}));
    }
    for endpoint in ["ripplenet.webhook", "payments_direct.webhook"] {
        rules.push(json!({"endpoint": endpoint, "action": "duplicate_webhook", "probability": 0.01}));
        rules.push(json!({"endpoint": endpoint, "action": "out_of_order_webhook", "ms": 300}));
    }
    rules
}

fn config(broker: &Broker, sandbox: &Sandbox, topics: &[String; 3]) -> String {
    let [topic, dlq, state] = topics;
    let webhook = |path: &str| {
        format!(
            "\n[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"{path}\"\ncommit_timeout = \"5s\"\n"
        )
    };
    let ripplenet = r#"
new_interval = "300ms"
sent_interval = "2s"
sent_delay = "0s"
backoff_max = "2s""#;
    let payments_direct = r#"
interval = "500ms"
max_idle_interval = "1s"
safety_lag = "1s"
start_from = "10m"
backoff_max = "2s"
page_size = 100"#;
    support::base_config_with_state(broker, topic, dlq, state)
        + "\n[log]\nformat = \"json\"\n"
        + &sources::ripplenet(sandbox, RN_ACCOUNT, ripplenet)
        + &webhook("/hooks/rn")
        + &sources::payments_direct(sandbox, PD_ACCOUNT, payments_direct)
        + &webhook("/hooks/pd")
        + &sources::checkout(sandbox, "KEY_PATH", CO_ACCOUNT)
}

/// `paybridge run` processes, one at a time, on fixed ports; every one is kept, so its
/// whole log can be read at the end.
struct Bridges {
    config: String,
    ports: (u16, u16),
    current: Option<Paybridge>,
    ended: Vec<Paybridge>,
    kills: usize,
}

impl Bridges {
    fn start(&mut self) {
        let process = Paybridge::spawn_on_ports(&self.config, &[], "paybridge::commit=trace,info", self.ports);
        self.current = Some(process);
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.current.take() {
            process.kill();
            self.ended.push(process);
            self.kills += 1;
        }
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.current.take() {
            process.stop();
            self.ended.push(process);
        }
    }

    /// Every process's log (their reader threads have long reached the end).
    fn logs(&self) -> Vec<String> {
        self.ended.iter().map(Paybridge::log).collect()
    }

    fn published(&self) -> u64 {
        support::metric_sum(self.ports.0, "paybridge_events_published_total")
    }
}

/// Partitions of the events topic: 3; on tansu one more per 3,000 notifications of a long
/// run. tansu 0.6.0 answers each fetch by summing record sizes over the whole rest of the
/// partition, so reading a partition costs the square of its length. Shorter partitions
/// are not enough for a 100,000 run: neither 3 nor 33 partitions (about 290,000 records)
/// could be read back over the Kafka protocol in 27 to 50 minutes, while the broker's own
/// store held every record (read directly in 8 s). Apache Kafka has no such limit.
fn event_partitions(broker: &Broker, total: u64) -> i32 {
    if !broker.is_tansu() {
        return 3;
    }
    i32::try_from((total / 3_000).max(3)).unwrap_or(3)
}

/// The events topic. On Apache Kafka its records carry the broker's append time
/// (`message.timestamp.type=LogAppendTime`), which the webhook check reads.
fn events_topic(broker: &Broker, partitions: i32) -> String {
    if broker.is_tansu() {
        return broker.new_topic("chaos-events", partitions);
    }
    let name = support::unique_topic("chaos-events");
    broker.create_topic_with(&name, partitions, &[("message.timestamp.type", "LogAppendTime")]);
    name
}

/// When the broker first appended each event id, from the records' timestamps; none on tansu,
/// whose records carry the producer's time.
fn append_times(on_kafka: bool, records: &[Record]) -> HashMap<String, DateTime<Utc>> {
    let mut first: HashMap<String, DateTime<Utc>> = HashMap::new();
    if !on_kafka {
        return first;
    }
    for record in records {
        let (Some(id), Some(at)) = (record.header("ce_id"), record.timestamp.and_then(DateTime::from_timestamp_millis))
        else {
            continue;
        };
        first.entry(id.to_owned()).and_modify(|t| *t = (*t).min(at)).or_insert(at);
    }
    first
}

/// After a loss: every process's log, the sandbox's ledger and served states, and the
/// topic's Payments Direct events of the payments concerned, in a folder of the target
/// directory (printed), for the investigation.
async fn keep_evidence(bridges: &Bridges, sandbox: &Sandbox, events: &[Value], lost: &HashSet<&String>) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chaos-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S")));
    let _ = std::fs::create_dir_all(&dir);
    for (i, log) in bridges.logs().iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("paybridge-{i:02}.log")), log);
    }
    let served = sandbox.get_json("/_sandbox/payments_direct/served", None).await;
    let _ = std::fs::write(dir.join("served.json"), served.to_string());
    let ledger = sandbox.ledger("provider=payments_direct").await;
    let _ = std::fs::write(dir.join("ledger-payments-direct.json"), Value::Array(ledger).to_string());
    let lost_events: Vec<String> = lost.iter().map(|id| (*id).clone()).collect();
    let _ = std::fs::write(dir.join("lost-ids.json"), json!(lost_events).to_string());
    let pd: Vec<&Value> = events.iter().filter(|e| e["data"]["payment_id"].is_string()).collect();
    let _ = std::fs::write(dir.join("payments-direct-events.json"), json!(pd).to_string());
    eprintln!("chaos: {} served states missing; evidence in {}", lost.len(), dir.display());
}

/// On tansu, above this many notifications the topics are read from the stopped broker's own
/// store (`support::store`), which the default run checks against a read over the Kafka
/// protocol.
const READ_FROM_STORE_ABOVE: u64 = 10_000;

/// Every record of the event topic and of the DLQ, over the Kafka protocol (off the async
/// runtime). On tansu (which serves these at a few hundred per second) the default run then
/// checks that the broker's store holds the same records, and a long run reads the store only.
async fn read_topics(broker: Broker, total: u64, events: &str, dlq: &str) -> (Vec<Record>, Vec<Record>) {
    let (events, dlq) = (events.to_owned(), dlq.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut broker = broker;
        if broker.is_tansu() && total > READ_FROM_STORE_ABOVE {
            return (broker.stored_records(&events), broker.stored_records(&dlq));
        }
        let per_record = Duration::from_millis(10);
        // The small DLQ first: after a long read tansu can be slow to answer metadata.
        let dead_letters = broker.read_everything(&dlq, per_record, Duration::from_secs(30));
        let records = broker.read_everything(&events, per_record, Duration::from_secs(30));
        if !broker.is_tansu() {
            return (records, dead_letters);
        }
        let stored = broker.stored_records(&events);
        let values = |records: &[Record]| {
            let mut values: Vec<_> = records
                .iter()
                .map(|r| (r.partition, r.offset, r.key.clone(), r.value.clone(), r.headers.clone()))
                .collect();
            values.sort();
            values
        };
        assert_eq!(values(&stored), values(&records), "the broker's store holds what a consumer read");
        (records, dead_letters)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_nothing_and_acknowledges_nothing_early() {
    let total = env_number("PAYBRIDGE_CHAOS_N", 2_100);
    let per_provider = total.div_ceil(3);
    let mut dice = Dice(env_number("PAYBRIDGE_CHAOS_SEED", 0x00c4_a05e));
    let started = Instant::now();

    let keys = support::keys::rsa_keys();
    let (admin_port, intake_port) = (support::free_port(), support::free_port());
    let intake = format!("http://127.0.0.1:{intake_port}");
    let sandbox = support::checkout::sandbox_with(&keys, |scenario| {
        for ttl in [
            &mut scenario.ripplenet.token_ttl,
            &mut scenario.payments_direct.token_ttl,
            &mut scenario.checkout.token_ttl,
        ] {
            *ttl = Duration::from_secs(15);
        }
        scenario.ripplenet.callback_url = Some(format!("{intake}/hooks/rn"));
        scenario.ripplenet.webhook_retry_interval = Duration::from_secs(1);
        scenario.payments_direct.callback_url = Some(format!("{intake}/hooks/pd"));
        scenario.payments_direct.webhook_retry_interval = Duration::from_secs(1);
        scenario.checkout.visibility_timeout = Duration::from_secs(5);
    })
    .await;
    let mut broker = Broker::start_own();
    let topics = [
        events_topic(&broker, event_partitions(&broker, total)),
        broker.new_topic("chaos-dlq", 1),
        broker.new_topic("chaos-state", 1),
    ];
    let key_path = keys.private_file.display().to_string();
    let mut bridges = Bridges {
        config: config(&broker, &sandbox, &topics).replace("KEY_PATH", &key_path),
        ports: (admin_port, intake_port),
        current: None,
        ended: Vec::new(),
        kills: 0,
    };
    bridges.start();
    for rule in faults() {
        assert_eq!(sandbox.control("/_sandbox/faults", rule).await, reqwest::StatusCode::CREATED);
    }

    // Load: the notifications arrive in rounds while the process and the broker are killed.
    let (mut rn, mut co, mut pd) = (Vec::new(), Vec::new(), Vec::new());
    // 20 rounds of ~0.6 s for the short run; more for a long one, so kills happen throughout.
    let rounds = (total / 500).max(20);
    let per_round = per_provider.div_ceil(rounds) as usize;
    let mut next_kill = Instant::now() + Duration::from_millis(2_000 + dice.below(3_000));
    let mut broker_restarts = 0;
    for round in 0..rounds {
        rn.extend(sandbox.create(per_round).await);
        co.extend(support::checkout::create(&sandbox, per_round, None).await);
        pd.extend(sandbox.pd_create(per_round).await);
        // A step every fourth round (about 2.5 s, beyond the search's safety lag and
        // interval), so searches see intermediate states too, not only the webhooks.
        if round % 4 == 3 {
            sandbox.control("/_sandbox/payments_direct/advance", json!({"failure_rate": 0.1})).await;
        }
        if round % 4 == 1 {
            sandbox.control("/_sandbox/tokens/expire", json!({})).await;
            let endpoint =
                ["ripplenet.poll_new", "checkout.receive", "payments_direct.search"][(round / 4 % 3) as usize];
            let burst = json!({"endpoint": endpoint, "action": "status", "status": 429, "retry_after": 1, "times": 5});
            sandbox.control("/_sandbox/faults", burst).await;
        }
        if round == rounds / 2 {
            broker.stop();
            tokio::time::sleep(Duration::from_millis(1_500 + dice.below(1_500))).await;
            broker.restart();
            broker_restarts += 1;
        }
        if Instant::now() >= next_kill {
            bridges.kill();
            tokio::time::sleep(Duration::from_millis(dice.below(1_000))).await;
            bridges.start();
            next_kill = Instant::now() + Duration::from_millis(2_000 + dice.below(4_000));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The payments finish their lifecycles (each step a webhook), faults still on.
    loop {
        let moved =
            sandbox.http.post(sandbox.url("/_sandbox/payments_direct/advance")).json(&json!({"failure_rate": 0.1}));
        let moved: Value = match moved.send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if moved["moved"].as_u64() == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    }
    bridges.kill();
    bridges.start();
    let load_phase = started.elapsed();

    // Drain: faults off; everything acknowledged, every payment searched to its end state.
    let cleared = sandbox.http.delete(sandbox.url("/_sandbox/faults")).send().await;
    assert!(cleared.is_ok_and(|r| r.status().is_success()), "faults cleared");
    let final_states = chaos::pd_current(&sandbox, &pd).await;
    let drain_started = Instant::now();
    let drain_limit = Duration::from_millis((total * 5).max(180_000));
    let mut quiet_since: Option<(u64, Instant)> = None;
    loop {
        assert!(drain_started.elapsed() < drain_limit, "not drained within {drain_limit:?}");
        let rn_left = {
            let stats = sandbox.stats().await;
            stats["NEW"].as_u64().unwrap_or(0) + stats["SENT"].as_u64().unwrap_or(0)
        };
        let co_left = support::checkout::unacked(&sandbox).await;
        let (served, _) = chaos::pd_served(&sandbox).await;
        let pd_left = final_states.difference(&served).count() as u64;
        let published = bridges.published();
        let quiet = match quiet_since {
            Some((count, since)) if count == published => since.elapsed() > Duration::from_secs(3),
            _ => {
                quiet_since = Some((published, Instant::now()));
                false
            }
        };
        if rn_left == 0 && co_left == 0 && pd_left == 0 && quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bridges.stop();
    let drain = drain_started.elapsed();

    // What the topic holds, and the records every check needs.
    println!("chaos: drained after {:.0?} of load and {drain:.0?} of drain; reading the topics", load_phase);
    let on_kafka = !broker.is_tansu();
    let (records, dead_letters) = read_topics(broker, total, &topics[0], &topics[1]).await;
    let events: Vec<Value> = records.iter().map(Record::json).collect();
    let ids: HashSet<String> = events.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    let commits = chaos::commit_times(&bridges.logs());
    let appended = append_times(on_kafka, &records);
    let by_provider = chaos::by_provider(&events);

    // 1. Nothing lost.
    let rn_ids: HashSet<String> = rn.iter().map(|u| chaos::rn_id(u)).collect();
    let co_ids: HashSet<String> = co.iter().map(|m| chaos::co_id(m)).collect();
    let (served, complete) = chaos::pd_served(&sandbox).await;
    assert!(complete, "the sandbox kept every served state");
    let missing = |expected: &HashSet<String>| expected.difference(&ids).count();
    assert_eq!(missing(&rn_ids), 0, "RippleNet notifications missing from Kafka");
    assert_eq!(missing(&co_ids), 0, "Checkout messages missing from Kafka");
    let history = chaos::pd_history(&sandbox, &pd).await;
    let every_state: HashSet<String> = history.union(&served).cloned().collect();
    if missing(&every_state) > 0 || std::env::var_os("PAYBRIDGE_CHAOS_KEEP").is_some() {
        let lost: HashSet<&String> = every_state.difference(&ids).collect();
        keep_evidence(&bridges, &sandbox, &events, &lost).await;
    }
    assert_eq!(missing(&served), 0, "Payments Direct states a search served missing from Kafka");
    assert_eq!(missing(&final_states), 0, "Payments Direct final states missing from Kafka");
    assert_eq!(
        missing(&history),
        0,
        "Payments Direct states passed through (the sandbox's history) missing from Kafka"
    );

    // 2. No phantom: every id is an upstream notification (or a state the payment was in).
    let known: HashSet<&String> = rn_ids.iter().chain(&co_ids).chain(&history).collect();
    let phantoms: Vec<&String> = ids.iter().filter(|id| !known.contains(id)).collect();
    assert!(
        phantoms.is_empty(),
        "{} event ids match no upstream notification: {:?}",
        phantoms.len(),
        &phantoms[..phantoms.len().min(5)]
    );
    let count = |provider: &str| by_provider.get(provider).map_or(0, |(_, distinct)| distinct.len());
    assert_eq!(count("ripplenet"), rn_ids.len(), "distinct RippleNet ids = notifications");
    assert_eq!(count("checkout"), co_ids.len(), "distinct Checkout ids = messages");

    // 3. Nothing acknowledged before (or without) its event's confirmation.
    let mut acks = Vec::new();
    for entry in sandbox.ledger("kind=ack").await {
        let (Some(id), Some(at)) = (entry["id"].as_str(), chaos::at(&entry)) else { continue };
        match entry["provider"].as_str() {
            Some("ripplenet") => acks.push(("RippleNet ack".to_owned(), chaos::rn_id(id), at)),
            Some("checkout") => acks.push(("Checkout ack".to_owned(), chaos::co_id(id), at)),
            _ => {}
        }
    }
    let mut pd_events: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for event in &events {
        if let (Some(payment), Some(id)) = (event["data"]["payment_id"].as_str(), event["id"].as_str()) {
            pd_events.entry(payment.to_owned()).or_default().push(id.to_owned());
        }
    }
    let (mut pd_webhooks_ok, mut pd_webhooks_by_append) = (0, 0);
    for entry in sandbox.ledger("kind=webhook").await {
        let ok = entry["status"].as_u64().is_some_and(|s| (200..300).contains(&s));
        let (Some(id), Some(at)) = (entry["id"].as_str(), chaos::at(&entry)) else { continue };
        if !ok {
            continue;
        }
        match entry["provider"].as_str() {
            Some("ripplenet") => acks.push(("RippleNet webhook 2xx".to_owned(), chaos::rn_id(id), at)),
            Some("payments_direct") => {
                // A 2xx means some state of the payment was in Kafka before it: confirmed
                // to a process (its commit line), or, for a record no process ever saw
                // confirmed (its producer was killed after the broker appended it, before the
                // answer came back), appended by the broker. A restarted process learns such
                // a state from the topic and answers its webhook without publishing it again.
                let events = pd_events.get(id).map(Vec::as_slice).unwrap_or_default();
                // The earliest evidence counts: a process's commit line, or the broker's
                // append (a later copy of the same state can have the only commit line).
                let in_kafka =
                    |e: &String| commits.get(e).is_some_and(|c| *c <= at) || appended.get(e).is_some_and(|a| *a <= at);
                let confirmed = |e: &String| commits.get(e).is_some_and(|c| *c <= at);
                if !events.iter().any(confirmed) && events.iter().any(in_kafka) {
                    pd_webhooks_by_append += 1;
                }
                if !events.iter().any(in_kafka) {
                    let events: Vec<String> = events
                        .iter()
                        .map(|e| format!("{e} committed {:?}, appended {:?}", commits.get(e), appended.get(e)))
                        .collect();
                    panic!(
                        "Payments Direct webhook for {id} answered 2xx at {at} before any of its events was confirmed; \
                         its events: {events:?}; the webhook: {entry}"
                    );
                }
                pd_webhooks_ok += 1;
            }
            _ => {}
        }
    }
    let early = chaos::early_acks(&acks, &commits);
    assert!(
        early.is_empty(),
        "{} acknowledgements before confirmation:\n{}",
        early.len(),
        early[..early.len().min(10)].join("\n")
    );

    // 4. The figures.
    let dlq_records = dead_letters.len();
    assert_eq!(dlq_records, 0, "nothing here is poison: the DLQ stays empty");
    let requests = sandbox.ledger("kind=request").await;
    let faulted = requests.iter().filter(|e| e["status"].as_u64().is_none_or(|s| s == 0 || s >= 429)).count();
    let notifications = rn_ids.len() + co_ids.len() + every_state.len();
    println!(
        "chaos: {notifications} upstream notifications (RippleNet {}, Checkout {}, Payments Direct {} states of {} payments, {} of them served by a search)",
        rn_ids.len(),
        co_ids.len(),
        every_state.len(),
        pd.len(),
        served.len()
    );
    println!(
        "chaos: {} SIGKILLs of paybridge, {broker_restarts} broker kill/restart, {faulted} of {} upstream requests faulted (5xx, 429, lost)",
        bridges.kills,
        requests.len()
    );
    for provider in ["ripplenet", "checkout", "payments_direct"] {
        let (read, distinct) = by_provider.get(provider).map_or((0, 0), |(n, d)| (*n, d.len()));
        println!(
            "chaos: {provider}: {read} records, {distinct} distinct ids, {} duplicates before dedupe",
            read - distinct
        );
    }
    let rn_webhooks_ok = acks.iter().filter(|a| a.0.contains("webhook")).count();
    println!(
        "chaos: {} acknowledgements, {rn_webhooks_ok} RippleNet and {pd_webhooks_ok} Payments Direct 2xx webhook answers checked against confirmation times: 0 early, 0 lost; {dlq_records} in the DLQ",
        acks.len() - rn_webhooks_ok
    );
    println!(
        "chaos: {pd_webhooks_by_append} of the Payments Direct 2xx answers came after a state no process saw confirmed \
         (its producer killed between the broker's append and its answer) was in Kafka"
    );
    let pd_records = by_provider.get("payments_direct").map_or(0, |(n, _)| *n);
    let pd_calls = requests.iter().filter(|e| e["provider"] == "payments_direct").count();
    println!(
        "chaos: payments_direct: {:.2} records per state, {:.2} upstream calls per state (webhook fetches, searches, history reads, tokens)",
        pd_records as f64 / every_state.len().max(1) as f64,
        pd_calls as f64 / every_state.len().max(1) as f64
    );
    println!("chaos: load {:.0?}, drain {:.0?}, total {:.0?}", load_phase, drain, started.elapsed());
}
