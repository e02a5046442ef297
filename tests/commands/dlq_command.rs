//! `paybridge dlq` as a process against a real broker and the sandbox: events the topic
//! refused for their size are dead-lettered by `paybridge run`; a redrive while the limit
//! holds leaves them in the DLQ with the broker's reason; after the topic's
//! `max.message.bytes` is raised, a redrive puts them in the topic with their original ids,
//! and a second redrive adds nothing.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use support::process::{Paybridge, eventually};
use support::ripplenet::{Setup, acked, config, id_of, read};
use support::topic_config::{set_refusing_topic_config, set_topic_config};
use support::{Broker, Record};

fn dlq(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let ran = support::commands::paybridge("dlq", config, args);
    (ran.code, ran.stdout, ran.stderr)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Records of `topic` by event id.
async fn by_id(broker: Broker, topic: &str) -> (Broker, BTreeMap<String, Vec<Record>>) {
    let (broker, records) = read(broker, topic.to_owned()).await;
    let mut ids: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for record in records {
        if let Some(id) = record.header("ce_id") {
            ids.entry(id.to_owned()).or_default().push(record);
        }
    }
    (broker, ids)
}

const COUNT: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_refused_for_size_are_redriven_once_the_limit_is_raised_and_only_once() {
    let broker = Broker::start();
    if broker.is_tansu() {
        return; // tansu 0.6.0 does not enforce max.message.bytes.
    }
    let (topic, dead) = (broker.new_topic("dl-events", 3), broker.new_topic("dl-dlq", 2));
    let sandbox = support::sandbox::Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let s = Setup { broker, sandbox, topic, dlq: dead };
    // Records larger than 100 bytes (every event) are refused: each goes to the DLQ.
    set_refusing_topic_config(&s.broker, &s.topic, "max.message.bytes", "100").await;
    let source = "new_interval = \"300ms\"\nsent_interval = \"2s\"\nsent_delay = \"0s\"";
    let text = config(&s, source).replacen("[kafka]\n", "[kafka]\ndlq_breaker_max = 50\n", 1);
    let bridge = Paybridge::start(&text);
    let created = s.sandbox.create(COUNT).await;
    eventually("every notification dead-lettered and acknowledged", Duration::from_secs(60), || async {
        acked(&s.sandbox).await == COUNT as u64
    })
    .await;
    drop(bridge);
    let expected: BTreeSet<String> = created.iter().map(|u| id_of(u)).collect();
    let (broker, in_dlq) = by_id(s.broker, &s.dlq).await;
    assert_eq!(in_dlq.keys().cloned().collect::<BTreeSet<_>>(), expected, "every event is in the DLQ");

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = support::commands::write_config(dir.path(), &text);

    // list: one JSON object per dead letter, with its reason, source and payment.
    let (code, stdout, stderr) = dlq(&path, &["list", "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let listed: Vec<Value> = stdout.lines().map(json).collect();
    assert_eq!(listed.len(), COUNT, "{stdout}");
    let listed_ids: BTreeSet<String> =
        listed.iter().filter_map(|l| l["event_id"].as_str().map(str::to_owned)).collect();
    assert_eq!(listed_ids, expected);
    for letter in &listed {
        assert_eq!(letter["error_code"], "MessageSizeTooLarge", "{letter}");
        assert_eq!(letter["source"], "rn", "{letter}");
        assert_eq!(letter["original_topic"], s.topic.as_str(), "{letter}");
        assert!(letter["payment_id"].as_str().is_some_and(|p| !p.is_empty()), "{letter}");
        assert!(letter["redriven_to"].is_null(), "{letter}");
    }
    let one = listed[0]["event_id"].as_str().unwrap_or_default().to_owned();
    let (code, stdout, _) = dlq(&path, &["list", "--id", &one]);
    assert_eq!((code, stdout.lines().count()), (Some(0), 1), "--id chooses one: {stdout}");
    let (code, _, stderr) = dlq(&path, &["list", "--source", "nope"]);
    assert_eq!(code, Some(2), "an unknown source is bad input: {stderr}");
    assert!(stderr.contains("nope"), "{stderr}");

    // show: one whole, by position and by event id.
    let at = format!("{}@{}", listed[0]["partition"], listed[0]["offset"]);
    let (code, stdout, stderr) = dlq(&path, &["show", &at, "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let whole = json(&stdout);
    assert_eq!(whole["event_id"], one.as_str());
    assert_eq!(whole["value"]["id"], one.as_str(), "the value is the CloudEvent: {whole}");
    let (code, stdout, _) = dlq(&path, &["show", &one]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("header      paybridge_dlq_reason:"), "{stdout}");
    let (code, _, stderr) = dlq(&path, &["show", "0@999999"]);
    assert_eq!(code, Some(1), "nothing there: {stderr}");

    // A redrive while the topic still refuses them: every one refused and left, exit 1.
    let (code, stdout, stderr) = dlq(&path, &["redrive", "--yes", "--format", "json"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report = json(&stdout);
    assert_eq!((report["redriven"].as_u64(), report["refused"].as_u64()), (Some(0), Some(COUNT as u64)), "{report}");
    assert!(
        report["refusals"][0]["error_code"].as_str().is_some_and(|c| c.contains("MessageSizeTooLarge")),
        "{report}"
    );
    let (broker, in_topic) = by_id(broker, &s.topic).await;
    assert!(in_topic.is_empty(), "nothing reached the topic");

    // The cause is fixed. Without --yes: the plan, nothing written.
    set_topic_config(&broker, &s.topic, "max.message.bytes", "1048588").await;
    let (code, stdout, stderr) = dlq(&path, &["redrive"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&format!("{COUNT} dead letter(s) to redrive")), "{stdout}");
    assert!(stdout.contains("MessageSizeTooLarge  rn") && stdout.contains("dry run"), "{stdout}");
    let (broker, in_topic) = by_id(broker, &s.topic).await;
    assert!(in_topic.is_empty(), "a dry run writes nothing");

    // The redrive: every record in the topic once, byte for byte, with its origin.
    let (code, stdout, stderr) = dlq(&path, &["redrive", "--yes", "--format", "json"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let report = json(&stdout);
    assert_eq!(report["redriven"].as_u64(), Some(COUNT as u64), "{report}");
    let (broker, in_topic) = by_id(broker, &s.topic).await;
    assert_eq!(in_topic.keys().cloned().collect::<BTreeSet<_>>(), expected, "original ids in the topic");
    for (id, records) in &in_topic {
        assert_eq!(records.len(), 1, "{id} once");
        let (redriven, dead) = (&records[0], &in_dlq[id][0]);
        assert_eq!((&redriven.key, &redriven.value), (&dead.key, &dead.value), "{id}: same key and value");
        for name in ["ce_id", "ce_type", "ce_source", "ce_subject", "ce_specversion", "content-type"] {
            assert_eq!(redriven.header(name), dead.header(name), "{id}: {name}");
        }
        let from = format!("{}/{}@{}", s.dlq, dead.partition, dead.offset);
        assert_eq!(redriven.header("paybridge_redriven_from"), Some(from.as_str()));
        assert_eq!(redriven.header("paybridge_dlq_reason"), None, "the DLQ's own headers stay behind");
    }

    // A second redrive adds nothing; list says where each went.
    let (code, stdout, stderr) = dlq(&path, &["redrive", "--yes", "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let report = json(&stdout);
    assert_eq!((report["chosen"].as_u64(), report["already_redriven"].as_u64()), (Some(0), Some(COUNT as u64)));
    let (_broker, again) = by_id(broker, &s.topic).await;
    assert_eq!(again.values().map(Vec::len).sum::<usize>(), COUNT, "no record added");
    let (code, stdout, _) = dlq(&path, &["list"]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), COUNT, "markers are not listed as dead letters: {stdout}");
    assert!(lines.iter().all(|l| l.contains(&format!("[redriven → {}/", s.topic))), "{stdout}");
}
