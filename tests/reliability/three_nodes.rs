//! paybridge on three Apache Kafka nodes (the shared cluster of this test binary: combined
//! KRaft nodes, replication factor 3, `min.insync.replicas` 2, unclean leader election off):
//! with `kafka.require_durable_topics = true` it starts, reports every topic durable
//! (`paybridge_topic_durability_weak{topic} 0`, no warning), and carries RippleNet and
//! Payments Direct end to end.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use support::broker::read_to_end_with;
use support::broker::three::ThreeNodes;
use support::process::Paybridge;
use support::ripplenet::{ACCOUNT, FAST, acked, metrics};
use support::sandbox::Sandbox;
use support::sources;

/// `paybridge run` on `cluster` with RippleNet and Payments Direct, writing to (events, DLQ,
/// state).
fn config(cluster: &ThreeNodes, (events, dlq, state): (&str, &str, &str), sandbox: &Sandbox) -> String {
    format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{events}\"\ndlq_topic = \"{dlq}\"\nstate_topic = \"{state}\"\n\
         delivery_timeout = \"10s\"\n\n[admin]\nlisten = \"127.0.0.1:{{admin}}\"\n\n\
         [intake]\nlisten = \"127.0.0.1:{{intake}}\"\n\n[shutdown]\ntimeout = \"5s\"\n",
        cluster.bootstrap()
    ) + &sources::ripplenet(sandbox, ACCOUNT, FAST)
        + &sources::payments_direct(
            sandbox,
            "three-pd",
            "interval = \"500ms\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"",
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_three_nodes_durable_topics_pass_require_durable_topics_and_carry_events() {
    if support::Engine::chosen() == support::Engine::Tansu {
        return; // three nodes are Apache Kafka nodes.
    }
    let cluster = tokio::task::block_in_place(ThreeNodes::shared);
    let (events, dlq, state) = tokio::task::block_in_place(|| {
        (cluster.new_topic("three-events", 3), cluster.new_topic("three-dlq", 1), cluster.new_topic("three-state", 1))
    });
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(50).await;
    let payments = sandbox.pd_create(10).await;
    let config = config(cluster, (&events, &dlq, &state), &sandbox).replacen(
        "[kafka]\n",
        "[kafka]\nrequire_durable_topics = true\n",
        1,
    );
    let bridge = Paybridge::start(&config);
    let exported = metrics(bridge.admin_port);
    for topic in [&events, &dlq, &state] {
        let line = format!("paybridge_topic_durability_weak{{topic=\"{topic}\"}} 0");
        assert!(exported.contains(&line), "{line} missing from the metrics");
    }
    assert!(!bridge.log().contains("acks=all promises"), "no durability warning:\n{}", bridge.log());
    bridge.eventually("all 50 acknowledged", Duration::from_secs(60), || async { acked(&sandbox).await == 50 }).await;
    let read = || {
        tokio::task::block_in_place(|| {
            read_to_end_with(cluster.client_config(), &events, Duration::from_secs(10), "read_committed")
        })
    };
    bridge.eventually("the 60 events in Kafka", Duration::from_secs(60), || async { read().len() >= 60 }).await;
    let ids: HashSet<String> = read().iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect();
    assert_eq!(ids.len(), 50 + payments.len());
}

/// A hard kill of the leader of an events partition while RippleNet and Payments Direct are
/// publishing, and its return: nothing lost, nothing acknowledged before its record was
/// appended (the events topic stamps records with the broker's append time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_bounce_of_an_events_partition_leader_loses_nothing_and_acknowledges_nothing_early() {
    if support::Engine::chosen() == support::Engine::Tansu {
        return;
    }
    let cluster = tokio::task::block_in_place(ThreeNodes::start);
    let (events, dlq, state) = tokio::task::block_in_place(|| {
        let events = support::unique_topic("bounce-events");
        cluster.create_topic_with(&events, 3, &[("message.timestamp.type", "LogAppendTime")]);
        (events, cluster.new_topic("bounce-dlq", 1), cluster.new_topic("bounce-state", 1))
    });
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let mut created = sandbox.create(150).await;
    let mut payments = sandbox.pd_create(20).await;
    let config = config(&cluster, (&events, &dlq, &state), &sandbox);
    let bridge = Paybridge::start(&config);
    bridge
        .eventually("the first acknowledgements", Duration::from_secs(30), || async { acked(&sandbox).await > 0 })
        .await;
    let leader = cluster.leader(&events, 0).unwrap_or_else(|| panic!("partition 0 has a leader"));
    cluster.kill(leader);
    created.extend(sandbox.create(150).await);
    payments.extend(sandbox.pd_create(20).await);
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| cluster.restart(leader));
    bridge
        .eventually("all 300 acknowledged", Duration::from_secs(120), || async { acked(&sandbox).await == 300 })
        .await;
    let read = || {
        tokio::task::block_in_place(|| {
            read_to_end_with(cluster.client_config(), &events, Duration::from_secs(20), "read_committed")
        })
    };
    let target = 300 + payments.len();
    let ids = |records: &[support::Record]| -> HashSet<String> {
        records.iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect()
    };
    bridge.eventually("every event in Kafka", Duration::from_secs(60), || async { ids(&read()).len() >= target }).await;
    let records = read();
    let mut appended: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for r in &records {
        if let (Some(id), Some(ts)) = (r.header("ce_id"), r.timestamp) {
            let at = appended.entry(id.to_owned()).or_insert(ts);
            *at = (*at).min(ts);
        }
    }
    for uuid in &created {
        assert!(
            appended.contains_key(&support::ripplenet::id_of(uuid)),
            "notification {uuid} acknowledged but not in Kafka"
        );
    }
    for ack in sandbox.ledger("kind=ack&provider=ripplenet").await {
        let uuid = ack["id"].as_str().unwrap_or_default();
        let at =
            chrono::DateTime::parse_from_rfc3339(ack["at"].as_str().unwrap_or_default()).map(|t| t.timestamp_millis());
        let written = appended.get(&support::ripplenet::id_of(uuid)).copied();
        assert!(
            matches!((at, written), (Ok(a), Some(w)) if a >= w),
            "ack of {uuid} at {at:?} precedes its record's append at {written:?}"
        );
    }
    println!("hard bounce of node {leader}: {} records for {target} events", records.len());
}
