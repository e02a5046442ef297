//! The Checkout source end to end: the sandbox's queue, a real broker, `paybridge run` as a
//! process. Messages of every kind reach Kafka and are acknowledged after their commit,
//! never with autoAck; a key that cannot be used stops the start, named.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use paybridge::event::{UpstreamIdentity, event_id};
use serde_json::json;
use support::checkout::{config, create, sandbox, sandbox_with, unacked};
use support::keys::rsa_keys;
use support::process::{Paybridge, eventually};
use support::{Broker, Record};

async fn read(broker: Broker, topic: String, expected: usize) -> (Broker, Vec<Record>) {
    tokio::task::spawn_blocking(move || {
        let records = broker.read_all(&topic, expected, Duration::from_secs(30));
        (broker, records)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_every_kind_reach_kafka_and_are_acknowledged_after_commit_never_auto() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 3), broker.new_topic("co-dlq", 1));
    let mut created = Vec::new();
    for kind in ["order", "profile", "token"] {
        created.extend(create(&sb, 100, Some(kind)).await);
    }
    let bridge = Paybridge::start(&config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    eventually("all 300 acknowledged", Duration::from_secs(60), || async { unacked(&sb).await == 0 }).await;

    let acks = sb.ledger("kind=ack&provider=checkout").await;
    assert!(acks.iter().all(|a| a["endpoint"] == "checkout.ack"), "never autoAck: {:?}", acks.first());
    let acked: HashSet<String> = acks.iter().filter_map(|a| a["id"].as_str().map(str::to_owned)).collect();
    assert_eq!(acked, created.iter().cloned().collect::<HashSet<_>>());

    let (_broker, records) = read(broker, topic, 300).await;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    assert_eq!(ids.len(), 300, "one event per message");
    let types: HashSet<String> = records.iter().filter_map(|r| r.json()["type"].as_str().map(str::to_owned)).collect();
    assert!(types.len() >= 3, "order, profile and token events: {types:?}");
    let text = support::ripplenet::metrics(bridge.admin_port);
    assert!(text.contains("paybridge_events_acked_total{source=\"co\"} 300"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_cannot_be_read_stops_the_start_and_is_named() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 1), broker.new_topic("co-dlq", 1));
    let mut bridge = Paybridge::spawn(&config(&broker, &topic, &dlq, &sb, "/nonexistent/checkout-key.pem"));
    bridge.wait_for_log("cannot start", Duration::from_secs(20));
    let code = bridge.stop();
    assert!(code.is_some_and(|c| c != 0), "exit code {code:?}:\n{}", bridge.log());
    assert!(bridge.log().contains("/nonexistent/checkout-key.pem"), "{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_redelivered_while_its_ack_fails_keeps_its_event_id_and_is_acknowledged_once_acks_work() {
    let keys = rsa_keys();
    // Unacknowledged messages come back after 1 s; the acknowledgements fail for a while.
    let sb =
        sandbox_with(&keys, |s| s.checkout.visibility_timeout = paybridge::config::HumanDuration::from_secs(1)).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 3), broker.new_topic("co-dlq", 1));
    let created: HashSet<String> = create(&sb, 50, Some("order")).await.into_iter().collect();
    let fault = json!({"endpoint": "checkout.ack", "action": "status", "status": 503, "times": 3});
    assert_eq!(sb.control("/_sandbox/faults", fault).await, reqwest::StatusCode::CREATED);
    let bridge = Paybridge::start(&config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    eventually("all 50 acknowledged after the ack outage", Duration::from_secs(60), || async {
        unacked(&sb).await == 0
    })
    .await;
    let receives = sb.ledger("kind=request&provider=checkout").await;
    let failed_acks = receives.iter().filter(|e| e["endpoint"] == "checkout.ack" && e["status"] == 503).count();
    assert_eq!(failed_acks, 3, "the outage happened");
    let stats = sb.get_json("/_sandbox/checkout/stats", None).await;
    assert!(stats["redelivered"].as_u64().is_some_and(|n| n > 0), "copies came back meanwhile: {stats}");

    let (_broker, records) = read(broker, topic, 50).await;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    assert_eq!(ids.len(), 50, "one event id per message, whatever the deliveries");
    let expected: HashSet<String> = created
        .iter()
        .map(|m| event_id("merchant-001", &UpstreamIdentity::CheckoutMessage(m.clone())).to_string())
        .collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<HashSet<_>>(), "the ids come from messageId");
    let text = support::ripplenet::metrics(bridge.admin_port);
    assert!(text.contains("paybridge_ack_failed_total{source=\"co\"}"), "ack failures are counted:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_acknowledgement_is_redelivered_with_a_new_handle_and_only_acknowledged_again() {
    let keys = rsa_keys();
    let sb =
        sandbox_with(&keys, |s| s.checkout.visibility_timeout = paybridge::config::HumanDuration::from_secs(1)).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 1), broker.new_topic("co-dlq", 1));
    let created = create(&sb, 10, Some("order")).await;
    // The acknowledgement and both its retries list every message in ackFailedMessages.
    let fault = json!({"endpoint": "checkout.ack", "action": "ack_invalid", "times": 3});
    assert_eq!(sb.control("/_sandbox/faults", fault).await, reqwest::StatusCode::CREATED);
    let bridge = Paybridge::start(&config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    eventually("all 10 acknowledged after their redelivery", Duration::from_secs(30), || async {
        unacked(&sb).await == 0
    })
    .await;
    let stats = sb.get_json("/_sandbox/checkout/stats", None).await;
    assert_eq!(stats["redelivered"], 10, "every message came back after the visibility timeout: {stats}");
    let text = support::ripplenet::metrics(bridge.admin_port);
    assert!(text.contains("paybridge_ack_invalid_total{source=\"co\"} 10"), "the refusals are counted:\n{text}");
    let acks = sb.ledger("kind=ack&provider=checkout").await;
    assert_eq!(acks.len(), 10, "acknowledged once each, after the redelivery: {acks:?}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = tokio::task::spawn_blocking(move || broker.read_to_end(&topic, Duration::from_secs(30)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    let expected: HashSet<String> = created
        .iter()
        .map(|m| event_id("merchant-001", &UpstreamIdentity::CheckoutMessage(m.clone())).to_string())
        .collect();
    assert_eq!(ids.len(), 10, "the redelivered copies were not published again: {ids:?}");
    assert_eq!(ids.into_iter().map(str::to_owned).collect::<HashSet<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_failed_messages_are_acknowledged_again_and_what_keeps_failing_is_counted() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 3), broker.new_topic("co-dlq", 1));
    create(&sb, 20, Some("token")).await;
    // The first ack lists every message in ackFailedMessages: the retry acknowledges them.
    let fault = json!({"endpoint": "checkout.ack", "action": "ack_invalid", "times": 1});
    assert_eq!(sb.control("/_sandbox/faults", fault).await, reqwest::StatusCode::CREATED);
    let bridge = Paybridge::start(&config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    eventually("all 20 acknowledged", Duration::from_secs(30), || async { unacked(&sb).await == 0 }).await;
    let calls: Vec<u64> = sb
        .ledger("kind=request&provider=checkout")
        .await
        .iter()
        .filter(|e| e["endpoint"] == "checkout.ack")
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert!(calls.len() >= 2, "the failed ones were acknowledged again: {calls:?}");
    let text = support::ripplenet::metrics(bridge.admin_port);
    assert!(
        !text.contains("paybridge_ack_invalid_total{source=\"co\"}")
            || text.contains("paybridge_ack_invalid_total{source=\"co\"} 0"),
        "{text}"
    );

    // Always failing: after the retries they are counted and left to redelivery, not acked.
    create(&sb, 5, Some("order")).await;
    let fault = json!({"endpoint": "checkout.ack", "action": "ack_invalid"});
    assert_eq!(sb.control("/_sandbox/faults", fault).await, reqwest::StatusCode::CREATED);
    eventually("the refusals counted", Duration::from_secs(30), || async {
        support::ripplenet::metrics(bridge.admin_port).contains("paybridge_ack_invalid_total{source=\"co\"} 5")
    })
    .await;
    assert_eq!(unacked(&sb).await, 5, "nothing acknowledged by the retries");
}
