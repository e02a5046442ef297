//! The Checkout source end to end: the sandbox's queue, a real broker, `paybridge run` as a
//! process. Messages of every kind reach Kafka and are acknowledged after their commit,
//! never with autoAck; a key that cannot be used stops the start, named.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use paybridge::event::{UpstreamIdentity, event_id};
use serde_json::json;
use support::checkout::{config, create, sandbox, sandbox_with, unacked};
use support::keys::rsa_keys;
use support::process::{Paybridge, eventually};
use support::{Broker, Record, read_records as read};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_of_every_kind_reach_kafka_and_no_ack_precedes_its_commit_nor_is_automatic() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 3), broker.new_topic("co-dlq", 1));
    let created = create(&sb, 1000, None).await;
    assert_eq!(created.len(), 1000);
    let bridge = Paybridge::start(&config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    eventually("all 1000 acknowledged", Duration::from_secs(90), || async { unacked(&sb).await == 0 }).await;

    let stats = sb.get_json("/_sandbox/checkout/stats", None).await;
    assert_eq!(stats["auto_ack_receives"], 0, "never a receive with autoAck=true: {stats}");
    let acks = sb.ledger("kind=ack&provider=checkout").await;
    assert!(acks.iter().all(|a| a["endpoint"] == "checkout.ack"), "acknowledged by the ack call: {:?}", acks.first());
    let acked: HashSet<String> = acks.iter().filter_map(|a| a["id"].as_str().map(str::to_owned)).collect();
    assert_eq!(acked, created.iter().cloned().collect::<HashSet<_>>());

    let (_broker, records) = read(broker, topic, 1000).await;
    let mut written: HashMap<String, i64> = HashMap::new();
    for r in &records {
        if let (Some(id), Some(ts)) = (r.header("ce_id"), r.timestamp) {
            let at = written.entry(id.to_owned()).or_insert(ts);
            *at = (*at).min(ts);
        }
    }
    assert_eq!(written.len(), 1000, "one event per message");
    for ack in &acks {
        let message = ack["id"].as_str().unwrap_or_default();
        let id = event_id("merchant-001", &UpstreamIdentity::CheckoutMessage(message.to_owned())).to_string();
        let at =
            chrono::DateTime::parse_from_rfc3339(ack["at"].as_str().unwrap_or_default()).map(|t| t.timestamp_millis());
        let written_at = written.get(&id).copied();
        assert!(
            matches!((at, written_at), (Ok(a), Some(w)) if a >= w),
            "ack of {message} at {at:?} precedes its event's write at {written_at:?}"
        );
    }
    let types: HashSet<String> = records.iter().filter_map(|r| r.json()["type"].as_str().map(str::to_owned)).collect();
    assert!(types.len() >= 3, "order, profile and token events: {types:?}");
    let text = support::ripplenet::metrics(bridge.admin_port);
    assert!(text.contains("paybridge_events_acked_total{source=\"co\"} 1000"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_receives_are_in_flight_by_default_and_one_when_configured() {
    let keys = rsa_keys();
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 1), broker.new_topic("co-dlq", 1));
    for (extra, want) in [("", 4), ("receivers = 1\n", 1)] {
        let sb = sandbox(&keys).await;
        let text = config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string())
            .replace("timeout = \"1s\"\n", &format!("timeout = \"1s\"\n{extra}"));
        let _bridge = Paybridge::start(&text);
        // Idle long polls (1 s each) overlap when there are several receivers.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let stats = sb.get_json("/_sandbox/checkout/stats", None).await;
        assert_eq!(stats["max_concurrent_receives"], want, "{extra:?}: {stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_at_start_nothing_is_received_or_acked_until_it_returns() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let mut broker = Broker::start_own();
    let (topic, dlq) = (broker.new_topic("co-events", 3), broker.new_topic("co-dlq", 1));
    let created = create(&sb, 50, None).await;
    broker.stop();
    let bridge = Paybridge::spawn(&config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    bridge.wait_for_log("brokers unreachable", Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(unacked(&sb).await, 50, "nothing is acknowledged while the broker is down");
    let stats = sb.get_json("/_sandbox/checkout/stats", None).await;
    assert_eq!(stats["deliveries"], 0, "nothing is even received: {stats}");

    broker.restart();
    eventually("all 50 acknowledged after the broker returned", Duration::from_secs(90), || async {
        unacked(&sb).await == 0
    })
    .await;
    let (_broker, records) = read(broker, topic, 50).await;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    for message in &created {
        let id = event_id("merchant-001", &UpstreamIdentity::CheckoutMessage(message.clone())).to_string();
        assert!(ids.contains(id.as_str()), "{message} is in Kafka");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_cannot_be_read_stops_the_start_and_is_named() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 1), broker.new_topic("co-dlq", 1));
    let mut bridge = Paybridge::spawn(&config(&broker, &topic, &dlq, &sb, "/nonexistent/checkout-key.pem"));
    // Refused with the configuration's errors (exit 2), before anything starts.
    bridge.wait_for_log(
        "sources[0].auth.private_key_path: /nonexistent/checkout-key.pem does not exist",
        Duration::from_secs(20),
    );
    let code = bridge.stop();
    assert_eq!(code, Some(2), "exit code {code:?}:\n{}", bridge.log());
    assert!(!bridge.log().contains("paybridge started"), "{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_redelivered_while_its_ack_fails_keeps_its_event_id_and_is_acknowledged_once_acks_work() {
    let keys = rsa_keys();
    // Unacknowledged messages come back after 1 s; the acknowledgements fail for a while.
    let sb = sandbox_with(&keys, |s| s.checkout.visibility_timeout = std::time::Duration::from_secs(1)).await;
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
    // (Registered at zero at start: counted means above zero.)
    assert!(
        support::metric_sum(bridge.admin_port, "paybridge_ack_failed_total{source=\"co\"}") > 0,
        "ack failures are counted:\n{text}"
    );
    let errors =
        text.lines().find(|l| l.starts_with("paybridge_upstream_errors_total{") && l.contains("status=\"503\""));
    assert!(
        errors.is_some_and(|l| l.contains("endpoint=\"POST notifications/ack\"") && l.ends_with(" 3")),
        "the provider's errors are counted with its code:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_acknowledgement_is_redelivered_with_a_new_handle_and_only_acknowledged_again() {
    let keys = rsa_keys();
    let sb = sandbox_with(&keys, |s| s.checkout.visibility_timeout = std::time::Duration::from_secs(1)).await;
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
async fn an_unknown_kind_is_published_and_a_malformed_message_goes_to_the_dlq_after_max_attempts() {
    let keys = rsa_keys();
    let sb = sandbox_with(&keys, |s| s.checkout.visibility_timeout = std::time::Duration::from_secs(1)).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 1), broker.new_topic("co-dlq", 1));
    let good = create(&sb, 5, Some("order")).await;
    let exact = |notification: &str, body: serde_json::Value| {
        let request = json!({"count": 1, "notification": notification, "body": body});
        let sb = &sb;
        async move {
            let r = sb.http.post(sb.url("/_sandbox/checkout/messages")).json(&request).send().await;
            let v: serde_json::Value = r.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
            v["messageIds"][0].as_str().unwrap_or_default().to_owned()
        }
    };
    let refund = exact("refundNotification", json!({"status": "REFUND_DONE", "refundId": "R-1"})).await;
    let broken = exact("orderNotification", json!("not an object")).await;
    let text = config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string())
        .replace("backoff_max = \"1s\"", "backoff_max = \"1s\"\nmax_attempts = 2");
    let bridge = Paybridge::start(&text);
    eventually("all 7 acknowledged", Duration::from_secs(60), || async { unacked(&sb).await == 0 }).await;

    let (broker, dead) = read(broker, dlq, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(format!("checkout/merchant-001/{broken}").as_str()));
    let reason = dead[0].header("paybridge_dlq_reason").unwrap_or_default();
    assert!(reason.contains("orderNotification") && reason.contains("2 attempts"), "{reason}");
    assert_eq!(dead[0].json()["orderNotification"], "not an object", "the untouched message");
    let stats = sb.get_json("/_sandbox/checkout/stats", None).await;
    assert!(stats["redelivered"].as_u64().is_some_and(|n| n >= 1), "the broken one was delivered twice: {stats}");

    let (_broker, events) = read(broker, topic, 6).await;
    assert_eq!(events.len(), 6, "five orders and the unknown kind");
    let unknown: Vec<&Record> =
        events.iter().filter(|r| r.header("ce_type") == Some("dev.paybridge.checkout.unknown")).collect();
    assert_eq!(unknown.len(), 1);
    let data = &unknown[0].json()["data"];
    assert_eq!(
        (data["notification_type"].as_str(), data["payment_id"].as_str()),
        (Some("refundNotification"), Some(refund.as_str()))
    );
    assert_eq!(data["raw"]["refundNotification"]["refundId"], "R-1");
    let ids: HashSet<&str> = events.iter().filter_map(|r| r.header("ce_id")).collect();
    for message in good.iter().chain([&refund]) {
        let id = event_id("merchant-001", &UpstreamIdentity::CheckoutMessage(message.clone())).to_string();
        assert!(ids.contains(id.as_str()), "{message}");
    }
    let text = support::ripplenet::metrics(bridge.admin_port);
    assert!(text.contains("paybridge_dlq_events_total 1"), "{text}");
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

/// Receives the sandbox served between `from` and `to` (ms since the epoch).
async fn receives_between(sb: &support::sandbox::Sandbox, from: i64, to: i64) -> usize {
    sb.request_times("checkout", "checkout.receive").await.into_iter().filter(|t| (from..to).contains(t)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_queue_costs_a_few_receives_a_second_even_when_the_provider_ignores_the_long_poll() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("co-events", 1), broker.new_topic("co-dlq", 1));
    // A provider that answers every receive at once with nothing, whatever timeoutMs says.
    let empty = json!({"endpoint": "checkout.receive", "action": "body", "status": 200,
                       "body": "{\"messages\": [], \"autoAckFailedMessages\": []}"});
    assert!(sb.control("/_sandbox/faults", empty).await.is_success());
    let _bridge = Paybridge::start(&config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    let now = || chrono::Utc::now().timestamp_millis();
    let started = now();
    tokio::time::sleep(Duration::from_secs(16)).await;
    let (first, steady) = (
        receives_between(&sb, started, started + 6_000).await,
        receives_between(&sb, started + 6_000, started + 16_000).await,
    );
    eprintln!("receives from 4 receivers on an empty queue: {first} in the first 6 s, {steady} in the next 10 s");
    // Each receiver's gap doubles from 100 ms up to 5 s: about 7 receives in its first 6 s,
    // then one every 5 s (10 receives a second, 400 in 10 s, before).
    assert!(first <= 4 * 8, "{first} receives in the first 6 s");
    assert!(steady <= 4 * 3, "{steady} receives in 10 s: at most about one every 5 s per receiver");
    assert!(steady >= 4, "the receivers go on asking ({steady})");

    // A message is still received once the provider answers again.
    let cleared =
        reqwest::Client::new().delete(sb.url("/_sandbox/faults")).send().await.map(|r| r.status().is_success());
    assert!(cleared.unwrap_or(false));
    create(&sb, 1, None).await;
    eventually("the message acknowledged", Duration::from_secs(15), || async { unacked(&sb).await == 0 }).await;
}
