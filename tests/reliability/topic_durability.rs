//! Durability at start: a topic whose replication factor is below 3, whose
//! `min.insync.replicas` is below 2 or whose unclean leader election is on is named at every
//! start (one warning per topic, with its values) and exported as
//! `paybridge_topic_durability_weak{topic} 1`; paybridge still runs (a development broker
//! stays usable). With `kafka.require_durable_topics = true` it refuses to start with the
//! reason, and acknowledges nothing.

use crate::support;

use std::time::Duration;

use support::Broker;
use support::process::Paybridge;
use support::ripplenet::{ACCOUNT, FAST, acked, metrics};
use support::sandbox::Sandbox;

struct Setup {
    broker: Broker,
    sandbox: Sandbox,
    topic: String,
    dlq: String,
}

/// An events topic with min.insync.replicas=1 and unclean elections on, a DLQ with the
/// broker's defaults (one replica on this one-node broker).
async fn setup() -> Setup {
    let broker = Broker::start();
    let topic = support::unique_topic("weak-events");
    broker.create_topic_with(&topic, 1, &[("min.insync.replicas", "1"), ("unclean.leader.election.enable", "true")]);
    let dlq = broker.new_topic("weak-dlq", 1);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    Setup { broker, sandbox, topic, dlq }
}

fn config(s: &Setup, require: bool) -> String {
    support::base_config(&s.broker, &s.topic, &s.dlq).replacen(
        "[kafka]\n",
        &format!("[kafka]\nrequire_durable_topics = {require}\n"),
        1,
    ) + &support::sources::ripplenet(&s.sandbox, ACCOUNT, FAST)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_topic_is_named_with_its_values_at_every_start_and_exported() {
    let s = setup().await;
    if s.broker.is_tansu() {
        return; // tansu 0.6.0 keeps no replication settings.
    }
    let bridge = Paybridge::start(&config(&s, false));
    let log = bridge.log();
    let warning = |topic: &str| {
        log.lines()
            .find(|l| l.contains(" WARN ") && l.contains("acks=all promises") && l.contains(&format!("topic={topic}")))
            .and_then(|l| l.split("shortfalls=").nth(1))
            .map(str::to_owned)
    };
    let events = warning(&s.topic).unwrap_or_else(|| panic!("no warning for the events topic:\n{log}"));
    for shortfall in ["replication factor 1", "min.insync.replicas=1", "unclean.leader.election.enable=true"] {
        assert!(events.contains(shortfall), "{shortfall} missing from: {events}");
    }
    let dlq = warning(&s.dlq).unwrap_or_else(|| panic!("no warning for the DLQ:\n{log}"));
    assert!(dlq.contains("replication factor 1") && !dlq.contains("unclean"), "{dlq}");
    let exported = metrics(bridge.admin_port);
    for topic in [&s.topic, &s.dlq] {
        let line = format!("paybridge_topic_durability_weak{{topic=\"{topic}\"}} 1");
        assert!(exported.contains(&line), "{line} missing from the metrics");
    }
    s.sandbox.create(5).await;
    bridge
        .eventually("a weak topic still carries events", Duration::from_secs(30), || async {
            acked(&s.sandbox).await == 5
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_durable_topics_refuses_to_start_on_a_weak_topic_naming_each_shortfall() {
    let s = setup().await;
    if s.broker.is_tansu() {
        return;
    }
    s.sandbox.create(5).await;
    let mut bridge = Paybridge::spawn(&config(&s, true));
    let code = bridge.wait_exit(Duration::from_secs(30));
    let log = bridge.log();
    assert_eq!(code, Some(1), "{log}");
    let reason = log.lines().find(|l| l.contains("require_durable_topics is set")).unwrap_or_default();
    let expected =
        format!("topic {} has replication factor 1 (at least 3), min.insync.replicas=1 (at least 2)", s.topic);
    assert!(reason.contains(&expected), "expected {expected:?} in:\n{log}");
    assert!(!log.contains("paybridge started"), "never ready:\n{log}");
    assert_eq!(acked(&s.sandbox).await, 0, "nothing acknowledged");
}
