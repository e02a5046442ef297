//! The ack-after-commit core against the real broker: Delivered means readable; a dead
//! broker means Retry; a record the broker can never take goes to the DLQ, alone.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use paybridge::ack::Outcome;
use paybridge::metrics::Metrics;
use paybridge::pipeline::{Pipeline, PipelineSettings};
use paybridge::sink::dlq::{ERROR_CODE_HEADER, ORIGINAL_TOPIC_HEADER, REASON_HEADER};
use paybridge::sink::kafka::KafkaSink;
use support::{Broker, kafka_config_with, ripplenet_event};

fn settings(capacity: usize, deadline: Duration) -> PipelineSettings {
    PipelineSettings { capacity, delivery_deadline: deadline }
}

async fn read_all(broker: Broker, topic: String, n: usize) -> (Broker, Vec<support::Record>) {
    tokio::task::spawn_blocking(move || {
        let records = broker.read_all(&topic, n, Duration::from_secs(20));
        (broker, records)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_means_every_event_is_readable() {
    let broker = Broker::start();
    let topic = broker.new_topic("p-events", 3);
    let dlq = broker.new_topic("p-dlq", 1);
    let sink = KafkaSink::new(&kafka_config_with(&broker, &topic, &dlq, "")).unwrap_or_else(|e| panic!("{e}"));
    let pipeline = Pipeline::start(sink, settings(1000, Duration::from_secs(30)), Arc::new(Metrics::new()));
    let submitter = pipeline.submitter();

    let events: Vec<_> = (0..200).map(|n| ripplenet_event(n, &format!("pay-{}", n % 7), 100)).collect();
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    let handle = submitter.submit("test", events).await.unwrap_or_else(|e| panic!("{e}"));
    let outcome = handle.outcome().await;
    assert!(outcome.is_delivered(), "{:?}", outcome.overall());

    // Immediately after Delivered, an independent consumer reads every event.
    let (_broker, records) = read_all(broker, topic, ids.len()).await;
    let read: std::collections::HashSet<_> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    for id in &ids {
        assert!(read.contains(id.as_str()), "event {id} was reported Delivered but is not readable");
    }
    pipeline.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_before_the_send_gives_retry_never_delivered() {
    let mut broker = Broker::start_own();
    let topic = broker.new_topic("k-events", 1);
    let dlq = broker.new_topic("k-dlq", 1);
    let config = kafka_config_with(&broker, &topic, &dlq, "delivery_timeout = \"3s\"");
    let sink = KafkaSink::new(&config).unwrap_or_else(|e| panic!("{e}"));
    let pipeline = Pipeline::start(sink, settings(100, Duration::from_secs(3)), Arc::new(Metrics::new()));
    broker.stop();

    let events: Vec<_> = (0..10).map(|n| ripplenet_event(1000 + n, "pay-k", 10)).collect();
    let handle = pipeline.submitter().submit("test", events).await.unwrap_or_else(|e| panic!("{e}"));
    let outcome = handle.outcome_within(Duration::from_secs(30)).await;
    assert_eq!(outcome.count(|o| matches!(o, Outcome::Retry(_))), 10, "{outcome:?}");
    assert_eq!(outcome.count(|o| *o == Outcome::Delivered), 0);
    pipeline.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_record_goes_to_the_dlq_and_only_it_is_rejected() {
    let broker = Broker::start();
    let topic = broker.new_topic("big-events", 1);
    let dlq = broker.new_topic("big-dlq", 1);
    let sink = KafkaSink::new(&kafka_config_with(&broker, &topic, &dlq, "")).unwrap_or_else(|e| panic!("{e}"));
    let pipeline = Pipeline::start(sink, settings(100, Duration::from_secs(30)), Arc::new(Metrics::new()));

    // librdkafka's and Kafka's default limit is 1,000,000 bytes per record.
    let events =
        vec![ripplenet_event(1, "pay-a", 10), ripplenet_event(2, "pay-b", 2_000_000), ripplenet_event(3, "pay-c", 10)];
    let big = serde_json::to_value(&events[1]).unwrap_or_default();
    let big_id = events[1].id.to_string();
    let handle = pipeline.submitter().submit("test", events).await.unwrap_or_else(|e| panic!("{e}"));
    let outcome = handle.outcome().await;
    assert_eq!(outcome.events[0].outcome, Outcome::Delivered);
    assert!(
        matches!(&outcome.events[1].outcome, Outcome::Rejected(reason) if reason.contains("too large")),
        "{:?}",
        outcome.events[1]
    );
    assert_eq!(outcome.events[2].outcome, Outcome::Delivered);
    assert!(matches!(outcome.overall(), Outcome::Rejected(_)));

    let (broker, dead) = read_all(broker, dlq, 1).await;
    assert_eq!(dead.len(), 1, "exactly the oversized event is in the DLQ");
    let record = &dead[0];
    assert_eq!(record.header("ce_id"), Some(big_id.as_str()));
    assert!(record.header(REASON_HEADER).is_some_and(|r| r.contains("too large")), "{:?}", record.headers);
    assert_eq!(record.header(ERROR_CODE_HEADER), Some("MessageSizeTooLarge"));
    assert_eq!(record.header(ORIGINAL_TOPIC_HEADER), Some(topic.as_str()));
    assert_eq!(record.json(), big, "the original event is intact in the DLQ");

    let (_broker, main) = read_all(broker, topic, 3).await;
    assert_eq!(main.len(), 2, "the two small events are in the main topic, the big one is not");
    pipeline.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_makes_submitters_wait() {
    let mut broker = Broker::start_own();
    let topic = broker.new_topic("bp-events", 1);
    let dlq = broker.new_topic("bp-dlq", 1);
    let config = kafka_config_with(&broker, &topic, &dlq, "delivery_timeout = \"4s\"");
    let sink = KafkaSink::new(&config).unwrap_or_else(|e| panic!("{e}"));
    let pipeline = Pipeline::start(sink, settings(50, Duration::from_secs(4)), Arc::new(Metrics::new()));
    broker.stop();

    let submitter = pipeline.submitter();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let task = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut handles = Vec::new();
            for b in 0..10u64 {
                let events: Vec<_> = (0..50).map(|n| ripplenet_event(10_000 + b * 50 + n, "pay-bp", 10)).collect();
                match submitter.submit("test", events).await {
                    Ok(h) => handles.push(h),
                    Err(_) => break,
                }
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            handles
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "only one capacity's worth gets in");
    assert_eq!(pipeline.submitter().depth(), 50);

    // When the stuck batch resolves (Retry at its deadline), the next one gets in.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    pipeline.shutdown(Duration::from_secs(1)).await;
    let handles = task.await.unwrap_or_default();
    for handle in handles {
        let outcome = handle.outcome().await;
        assert_eq!(outcome.count(|o| *o == Outcome::Delivered), 0, "nothing is Delivered while the broker is down");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_resolves_in_flight_batches_as_retry_within_the_deadline() {
    let mut broker = Broker::start_own();
    let topic = broker.new_topic("sd-events", 1);
    let dlq = broker.new_topic("sd-dlq", 1);
    let config = kafka_config_with(&broker, &topic, &dlq, "delivery_timeout = \"60s\"");
    let sink = KafkaSink::new(&config).unwrap_or_else(|e| panic!("{e}"));
    let pipeline = Pipeline::start(sink, settings(1000, Duration::from_secs(60)), Arc::new(Metrics::new()));
    let submitter = pipeline.submitter();

    let first: Vec<_> = (0..20).map(|n| ripplenet_event(20_000 + n, "pay-sd", 10)).collect();
    let delivered = submitter.submit("test", first).await.unwrap_or_else(|e| panic!("{e}"));
    let delivered = delivered.outcome().await;
    assert!(delivered.is_delivered());

    broker.stop();
    let second: Vec<_> = (0..20).map(|n| ripplenet_event(21_000 + n, "pay-sd", 10)).collect();
    let in_flight = submitter.submit("test", second).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = std::time::Instant::now();
    pipeline.shutdown(Duration::from_secs(2)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?} with a 2 s deadline");
    let outcome = in_flight.outcome_within(Duration::from_secs(1)).await;
    assert_eq!(outcome.count(|o| matches!(o, Outcome::Retry(_))), 20, "{outcome:?}");

    // After shutdown nothing more is accepted.
    let late = submitter.submit("test", vec![ripplenet_event(22_000, "pay-sd", 10)]).await;
    assert!(late.is_err());
}
