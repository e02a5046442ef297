//! `paybridge trace` as a process against a real broker: one payment's events among 100,000
//! records of other payments, found by reading only the partitions its key maps to.

use crate::support;

use std::time::Duration;

use paybridge::event::{Provider, kafka_key};
use paybridge::sink::dlq::{ERROR_CODE_HEADER, REASON_HEADER};
use paybridge::sink::kafka::{KafkaSink, producer_config};
use paybridge::sink::partition::Partitioner;
use paybridge_sandbox::Scenario;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use support::sandbox::Sandbox;
use support::{Broker, kafka_config_with, ripplenet_event};

const OTHERS: usize = 100_000;

/// `OTHERS` records of other payments of the same account, spread over every partition.
async fn fill(producer: &FutureProducer, topic: &str) {
    for batch in 0..OTHERS / 10_000 {
        let mut sent = Vec::new();
        for i in 0..10_000 {
            let key = kafka_key(Provider::Ripplenet, "acme", &format!("other-{batch}-{i}"));
            let record = FutureRecord::to(topic).key(&key).payload("{}");
            sent.push(producer.send_result(record).unwrap_or_else(|(e, _)| panic!("filling the topic: {e}")));
        }
        for delivery in futures_util::future::join_all(sent).await {
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => panic!("filling the topic: {e}"),
                Err(e) => panic!("filling the topic: {e}"),
            }
        }
    }
}

fn trace(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let ran = support::commands::paybridge("trace", config, args);
    (ran.code, ran.stdout, ran.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_finds_every_event_of_one_payment_reading_only_its_partitions() {
    let broker = Broker::start();
    let topic = broker.new_topic("trace", 6);
    let dlq = broker.new_topic("trace-dlq", 3);
    let kafka = kafka_config_with(&broker, &topic, &dlq, "");
    let producer: FutureProducer = producer_config(&kafka).create().unwrap_or_else(|e| panic!("{e}"));
    fill(&producer, &topic).await;

    // The traced payment: three events published by paybridge's sink, and a fourth the
    // events topic refused, in the DLQ with its reason.
    let sink = KafkaSink::new(&kafka).unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<_> = (0..4).map(|n| ripplenet_event(n, "pay-traced", 0)).collect();
    for event in &events[..3] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let outcome = sink.publish_batch(std::slice::from_ref(event), deadline).await;
        assert_eq!(outcome, [paybridge::ack::Outcome::Delivered]);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let key = events[3].key();
    let value = serde_json::to_vec(&events[3]).unwrap_or_default();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "ce_id", value: Some(events[3].id.to_string().as_bytes()) })
        .insert(Header { key: REASON_HEADER, value: Some("record too large for the topic".as_bytes()) })
        .insert(Header { key: ERROR_CODE_HEADER, value: Some("MessageSizeTooLarge".as_bytes()) });
    let refused = FutureRecord::to(&dlq).key(&key).payload(&value).headers(headers);
    producer.send(refused, Duration::from_secs(20)).await.unwrap_or_else(|(e, _)| panic!("{e}"));

    let sb = Sandbox::start(Scenario::default()).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("trace.toml");
    let text = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\n{}",
        broker.bootstrap(),
        support::sources::ripplenet(&sb, "acme", "")
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));

    let (code, stdout, stderr) = trace(&config, &["pay-traced", "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let found = report["found"].as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = found.iter().filter_map(|f| f["event_id"].as_str()).collect();
    let expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, expected, "every event of the payment, in the order written: {stdout}");
    assert_eq!(found[3]["topic"], dlq.as_str());
    assert_eq!(found[3]["dlq_reason"], "record too large for the topic");
    assert_eq!(found[3]["dlq_error_code"], "MessageSizeTooLarge");
    assert!(found[..3].iter().all(|f| f["topic"] == topic.as_str() && f["state"] == "ACCEPTED"), "{stdout}");

    // Only the key's partition of each topic was read, and all of it.
    let reads = report["reads"].as_array().cloned().unwrap_or_default();
    let partition = |count| Partitioner::Crc32.partition(key.as_bytes(), count).map(i64::from);
    let read_of = |t: &str| reads.iter().filter(|r| r["topic"] == t).cloned().collect::<Vec<_>>();
    let (main_reads, dlq_reads) = (read_of(&topic), read_of(&dlq));
    assert_eq!(main_reads.len(), 1, "one partition of the events topic: {reads:?}");
    assert_eq!(dlq_reads.len(), 1, "one partition of the DLQ: {reads:?}");
    assert_eq!(main_reads[0]["partition"].as_i64(), partition(6));
    assert_eq!(dlq_reads[0]["partition"].as_i64(), partition(3));
    let read = main_reads[0]["records_read"].as_u64().unwrap_or_default();
    let span = main_reads[0]["end_offset"].as_u64().unwrap_or_default()
        - main_reads[0]["from_offset"].as_u64().unwrap_or_default();
    assert_eq!(read, span, "the partition was read to its end");
    assert!(read > 3 && (read as usize) < OTHERS / 3, "{read} records read of {OTHERS} in the topic");

    // The same as lines: one per record, the DLQ one with its reason.
    let (code, stdout, stderr) = trace(&config, &["pay-traced", "--source", "rn"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].contains(&expected[0]) && lines[0].contains("PENDING → ACCEPTED"), "{stdout}");
    assert!(lines[3].ends_with("DLQ: record too large for the topic (MessageSizeTooLarge)"), "{stdout}");
    assert!(stderr.contains("4 record(s) of payment pay-traced in 2 partition(s) read"), "{stderr}");

    // A payment with no event: exit 1. An unknown source: exit 2, naming it.
    let (code, stdout, _) = trace(&config, &["nobody"]);
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    let (code, _, stderr) = trace(&config, &["pay-traced", "--source", "nope"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("\"nope\""), "{stderr}");
    // A DLQ topic that does not exist is said, not read as empty.
    let missing = dir.path().join("missing.toml");
    let text = std::fs::read_to_string(&config).unwrap_or_default().replace(&dlq, "trace-no-such-dlq");
    std::fs::write(&missing, text).unwrap_or_else(|e| panic!("{e}"));
    let (code, _, stderr) = trace(&missing, &["pay-traced"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("topic trace-no-such-dlq does not exist"), "{stderr}");
    // --since after the last record: nothing to read, nothing found.
    let (code, _, stderr) = trace(&config, &["pay-traced", "--since", "2999-01-01"]);
    assert_eq!(code, Some(1), "{stderr}");
}
