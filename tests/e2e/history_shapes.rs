//! One state, one id: a Payments Direct provider whose state history lists each payment's
//! creation as its first entry (`updatedFrom` = `updatedTo` = `INITIATED`), at `initiatedAt`
//! or a few milliseconds after it, gives every state exactly one event, and in exactly-once
//! mode a read_committed reader sees each once (`paybridge run` as a process on Apache Kafka).

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::chaos::PD_ACCOUNT;
use support::payments_direct::wait_caught_up;
use support::process::Paybridge;
use support::sandbox::Sandbox;
use support::{Broker, sources};

const SEARCH: &str = "interval = \"500ms\"\nmax_idle_interval = \"1s\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"\n\
                      backoff_max = \"1s\"\npage_size = 7";

/// 20 payments, 10 moved on before paybridge starts and 5 more while it runs: 35 states.
/// Returns the committed records of the events topic.
async fn run_with_creation_entry(after: Duration) -> Vec<support::Record> {
    let broker = Broker::start();
    let mut scenario = paybridge_sandbox::Scenario::default();
    scenario.payments_direct.creation_entry = Some(after);
    let sandbox = Sandbox::start(scenario).await;
    let topic = broker.new_topic("one-id-events", 3);
    let dlq = broker.new_topic("one-id-dlq", 1);
    let state = broker.new_topic("one-id-state", 1);
    let payments = sandbox.pd_create(20).await;
    for id in &payments[..10] {
        assert!(sandbox.pd_transition(id, "VALIDATING").await.is_success());
    }
    let prefix = support::unique_topic("one-id");
    let kafka = format!("[kafka]\nexactly_once = true\ntransactional_id_prefix = \"{prefix}\"\n");
    let config = support::base_config_with_state(&broker, &topic, &dlq, &state).replacen("[kafka]\n", &kafka, 1)
        + &sources::payments_direct(&sandbox, PD_ACCOUNT, SEARCH);
    let bridge = Paybridge::start(&config);
    wait_caught_up(&sandbox, chrono::Utc::now()).await;
    for id in &payments[10..15] {
        assert!(sandbox.pd_transition(id, "VALIDATING").await.is_success());
    }
    wait_caught_up(&sandbox, chrono::Utc::now()).await;
    drop(bridge);
    tokio::task::spawn_blocking(move || broker.read_to_end(&topic, Duration::from_secs(60)))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts the 35 states are 35 records with 35 ids, one per (payment, state).
fn every_state_one_record_one_id(records: &[support::Record]) {
    let mut per_state: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for record in records {
        let value: serde_json::Value = serde_json::from_slice(&record.value).unwrap_or_default();
        let data = &value["data"];
        let state = (
            data["payment_id"].as_str().unwrap_or_default().to_owned(),
            data["provider_state"].as_str().unwrap_or_default().to_owned(),
        );
        per_state.entry(state).or_default().push(value["id"].as_str().unwrap_or_default().to_owned());
    }
    let repeated: Vec<_> = per_state.iter().filter(|(_, ids)| ids.len() > 1).take(3).collect();
    assert!(repeated.is_empty(), "states published more than once (ids per state): {repeated:?}");
    let initiated = per_state.keys().filter(|(_, s)| s == "INITIATED").count();
    let validating = per_state.keys().filter(|(_, s)| s == "VALIDATING").count();
    assert_eq!((initiated, validating), (20, 15), "every state of every payment: {per_state:?}");
    assert_eq!(records.len(), 35, "one record per state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_entry_at_initiated_at_gives_each_state_one_record() {
    if Broker::start().is_tansu() {
        return;
    }
    let records = run_with_creation_entry(Duration::ZERO).await;
    every_state_one_record_one_id(&records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_entry_a_few_ms_after_initiated_at_gives_each_state_one_id() {
    if Broker::start().is_tansu() {
        return;
    }
    let records = run_with_creation_entry(Duration::from_millis(3)).await;
    every_state_one_record_one_id(&records);
}
