//! `paybridge reconcile` as a process against a real broker and the sandbox: paybridge run
//! publishes a Payments Direct source's states (several per payment, some only in the
//! payments' histories by the time they are read); a copy of the events topic loses three
//! records; reconcile over the copy reports exactly those three as missing, --repair
//! publishes them with their ids, and a second reconcile reports nothing.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use support::process::{Paybridge, eventually};
use support::sandbox::Sandbox;
use support::{Broker, sources};

fn reconcile(config: &std::path::Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let ran = support::commands::paybridge("reconcile", config, args);
    (ran.code, ran.json(), ran.output())
}

/// The event ids in `topic`.
fn ids(broker: &Broker, topic: &str) -> BTreeSet<String> {
    broker
        .read_to_end(topic, Duration::from_secs(10))
        .iter()
        .filter_map(|r| r.header("ce_id").map(str::to_owned))
        .collect()
}

/// A copy of `topic` without the events `lost`, and a config in `dir` that reads it as the
/// events topic.
async fn over_a_copy_without(
    broker: &Broker,
    config: &str,
    topic: &str,
    lost: &BTreeSet<String>,
    dir: &std::path::Path,
) -> (String, std::path::PathBuf) {
    let copy = broker.new_topic(&format!("{topic}-copy"), 3);
    copy_without(broker, topic, &copy, lost).await;
    let over_copy = config.replacen(&format!("topic = \"{topic}\""), &format!("topic = \"{copy}\""), 1);
    (copy, support::commands::write_config(dir, &over_copy))
}

/// Copies every record of `topic` to `copy` but those of the events `lost`.
async fn copy_without(broker: &Broker, topic: &str, copy: &str, lost: &BTreeSet<String>) {
    let producer: FutureProducer = broker.client_config().create().unwrap_or_else(|e| panic!("{e}"));
    for record in broker.read_to_end(topic, Duration::from_secs(10)) {
        if record.header("ce_id").is_some_and(|id| lost.contains(id)) {
            continue;
        }
        let headers = record
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| h.insert(Header { key: k, value: Some(v.as_bytes()) }));
        let key = record.key.clone().unwrap_or_default();
        let copied = FutureRecord::to(copy).key(&key).payload(&record.value).headers(headers);
        producer.send(copied, Duration::from_secs(10)).await.unwrap_or_else(|(e, _)| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_exactly_the_three_lost_events_and_repair_brings_it_to_zero() {
    let from = chrono::Utc::now() - chrono::Duration::seconds(5);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let broker = Broker::start();
    let (topic, dlq, state) =
        (broker.new_topic("rc-events", 3), broker.new_topic("rc-dlq", 1), broker.new_topic("rc-state", 1));
    let settings = "interval = \"300ms\"\nmax_idle_interval = \"1s\"\nsafety_lag = \"1s\"\nbackoff_max = \"1s\"\nstart_from = \"1m\"";
    let source = sources::payments_direct(&sandbox, "acme-pd", settings);
    let config = support::base_config_with_state(&broker, &topic, &dlq, &state) + &source;

    // States on several pages: 12 payments, 8 moved on while paybridge runs, 4 of them twice
    // between two of its searches (their middle state only in the history).
    let payments = sandbox.pd_create(12).await;
    let bridge = Paybridge::spawn(&config);
    eventually("the first states published", Duration::from_secs(60), || async { ids(&broker, &topic).len() >= 12 })
        .await;
    for id in &payments[..8] {
        assert!(sandbox.pd_transition(id, "VALIDATING").await.is_success());
    }
    for id in &payments[..4] {
        assert!(sandbox.pd_transition(id, "TRANSFERRING").await.is_success());
    }
    eventually("every state published", Duration::from_secs(60), || async { ids(&broker, &topic).len() >= 12 + 8 + 4 })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(bridge);
    let published = ids(&broker, &topic);
    assert_eq!(published.len(), 24, "one event per state");

    // A copy of the topic without three of its records.
    let lost: BTreeSet<String> = published.iter().step_by(7).take(3).cloned().collect();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (copy, path) = over_a_copy_without(&broker, &config, &topic, &lost, dir.path()).await;

    let to = chrono::Utc::now().to_rfc3339();
    let period = ["--source", "pd", "--from", &from.to_rfc3339(), "--to", &to, "--format", "json"];
    let (code, report, output) = reconcile(&path, &period);
    assert_eq!(code, Some(1), "three missing: {output}");
    assert_eq!(report["upstream"], 24, "{output}");
    assert_eq!((report["accounted"].as_u64(), report["missing"].as_u64()), (Some(21), Some(3)), "{output}");
    assert_eq!(report["unknown_upstream"], 0, "{output}");
    let missing = support::commands::sample_ids(&report, "missing_samples");
    assert_eq!(missing, lost, "exactly the lost ones");
    assert!(report["upstream_read"]["histories"].as_u64().is_some_and(|h| h >= 8), "{output}");

    let repair: Vec<&str> = period.iter().copied().chain(["--repair"]).collect();
    let (code, report, output) = reconcile(&path, &repair);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(report["repaired"]["published"], 3, "{output}");
    assert_eq!(ids(&broker, &copy), published, "the copy has every event again, with its id");

    let (code, report, output) = reconcile(&path, &period);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!((report["missing"].as_u64(), report["unknown_upstream"].as_u64()), (Some(0), Some(0)), "{output}");

    // The same as text; bad input.
    let (code, _, output) = reconcile(&path, &period[..6]);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("missing from Kafka: 0") && output.contains("accounted for: 24"), "{output}");
    let (code, _, output) = reconcile(&path, &["--source", "pd", "--from", &to, "--to", &from.to_rfc3339()]);
    assert_eq!(code, Some(2), "{output}");
}

/// Checkout: what `paybridge run` published and acknowledged, against the period query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_period_is_reconciled_against_the_period_query() {
    let from = chrono::Utc::now() - chrono::Duration::seconds(5);
    let keys = support::keys::rsa_keys();
    let sandbox = support::checkout::sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("rco-events", 3), broker.new_topic("rco-dlq", 1));
    let config = support::checkout::config(&broker, &topic, &dlq, &sandbox, &keys.private_file.display().to_string());
    let created = support::checkout::create(&sandbox, 40, None).await;
    let bridge = Paybridge::spawn(&config);
    eventually("every message acknowledged", Duration::from_secs(60), || async {
        support::checkout::unacked(&sandbox).await == 0
    })
    .await;
    drop(bridge);
    let published = ids(&broker, &topic);
    assert_eq!(published.len(), created.len());
    let lost: BTreeSet<String> = published.iter().skip(3).step_by(11).take(2).cloned().collect();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (copy, path) = over_a_copy_without(&broker, &config, &topic, &lost, dir.path()).await;

    let to = chrono::Utc::now().to_rfc3339();
    let period = ["--source", "co", "--from", &from.to_rfc3339(), "--to", &to, "--format", "json"];
    let (code, report, output) = reconcile(&path, &period);
    assert_eq!(code, Some(1), "{output}");
    assert_eq!((report["upstream"].as_u64(), report["missing"].as_u64()), (Some(40), Some(2)), "{output}");
    assert_eq!(report["unknown_upstream"], 0, "{output}");
    let missing = support::commands::sample_ids(&report, "missing_samples");
    assert_eq!(missing, lost);
    let repair: Vec<&str> = period.iter().copied().chain(["--repair"]).collect();
    let (code, report, output) = reconcile(&path, &repair);
    assert_eq!((code, report["repaired"]["published"].as_u64()), (Some(0), Some(2)), "{output}");
    assert_eq!(ids(&broker, &copy), published);
    assert_eq!(support::checkout::unacked(&sandbox).await, 0, "nothing changed upstream");
}

