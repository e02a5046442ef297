//! `paybridge cursor show|set` as a process against a real broker and the sandbox, on a
//! running two-replica deployment (`[cluster]`): moving the position back 10 minutes
//! publishes that stretch again with the same event ids, the owner steps aside and the next
//! tenure continues from the new position; moving forward needs --yes; a position later
//! than now − safety_lag is refused; earlier tenures' keys are tombstoned.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::Broker;
use support::process::{Paybridge, eventually};
use support::sandbox::Sandbox;
use support::sources;

fn cursor(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let ran = support::commands::paybridge("cursor", config, args);
    (ran.code, ran.stdout, ran.stderr)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// (payment, state) → (event ids, records) of the Payments Direct events in `topic`.
fn published(broker: &Broker, topic: &str) -> BTreeMap<(String, String), (BTreeSet<String>, usize)> {
    let mut out: BTreeMap<(String, String), (BTreeSet<String>, usize)> = BTreeMap::new();
    for record in broker.read_to_end(topic, Duration::from_secs(10)) {
        let event = record.json();
        if event["data"]["provider"] != "payments_direct" {
            continue;
        }
        let key = (
            event["data"]["payment_id"].as_str().unwrap_or_default().to_owned(),
            event["data"]["provider_state"].as_str().unwrap_or_default().to_owned(),
        );
        let entry = out.entry(key).or_default();
        entry.0.insert(event["id"].as_str().unwrap_or_default().to_owned());
        entry.1 += 1;
    }
    out
}

/// The payments' (id, state) as the sandbox has them now.
async fn current(sb: &Sandbox, payments: &[String]) -> BTreeSet<(String, String)> {
    let token = sb.pd_token().await;
    let mut out = BTreeSet::new();
    for id in payments {
        let p = sb.get_json(&format!("/v3/payments/{id}"), Some(&token)).await;
        out.insert((id.clone(), p["paymentState"].as_str().unwrap_or_default().to_owned()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_set_back_on_two_running_replicas_publishes_that_stretch_again_and_the_owner_continues() {
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let broker = Broker::start();
    let topic = broker.new_topic("cc-events", 3);
    let dlq = broker.new_topic("cc-dlq", 1);
    let state = broker.new_topic("cc-state", 1);
    let coordination = broker.new_topic("cc-coordination", 12);
    let group = support::unique_topic("cc-group");
    let settings = "interval = \"300ms\"\nmax_idle_interval = \"1s\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"\n\
                    backoff_max = \"1s\"\npage_size = 5";
    let config = support::base_config_with_state(&broker, &topic, &dlq, &state)
        + &format!(
            "\n[cluster]\ngroup_id = \"{group}\"\ntopic = \"{coordination}\"\nsession_timeout = \"6s\"\nhandover_timeout = \"5s\"\n"
        )
        + &sources::payments_direct(&sandbox, "acme-pd", settings);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = support::commands::write_config(dir.path(), &config);

    let payments = sandbox.pd_create(10).await;
    let replicas = [Paybridge::spawn(&config), Paybridge::spawn(&config)];
    let wanted = current(&sandbox, &payments).await;
    eventually("every payment's state published", Duration::from_secs(90), || async {
        let published = published(&broker, &topic);
        wanted.iter().all(|k| published.contains_key(k))
    })
    .await;
    let before = published(&broker, &topic);

    // show: the position in force, written by a replica's tenure.
    let (code, stdout, stderr) = cursor(&path, &["show", "--source", "pd", "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let shown = json(&stdout);
    let behind = shown["behind_seconds"].as_i64().unwrap_or(i64::MAX);
    assert!((0..120).contains(&behind), "the position follows now: {shown}");
    assert!(shown["epoch"].as_u64().is_some_and(|e| e >= 1), "a replica's tenure: {shown}");
    assert!(shown["owner"].as_str().is_some_and(|o| !o.is_empty()), "{shown}");
    let (code, stdout, _) = cursor(&path, &["show", "--source", "pd"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("the next window starts at") && stdout.contains("epoch"), "{stdout}");

    // Refused: later than now − safety_lag; an unknown source.
    let (code, _, stderr) = cursor(&path, &["set", "--source", "pd", "--to", "0s"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("safety_lag"), "{stderr}");
    let (code, _, stderr) = cursor(&path, &["show", "--source", "nope"]);
    assert_eq!(code, Some(2), "{stderr}");

    // Back 10 minutes, while both replicas run.
    let (code, stdout, stderr) = cursor(&path, &["set", "--source", "pd", "--to", "10m", "--format", "json"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let report = json(&stdout);
    let to = time(&report["to"]);
    assert!(time(&report["from"]) > to, "moved back: {report}");
    let set_epoch = report["written"]["epoch"].as_u64().unwrap_or_default();
    assert!(report["taken_over_by"][0].as_u64().is_some_and(|e| e > set_epoch), "a running owner took over: {report}");

    // That stretch is published again, with the same ids.
    eventually("every state published a second time", Duration::from_secs(60), || async {
        let now = published(&broker, &topic);
        before.iter().all(|(k, (_, n))| now.get(k).is_some_and(|(_, m)| *m > *n))
    })
    .await;
    let again = published(&broker, &topic);
    for (key, (ids, _)) in &before {
        assert_eq!(&again[key].0, ids, "{key:?}: the same event id");
    }
    // The next window started where the position was set (less the default 2 min overlap,
    // at the provider's millisecond precision).
    let starts: Vec<DateTime<Utc>> = sandbox
        .ledger("kind=search_window&provider=payments_direct")
        .await
        .iter()
        .filter_map(|e| e["id"].as_str()?.split_once("..").map(|(a, _)| a.to_owned()))
        .filter_map(|a| DateTime::parse_from_rfc3339(&a).ok().map(|t| t.with_timezone(&Utc)))
        .collect();
    let expected = to - chrono::Duration::minutes(2);
    let at_ms = |t: DateTime<Utc>| t.timestamp_millis();
    assert!(starts.iter().any(|s| at_ms(*s) == at_ms(expected)), "a search window started at {expected}: {starts:?}");

    // The owner continues from there: new payments are published, the position moves on.
    let more = sandbox.pd_create(3).await;
    let wanted = current(&sandbox, &more).await;
    eventually("the new payments published", Duration::from_secs(60), || async {
        let published = published(&broker, &topic);
        wanted.iter().all(|k| published.contains_key(k))
    })
    .await;
    let (_, stdout, _) = cursor(&path, &["show", "--source", "pd", "--format", "json"]);
    let shown = json(&stdout);
    assert!(time(&shown["after"]) > to + chrono::Duration::minutes(9), "the position moved on: {shown}");
    assert_eq!(shown["reset"], false, "taken over: {shown}");

    // Stopped: moving forward needs --yes.
    drop(replicas);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, _, stderr) = cursor(&path, &["set", "--source", "pd", "--to", "2s", "--wait", "1s"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    let (code, stdout, stderr) = cursor(&path, &["set", "--source", "pd", "--to", "2s", "--wait", "1s", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("forward") && stdout.contains("no running owner took over"), "{stdout}");

    // Each tenure's key but the newest was tombstoned by its successor.
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    for record in broker.read_to_end(&state, Duration::from_secs(10)) {
        if let Some(key) = record.key.filter(|k| k.starts_with("pd#")) {
            last.insert(key, !record.value.is_empty());
        }
    }
    let live: Vec<&String> = last.iter().filter(|(_, live)| **live).map(|(k, _)| k).collect();
    assert!(last.len() >= 3, "several tenures: {last:?}");
    assert_eq!(live.len(), 1, "only the newest tenure's key is live: {last:?}");
}

/// A position record that cannot be parsed stops the source (nothing is read) without a new
/// claim per retry, and `cursor set` gets a running single replica going again from the
/// position it writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_position_is_claimed_once_and_cursor_set_gets_the_source_going_again() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let broker = Broker::start();
    let (topic, dlq, state) =
        (broker.new_topic("cu-events", 1), broker.new_topic("cu-dlq", 1), broker.new_topic("cu-state", 1));
    let settings = "interval = \"300ms\"\nmax_idle_interval = \"1s\"\nsafety_lag = \"1s\"\nbackoff_max = \"1s\"";
    let config = support::base_config_with_state(&broker, &topic, &dlq, &state)
        + &sources::payments_direct(&sandbox, "acme-pd", settings);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = support::commands::write_config(dir.path(), &config);
    let producer: FutureProducer = broker.client_config().create().unwrap_or_else(|e| panic!("{e}"));
    let broken = r#"{"source":"pd","cursor":"not a position","committed_at":"2026-12-01T00:00:00Z"}"#;
    let record = FutureRecord::to(&state).key("pd").payload(broken);
    producer.send(record, Duration::from_secs(10)).await.unwrap_or_else(|(e, _)| panic!("{e}"));

    let bridge = Paybridge::spawn(&config);
    let payments = sandbox.pd_create(4).await;
    bridge.wait_for_log("paybridge cursor set --source pd", Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(5)).await; // several retries, a second apart
    let claims = |broker: &Broker| {
        broker
            .read_to_end(&state, Duration::from_secs(10))
            .iter()
            .filter(|r| !r.value.is_empty() && r.json().get("claimed_at").is_some())
            .count()
    };
    assert_eq!(claims(&broker), 1, "one claim however many retries:\n{}", bridge.log());
    assert!(broker.read_to_end(&topic, Duration::from_secs(5)).is_empty(), "nothing read meanwhile");
    let (code, stdout, _) = cursor(&path, &["show", "--source", "pd"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("cannot be read: \"not a position\""), "{stdout}");

    let (code, stdout, stderr) = cursor(&path, &["set", "--source", "pd", "--to", "5m", "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(json(&stdout)["taken_over_by"].is_array(), "the running replica took over: {stdout}");
    let wanted = current(&sandbox, &payments).await;
    eventually("the payments published", Duration::from_secs(60), || async {
        let published = published(&broker, &topic);
        wanted.iter().all(|k| published.contains_key(k))
    })
    .await;
    assert!(bridge.log().contains("the position was set by an operator"), "{}", bridge.log());
}
