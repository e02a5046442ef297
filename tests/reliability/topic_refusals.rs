//! A broker-side misconfiguration cannot drain the stream into the DLQ: a topic that refuses
//! every record pauses publishing (nothing acknowledged, /readyz failing, an alert metric)
//! and resumes by itself once a probe record is accepted; a topic whose size limit refuses
//! every record opens the DLQ breaker after `kafka.dlq_breaker_max` dead letters.

use crate::support;

use std::time::Duration;

use support::Broker;
use support::process::{Paybridge, eventually};
use support::ripplenet::{acked, config, metrics, read, setup};
use support::topic_config::{set_refusing_topic_config, set_topic_config};

fn readiness(admin_port: u16) -> (u16, String) {
    let (status, _, body) =
        support::http_get(([127, 0, 0, 1], admin_port).into(), "/readyz").unwrap_or((0, String::new(), String::new()));
    (status, body)
}

fn gauge(admin_port: u16, line_start: &str) -> Option<u64> {
    metrics(admin_port).lines().find(|l| l.starts_with(line_start))?.rsplit(' ').next()?.parse().ok()
}

const SOURCE: &str = "new_interval = \"500ms\"\nsent_interval = \"2s\"\nsent_delay = \"0s\"\nbackoff_max = \"2s\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_refuses_every_record_pauses_publishing_unacknowledged_then_resumes() {
    let s = setup().await;
    if s.broker.is_tansu() {
        return; // tansu 0.6.0 has no topic timestamp policy.
    }
    let bridge = Paybridge::start(&config(&s, SOURCE));
    // A broker-side change: the topic now refuses every record it did not stamp itself
    // within 0 ms (Kafka answers INVALID_TIMESTAMP, a topic-level refusal).
    set_refusing_topic_config(&s.broker, &s.topic, "message.timestamp.before.max.ms", "0").await;
    let created = s.sandbox.create(20).await;
    eventually("readiness fails with the reason", Duration::from_secs(20), || async {
        let (status, body) = readiness(bridge.admin_port);
        status == 503 && body.contains("the topic refuses records")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(acked(&s.sandbox).await, 0, "nothing acknowledged while the topic refuses records");
    assert_eq!(gauge(bridge.admin_port, "paybridge_topic_refusing "), Some(1));
    let (broker, dead) = read(s.broker, s.dlq.clone()).await;
    assert!(dead.is_empty(), "nothing dead-lettered: {} records", dead.len());

    // The topic is fixed: a probe is accepted, publishing resumes, everything is acknowledged.
    set_topic_config(&broker, &s.topic, "message.timestamp.before.max.ms", "9223372036854775807").await;
    eventually("all 20 acknowledged", Duration::from_secs(60), || async { acked(&s.sandbox).await == 20 }).await;
    eventually("ready again", Duration::from_secs(20), || async { readiness(bridge.admin_port).0 == 200 }).await;
    assert_eq!(gauge(bridge.admin_port, "paybridge_topic_refusing "), Some(0));
    let (broker, records) = read(broker, s.topic.clone()).await;
    let ids: std::collections::HashSet<String> =
        records.iter().filter_map(|r| r.header("ce_id")).map(str::to_owned).collect();
    let expected: std::collections::HashSet<String> = created.iter().map(|u| support::ripplenet::id_of(u)).collect();
    assert_eq!(ids, expected, "every notification is in the topic");
    let (_broker, dead) = read(broker, s.dlq.clone()).await;
    assert!(dead.is_empty(), "still nothing in the DLQ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_limit_that_refuses_every_record_opens_the_dlq_breaker_after_its_max() {
    let s = setup().await;
    if s.broker.is_tansu() {
        return; // tansu 0.6.0 does not enforce max.message.bytes.
    }
    let text = config(&s, SOURCE).replacen("[kafka]\n", "[kafka]\ndlq_breaker_max = 5\ndlq_breaker_window = 50\n", 1);
    let bridge = Paybridge::start(&text);
    // A broker-side change: records larger than 100 bytes (every event) are refused.
    set_refusing_topic_config(&s.broker, &s.topic, "max.message.bytes", "100").await;
    let created = s.sandbox.create(30).await;
    eventually("readiness fails with the reason", Duration::from_secs(20), || async {
        let (status, body) = readiness(bridge.admin_port);
        status == 503 && body.contains("DLQ breaker open")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let acked_while_open = acked(&s.sandbox).await;
    let (broker, dead) = read(s.broker, s.dlq.clone()).await;
    assert!(dead.len() <= 5 && !dead.is_empty(), "at most dlq_breaker_max dead letters: {}", dead.len());
    assert_eq!(acked_while_open, dead.len() as u64, "only what is in the DLQ is acknowledged");
    let breaker = metrics(bridge.admin_port);
    assert!(breaker.lines().any(|l| l.starts_with("paybridge_dlq_breaker_open{") && l.ends_with(" 1")), "{breaker}");

    // The limit is restored: the next accepted event closes the breaker; the rest go out.
    set_topic_config(&broker, &s.topic, "max.message.bytes", "1048588").await;
    eventually("all 30 acknowledged", Duration::from_secs(60), || async { acked(&s.sandbox).await == 30 }).await;
    eventually("ready again", Duration::from_secs(20), || async { readiness(bridge.admin_port).0 == 200 }).await;
    let (broker, records) = read(broker, s.topic.clone()).await;
    let (_broker, dead_after) = read(broker, s.dlq.clone()).await;
    assert_eq!(dead_after.len(), dead.len(), "no dead letter after the breaker opened");
    let ids: std::collections::HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    assert_eq!(ids.len() + dead.len(), created.len(), "every notification in the topic or the DLQ");
}

/// Kafka's INVALID_RECORD error code.
const INVALID_RECORD: i16 = 87;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_refuses_every_record_with_invalid_record_leaves_everything_unacknowledged_then_recovers() {
    if support::Engine::chosen() == support::Engine::Tansu {
        return; // a broker behind the proxy is an Apache Kafka broker.
    }
    // Every connection after the bootstrap goes through the proxy, which answers Produce
    // with INVALID_RECORD (broker-side validation refusing every record) while told to.
    let proxy = support::kafka_proxy::HoldingProxy::listen(support::kafka_proxy::PRODUCE);
    let broker = Broker::start_own_behind(&proxy);
    let (topic, dlq) = (broker.new_topic("ir-events", 1), broker.new_topic("ir-dlq", 1));
    let sandbox = support::sandbox::Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let s = support::ripplenet::Setup { broker, sandbox, topic, dlq };
    let bridge = Paybridge::start(&config(&s, SOURCE));
    proxy.refuse_produce(INVALID_RECORD);
    let created = s.sandbox.create(20).await;
    eventually("readiness fails with the reason", Duration::from_secs(20), || async {
        let (status, body) = readiness(bridge.admin_port);
        status == 503 && body.contains("the topic refuses records") && body.contains("InvalidRecord")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(proxy.refused() > 0, "the proxy refused the produce requests");
    assert_eq!(acked(&s.sandbox).await, 0, "nothing acknowledged while every record is refused");
    assert_eq!(gauge(bridge.admin_port, "paybridge_topic_refusing "), Some(1));

    proxy.refuse_produce(0);
    eventually("all 20 acknowledged", Duration::from_secs(60), || async { acked(&s.sandbox).await == 20 }).await;
    eventually("ready again", Duration::from_secs(20), || async { readiness(bridge.admin_port).0 == 200 }).await;
    let (broker, records) = read(s.broker, s.topic.clone()).await;
    let ids: std::collections::HashSet<String> =
        records.iter().filter_map(|r| r.header("ce_id")).map(str::to_owned).collect();
    let expected: std::collections::HashSet<String> = created.iter().map(|u| support::ripplenet::id_of(u)).collect();
    assert_eq!(ids, expected, "every notification is in the topic");
    let (_broker, dead) = read(broker, s.dlq.clone()).await;
    assert!(dead.is_empty(), "nothing in the DLQ: {}", dead.len());
}

/// A Payments Direct source in exactly-once mode on `broker` (topics named after `prefix`,
/// `kafka_extra` added to `[kafka]`): the sandbox, (events, DLQ) topics and the process.
async fn exactly_once_bridge(
    broker: &Broker,
    prefix: &str,
    kafka_extra: &str,
) -> (support::sandbox::Sandbox, String, String, Paybridge) {
    let sandbox = support::sandbox::Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let (topic, dlq, state) = (
        broker.new_topic(&format!("{prefix}-events"), 1),
        broker.new_topic(&format!("{prefix}-dlq"), 1),
        broker.new_topic(&format!("{prefix}-state"), 1),
    );
    let settings = "interval = \"1s\"\nmax_idle_interval = \"2s\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"\nbackoff_max = \"2s\"";
    // A transactional id prefix of its own: tests running at once would fence each other.
    let kafka = format!("[kafka]\nexactly_once = true\ntransactional_id_prefix = \"{topic}\"\n{kafka_extra}");
    let config = support::base_config_with_state(broker, &topic, &dlq, &state).replacen("[kafka]\n", &kafka, 1)
        + &support::sources::payments_direct(&sandbox, "pd-acct", settings);
    (sandbox, topic, dlq, Paybridge::start(&config))
}

/// Waits (at most 30 s) until `topic` holds a committed record of each of `created`, then
/// checks that and that `dlq` is empty.
async fn every_payment_committed_none_dead(broker: Broker, topic: &str, dlq: &str, created: &[String]) {
    let mut records = Vec::new();
    let mut broker = broker;
    for _ in 0..30 {
        let (back, now) = read(broker, topic.to_owned()).await;
        broker = back;
        records = now;
        if records.len() >= created.len() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let payments: std::collections::HashSet<String> =
        records.iter().filter_map(|r| r.json()["data"]["payment_id"].as_str().map(str::to_owned)).collect();
    assert_eq!(payments.len(), created.len(), "every payment's state committed");
    let (_broker, dead) = read(broker, dlq.to_owned()).await;
    assert!(dead.is_empty(), "nothing dead-lettered: {}", dead.len());
}

/// With `kafka.exactly_once` each attempt of the page is the probe: a refused attempt is
/// aborted (nothing committed, nothing dead-lettered, the position stays), and attempts go
/// on until the topic accepts the page. The refusal comes from a protocol-level stand-in
/// answering every Produce with INVALID_RECORD: a topic policy would refuse the broker's own
/// abort markers too (a timestamp policy of 0 ms does), and no producer can then finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_exactly_once_a_refusing_topic_fails_readiness_and_nothing_commits_until_it_accepts() {
    if support::Engine::chosen() == support::Engine::Tansu {
        return; // no transactions on tansu 0.6.0.
    }
    let proxy = support::kafka_proxy::HoldingProxy::listen(support::kafka_proxy::PRODUCE);
    let broker = Broker::start_own_behind(&proxy);
    let (sandbox, topic, dlq, bridge) = exactly_once_bridge(&broker, "eo", "").await;
    proxy.refuse_produce(INVALID_RECORD);
    let created = sandbox.pd_create(10).await;
    bridge
        .eventually("readiness fails with the reason", Duration::from_secs(30), || async {
            let (status, body) = readiness(bridge.admin_port);
            status == 503 && body.contains("the topic refuses records") && body.contains("InvalidRecord")
        })
        .await;
    // Several more attempts (2 s apart at most), each refused.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(proxy.refused() >= 3, "several attempts refused: {}", proxy.refused());
    let (status, body) = readiness(bridge.admin_port);
    assert!(status == 503 && body.contains("the topic refuses records"), "still paused: {status} {body}");
    assert_eq!(gauge(bridge.admin_port, "paybridge_topic_refusing "), Some(1));
    let (broker, committed) = read(broker, topic.clone()).await;
    assert!(committed.is_empty(), "nothing committed while the topic refuses records: {}", committed.len());
    let (broker, dead) = read(broker, dlq.clone()).await;
    assert!(dead.is_empty(), "nothing dead-lettered: {}", dead.len());

    proxy.refuse_produce(0);
    bridge.eventually("ready again", Duration::from_secs(60), || async { readiness(bridge.admin_port).0 == 200 }).await;
    assert_eq!(gauge(bridge.admin_port, "paybridge_topic_refusing "), Some(0));
    every_payment_committed_none_dead(broker, &topic, &dlq, &created).await;
}

/// With `kafka.exactly_once` the DLQ breaker counts the events a page would dead-letter:
/// past its max the page is Retry (aborted, nothing dead-lettered), each attempt a probe
/// of the whole page, until the topic accepts the events again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_exactly_once_a_size_limit_that_refuses_every_record_opens_the_dlq_breaker() {
    let broker = Broker::start();
    if broker.is_tansu() {
        return; // no transactions on tansu 0.6.0.
    }
    let (sandbox, topic, dlq, bridge) =
        exactly_once_bridge(&broker, "eb", "dlq_breaker_max = 5\ndlq_breaker_window = 50\n").await;
    set_refusing_topic_config(&broker, &topic, "max.message.bytes", "100").await;
    let created = sandbox.pd_create(30).await;
    bridge
        .eventually("readiness fails with the reason", Duration::from_secs(30), || async {
            let (status, body) = readiness(bridge.admin_port);
            status == 503 && body.contains("DLQ breaker open")
        })
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (broker, committed) = read(broker, topic.clone()).await;
    let events = committed.iter().filter(|r| r.header("ce_id").is_some()).count();
    assert_eq!(events, 0, "nothing committed");
    let (broker, dead) = read(broker, dlq.clone()).await;
    assert!(dead.is_empty(), "nothing dead-lettered: {}", dead.len());
    let breaker = metrics(bridge.admin_port);
    assert!(breaker.lines().any(|l| l.starts_with("paybridge_dlq_breaker_open{") && l.ends_with(" 1")), "{breaker}");

    set_topic_config(&broker, &topic, "max.message.bytes", "1048588").await;
    bridge.eventually("ready again", Duration::from_secs(60), || async { readiness(bridge.admin_port).0 == 200 }).await;
    every_payment_committed_none_dead(broker, &topic, &dlq, &created).await;
}