/// RippleNet: the SENT notifications a lost poller read (flipped from NEW, never published,
/// never acknowledged) are reported missing, found across ranges split to fit a two-item
/// page; --repair publishes them; acknowledged ones are outside what the API lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ripplenet_sent_notifications_not_in_kafka_are_found_and_repaired() {
    let from = chrono::Utc::now() - chrono::Duration::seconds(5);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("rrn-events", 3), broker.new_topic("rrn-dlq", 1));
    let s = support::ripplenet::Setup { broker, sandbox, topic: topic.clone(), dlq };
    let published = s.sandbox.create(10).await;
    // The sweeper waits an hour: the lost poller's notifications stay SENT and unpublished.
    let config = support::ripplenet::config(&s, "new_interval = \"300ms\"\nsent_delay = \"60m\"\npage_size = 2");
    let bridge = Paybridge::spawn(&config);
    eventually("ten acknowledged", Duration::from_secs(60), || async {
        support::ripplenet::acked(&s.sandbox).await == 10
    })
    .await;
    drop(bridge);
    // A poller that read five NEW notifications one by one and lost them.
    let lost = s.sandbox.create(5).await;
    let token = s.sandbox.token().await;
    for _ in 0..5 {
        let answer = s.sandbox.get(&token, "/v4/orchestration/payment/notification?status=NEW&size=1").await;
        assert!(answer.status().is_success());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = support::commands::write_config(dir.path(), &config);

    let to = chrono::Utc::now().to_rfc3339();
    let period = ["--source", "rn", "--from", &from.to_rfc3339(), "--to", &to, "--format", "json"];
    let (code, report, output) = reconcile(&path, &period);
    assert_eq!(code, Some(1), "{output}");
    assert_eq!((report["upstream"].as_u64(), report["missing"].as_u64()), (Some(5), Some(5)), "{output}");
    assert_eq!(report["unknown_counted"], false, "{output}");
    assert!(report["upstream_read"]["pages"].as_u64().is_some_and(|p| p > 3), "ranges split: {output}");
    assert_eq!(report["upstream_read"]["truncated"], 0, "{output}");
    let missing = support::commands::sample_ids(&report, "missing_samples");
    let expected: BTreeSet<String> = lost.iter().map(|u| support::ripplenet::id_of(u)).collect();
    assert_eq!(missing, expected);

    let repair: Vec<&str> = period.iter().copied().chain(["--repair"]).collect();
    let (code, report, output) = reconcile(&path, &repair);
    assert_eq!((code, report["repaired"]["published"].as_u64()), (Some(0), Some(5)), "{output}");
    let (code, report, output) = reconcile(&path, &period);
    assert_eq!(
        (code, report["accounted"].as_u64(), report["missing"].as_u64()),
        (Some(0), Some(5), Some(0)),
        "{output}"
    );
    let all: BTreeSet<String> = published.iter().chain(&lost).map(|u| support::ripplenet::id_of(u)).collect();
    assert_eq!(ids(&s.broker, &topic), all);
    assert_eq!(support::ripplenet::acked(&s.sandbox).await, 10, "reconcile acknowledges nothing");
    let (_, _, text) = reconcile(&path, &period[..6]);
    assert!(text.contains("unknown upstream: not counted") && text.contains("cannot see: RippleNet"), "{text}");
}
