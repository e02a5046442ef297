//! `paybridge tail` as a process against a real broker.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use paybridge::sink::kafka::{KafkaSink, producer_config};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::child::OutputWithin;
use support::{Broker, kafka_config_with, ripplenet_event};

fn config_file(dir: &tempfile::TempDir, broker: &Broker, topic: &str) -> std::path::PathBuf {
    let path = dir.path().join("tail.toml");
    let text = format!("[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\n", broker.bootstrap());
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn tail(config: &std::path::Path, format: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["tail", "--from-beginning", "--format", format, "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let rx = support::process::lines_of(stdout);
    (child, rx)
}

fn lines(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    (0..n).map_while(|_| rx.recv_timeout(Duration::from_secs(30)).ok()).collect()
}

/// SIGINT, then the exit code and stderr.
fn interrupt(mut child: Child) -> (Option<i32>, String) {
    let stderr = support::child::read_in_background(child.stderr.take());
    support::child::signal(&child, "INT");
    let status = support::child::wait_within(&mut child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&stderr.recv_timeout(Duration::from_secs(5)).unwrap_or_default()).into_owned();
    let status =
        status.unwrap_or_else(|| panic!("paybridge tail did not stop within 30 s of SIGINT; killed it:\n{stderr}"));
    (status.code(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_each_event_once_in_both_formats_and_flags_foreign_records() {
    let broker = Broker::start();
    let topic = broker.new_topic("tail", 3);
    let dlq = broker.new_topic("tail-dlq", 1);
    let kafka = kafka_config_with(&broker, &topic, &dlq, "");
    let sink = KafkaSink::new(&kafka).unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<_> = (0..3).map(|n| ripplenet_event(n, &format!("pay-{n}"), 0)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let outcomes = sink.publish_batch(&events, deadline).await;
    assert!(outcomes.iter().all(|o| *o == paybridge::ack::Outcome::Delivered), "{outcomes:?}");
    let producer: FutureProducer = producer_config(&kafka).create().unwrap_or_else(|e| panic!("{e}"));
    let foreign = FutureRecord::to(&topic).key("x").payload("not json");
    producer.send(foreign, Duration::from_secs(20)).await.unwrap_or_else(|(e, _)| panic!("{e}"));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config_file(&dir, &broker, &topic);

    let (child, rx) = tail(&config, "json");
    let json = lines(&rx, 4);
    let (code, stderr) = interrupt(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("3 events (ripplenet 3)") && stderr.contains("1 records that are not"), "{stderr}");
    let mut ids: Vec<String> = json
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    let mut expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected, "{json:?}");
    assert!(json.iter().any(|l| l.contains("not a paybridge event")), "{json:?}");

    let (child, rx) = tail(&config, "pretty");
    let pretty = lines(&rx, 4);
    let (code, _) = interrupt(child);
    assert_eq!(code, Some(0));
    for event in &events {
        let line = pretty.iter().find(|l| l.contains(&event.id.to_string()));
        let line = line.unwrap_or_else(|| panic!("no line for {}: {pretty:?}", event.id));
        assert!(line.contains("ripplenet") && line.contains(&event.data.payment_id), "{line}");
        assert!(line.contains(&event.data.provider_state), "{line}");
    }
}

#[test]
fn tail_of_a_missing_topic_says_so_and_exits_1() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config_file(&dir, &broker, "no-such-topic");
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["tail", "--config"])
        .arg(&config)
        .output_within(Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-such-topic") && stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn a_reader_that_goes_away_ends_the_tail_quietly() {
    let broker = Broker::start();
    let topic = broker.new_topic("tail-pipe", 1);
    let dlq = broker.new_topic("tail-pipe-dlq", 1);
    let kafka = kafka_config_with(&broker, &topic, &dlq, "");
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let sink = KafkaSink::new(&kafka).unwrap_or_else(|e| panic!("{e}"));
        // More than a pipe holds (64 KiB): the tail is still writing when `head` goes away.
        let events: Vec<_> = (0..300).map(|n| ripplenet_event(n, &format!("pay-{n}"), 0)).collect();
        let outcomes = sink.publish_batch(&events, tokio::time::Instant::now() + Duration::from_secs(20)).await;
        assert!(outcomes.iter().all(|o| *o == paybridge::ack::Outcome::Delivered), "{outcomes:?}");
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config_file(&dir, &broker, &topic);
    // `paybridge tail --from-beginning --format json | head -n 1`; a tail that kept running
    // would be cut by `timeout` (exit 124) rather than hang the suite.
    let script = format!(
        "timeout 60 {} tail --from-beginning --format json --config {} | head -n 1",
        env!("CARGO_BIN_EXE_paybridge"),
        config.display()
    );
    let out = Command::new("bash").args(["-o", "pipefail", "-c", &script]).output_within(Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}
