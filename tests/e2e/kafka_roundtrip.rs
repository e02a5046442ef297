//! The harness and the record format: events published with the crate's producer are
//! read back by an independent consumer with value, key and ce_ headers intact.

use crate::support;

use std::time::Duration;

use chrono::Utc;
use paybridge::event::{CLOUDEVENTS_CONTENT_TYPE, CanonicalEvent, RawJson};
use paybridge::normalize::{checkout, payments_direct, ripplenet};
use paybridge::sink::kafka::KafkaSink;
use paybridge::sink::topics::{TopicError, ensure_topics, missing_topics, required_topics};
use serde_json::Value;
use support::{Broker, kafka_config, unique_topic};

fn fixture(rel: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn sample_events() -> Vec<CanonicalEvent> {
    let now = Utc::now();
    let mut events: Vec<CanonicalEvent> = fixture("ripplenet/poll-new-page.json")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| ripplenet::notification("acme", &RawJson::from_value(n), now))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let message = &fixture("checkout/receive-response.json")["messages"][0];
    events.push(checkout::message("merchant-1", &RawJson::from_value(message), now).unwrap_or_else(|e| panic!("{e}")));
    for item in fixture("payments_direct/search-response.json")["data"].as_array().cloned().unwrap_or_default() {
        events.push(
            payments_direct::payment("rpd", &item, payments_direct::Via::default(), now)
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_read_back_with_key_value_and_headers() {
    let broker = Broker::start();
    let topic = broker.new_topic("events", 3);
    let dlq = broker.new_topic("dlq", 1);
    let sink = KafkaSink::new(&kafka_config(&broker, &topic, &dlq)).unwrap_or_else(|e| panic!("{e}"));
    let events = sample_events();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let results = sink.publish_batch(&events, deadline).await;
    for (event, result) in events.iter().zip(&results) {
        assert_eq!(result, &paybridge::ack::Outcome::Delivered, "event {} was not confirmed", event.id);
    }

    let records = tokio::task::spawn_blocking({
        let n = events.len();
        move || {
            let records = broker.read_all(&topic, n, Duration::from_secs(30));
            (broker, records)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .1;
    assert_eq!(records.len(), events.len(), "every published event is readable");

    for event in &events {
        let record = records
            .iter()
            .find(|r| r.header("ce_id") == Some(event.id.to_string().as_str()))
            .unwrap_or_else(|| panic!("no record with ce_id {}", event.id));
        let back: CanonicalEvent = serde_json::from_slice(&record.value).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&back, event, "the value is the structured CloudEvent, unchanged");
        assert_eq!(record.key.as_deref(), Some(event.key().as_str()));
        assert_eq!(record.header("ce_type"), Some(event.event_type.as_str()));
        assert_eq!(record.header("ce_source"), Some(event.source.as_str()));
        assert_eq!(record.header("ce_subject"), Some(event.subject.as_str()));
        assert_eq!(record.header("ce_specversion"), Some("1.0"));
        assert_eq!(record.header("content-type"), Some(CLOUDEVENTS_CONTENT_TYPE));
        assert_eq!(record.json()["specversion"], "1.0");
    }

    // The four RippleNet notifications of one payment share a key, hence a partition,
    // and keep their order.
    let ripplenet: Vec<_> =
        records.iter().filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with("ripplenet/"))).collect();
    assert_eq!(ripplenet.len(), 4);
    assert!(ripplenet.iter().all(|r| r.partition == ripplenet[0].partition));
    let mut by_offset = ripplenet.clone();
    by_offset.sort_by_key(|r| r.offset);
    let order: Vec<_> = by_offset.iter().map(|r| r.header("ce_id").unwrap_or_default().to_owned()).collect();
    let sent: Vec<_> = events[..4].iter().map(|e| e.id.to_string()).collect();
    assert_eq!(order, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topics_are_named_or_created_on_request() {
    let broker = Broker::start();
    let topic = unique_topic("absent");
    let dlq = unique_topic("absent-dlq");
    let mut config = kafka_config(&broker, &topic, &dlq);

    let wanted = required_topics(&config, true, None);
    let missing = missing_topics(&config, &wanted, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = missing.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, vec![topic.clone(), dlq.clone(), config.state_topic.clone()]);
    assert!(missing[2].compacted && !missing[0].compacted);
    match ensure_topics(&config, &wanted, Duration::from_secs(10)).await {
        Err(e @ TopicError::Missing(_)) => {
            let text = e.to_string();
            assert!(text.contains(&topic) && text.contains(&dlq) && text.contains("create_topics"), "{text}");
        }
        other => panic!("expected a missing-topics error, got {other:?}"),
    }

    config.create_topics = true;
    config.topic_partitions = 2;
    ensure_topics(&config, &wanted, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
    let missing = missing_topics(&config, &wanted, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(missing.is_empty(), "still missing: {missing:?}");
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_an_error_naming_the_servers() {
    let port = support::free_port();
    let text = format!("[kafka]\nbootstrap_servers = \"127.0.0.1:{port}\"\n");
    let config = paybridge::config::load(&text, &Default::default()).unwrap_or_else(|e| panic!("{e}")).kafka;
    match missing_topics(&config, &required_topics(&config, false, None), Duration::from_secs(2)).await {
        Err(e @ TopicError::Unreachable { .. }) => {
            assert!(e.to_string().contains(&port.to_string()), "{e}")
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

/// `paybridge trace` reads the one partition a payment's key maps to: the partition it
/// computes must be the one the producer picked, for librdkafka's default partitioner and
/// for the Java-compatible and FNV-1a ones a user may configure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_in_the_partition_the_configured_partitioner_computes() {
    use paybridge::sink::partition::Partitioner;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let broker = Broker::start();
    for partitioner in [None, Some("murmur2_random"), Some("fnv1a_random")] {
        let topic = broker.new_topic("partitioned", 6);
        let mut kafka = kafka_config(&broker, &topic, "unused-dlq");
        if let Some(p) = partitioner {
            kafka.properties.insert("partitioner".into(), p.into());
        }
        let computed = Partitioner::configured(&kafka.properties).unwrap_or_else(|e| panic!("{e}"));
        let producer: FutureProducer =
            paybridge::sink::kafka::producer_config(&kafka).create().unwrap_or_else(|e| panic!("{e}"));
        let mut used = std::collections::BTreeSet::new();
        for i in 0..60 {
            let key = paybridge::event::kafka_key(paybridge::event::Provider::Ripplenet, "acme", &format!("pay-{i}"));
            let sent = producer
                .send(FutureRecord::to(&topic).key(&key).payload("x"), Duration::from_secs(30))
                .await
                .unwrap_or_else(|(e, _)| panic!("{partitioner:?}: {e}"));
            assert_eq!(Some(sent.partition), computed.partition(key.as_bytes(), 6), "{partitioner:?}, key {key}");
            used.insert(sent.partition);
        }
        assert!(used.len() > 3, "{partitioner:?}: 60 keys over 6 partitions used only {used:?}");
    }
}
