//! Exactly-once mode (`kafka.exactly_once = true`) on Apache Kafka, end to end with
//! `paybridge run` as a process and a read_committed reader: a Payments Direct page and its
//! position commit in one transaction, so
//!
//! - SIGKILLs in the middle of pages leave every served state in Kafka once: a crashed
//!   page's transaction is aborted and the page is published again, visible once;
//! - an event the broker refuses for good goes to the DLQ inside the page's transaction and
//!   the position moves on;
//! - a restarted instance fences a paused one (same `transactional.id`): the paused one's
//!   late writes never become visible, and it stops;
//! - two deployments with different `transactional_id_prefix` run side by side;
//! - a commit the broker answers later than the call's timeout is called again until it is
//!   done, never reported failed (its page would be published twice).
//!
//! tansu 0.6.0 has no transactions: there exactly-once mode refuses to start (tests/e2e/cursor.rs),
//! and these tests say so and stop.

use crate::support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use support::chaos::{PD_ACCOUNT, pd_current, pd_served};
use support::child::signal_pid;
use support::kafka_proxy::{END_TXN, HoldingProxy};
use support::payments_direct::{drive_lifecycles, wait_caught_up};
use support::process::{Paybridge, eventually};
use support::sandbox::Sandbox;
use support::{Broker, Record, sources};

/// The source's search settings: frequent cycles, small pages (many transactions).
const SEARCH: &str = "interval = \"500ms\"\nmax_idle_interval = \"1s\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"\n\
                      backoff_max = \"1s\"\npage_size = 20";

struct Setup {
    sandbox: Sandbox,
    broker: Broker,
    topic: String,
    dlq: String,
    state: String,
}

/// A sandbox and topics on `broker`; `events_max_bytes` caps the events topic's records.
async fn setup(broker: Broker, events_max_bytes: Option<&str>) -> Setup {
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let topic = support::unique_topic("eos-events");
    match events_max_bytes {
        Some(bytes) => broker.create_topic_with(&topic, 3, &[("max.message.bytes", bytes)]),
        None => broker.create_topic(&topic, 3),
    }
    let dlq = broker.new_topic("eos-dlq", 1);
    let state = broker.new_topic("eos-state", 1);
    Setup { sandbox, broker, topic, dlq, state }
}

/// `paybridge run` in exactly-once mode with `prefix` as `transactional_id_prefix`, writing to
/// `topics` (events, DLQ, state).
fn config_for(s: &Setup, prefix: &str, (topic, dlq, state): (&str, &str, &str)) -> String {
    let kafka = format!("[kafka]\nexactly_once = true\ntransactional_id_prefix = \"{prefix}\"\n");
    support::base_config_with_state(&s.broker, topic, dlq, state).replacen("[kafka]\n", &kafka, 1)
        + "\n[log]\nformat = \"json\"\n"
        + &sources::payments_direct(&s.sandbox, PD_ACCOUNT, SEARCH)
}

fn config(s: &Setup, prefix: &str) -> String {
    config_for(s, prefix, (&s.topic, &s.dlq, &s.state))
}

/// On tansu there is nothing to test here (it has no transactions): say so.
fn without_transactions(broker: &Broker) -> bool {
    if broker.is_tansu() {
        eprintln!("{} has no transactions: exactly-once mode is tested on Apache Kafka", broker.engine().name());
    }
    broker.is_tansu()
}

/// The events `p` got confirmed (the metric counts exactly-once pages too).
fn published(p: &Paybridge) -> u64 {
    support::metric_sum(p.admin_port, "paybridge_events_published_total{source=\"pd\"")
}

/// Records per event id (the `ce_id` header).
fn counts(records: &[Record]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for id in records.iter().filter_map(|r| r.header("ce_id")) {
        *out.entry(id.to_owned()).or_insert(0) += 1;
    }
    out
}

/// What a read_committed and a read_uncommitted reader see of `topic` (off the runtime).
async fn committed_and_all(broker: Broker, topic: String) -> (Broker, Vec<Record>, Vec<Record>) {
    tokio::task::spawn_blocking(move || {
        let committed = broker.read_to_end(&topic, Duration::from_secs(60));
        let all = broker.read_uncommitted_to_end(&topic, Duration::from_secs(60));
        (broker, committed, all)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Every state a search served and every payment's current state, as event ids.
async fn expected_states(sb: &Sandbox, payments: &[String]) -> HashSet<String> {
    let (served, complete) = pd_served(sb).await;
    assert!(complete, "the sandbox kept every served state");
    let mut expected = served;
    expected.extend(pd_current(sb, payments).await);
    expected
}

/// Asserts that `committed` holds every id of `expected`, each once.
fn every_state_once(committed: &[Record], expected: &HashSet<String>) {
    let seen = counts(committed);
    let missing: Vec<&String> = expected.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} states missing, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<&String> = seen.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).take(3).collect();
    let copies: Vec<String> = committed
        .iter()
        .filter(|r| r.header("ce_id").is_some_and(|id| twice.iter().any(|t| t.as_str() == id)))
        .map(|r| {
            format!(
                "{}@{}/{} ts {:?}: {}",
                r.header("ce_id").unwrap_or_default(),
                r.partition,
                r.offset,
                r.timestamp,
                String::from_utf8_lossy(&r.value)
            )
        })
        .collect();
    assert!(twice.is_empty(), "states visible more than once to a read_committed reader:\n{}", copies.join("\n"));
}

/// Whether a transaction is open with records in `topic`'s log: on some partition the end
/// of the log is past the last stable offset (what a read_committed reader may read up to).
fn transaction_open(committed: &BaseConsumer, all: &BaseConsumer, topic: &str, partitions: i32) -> bool {
    (0..partitions).any(|p| {
        let stable = committed.fetch_watermarks(topic, p, Duration::from_secs(2)).map(|(_, high)| high);
        let end = all.fetch_watermarks(topic, p, Duration::from_secs(2)).map(|(_, high)| high);
        matches!((stable, end), (Ok(stable), Ok(end)) if end > stable)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_in_the_middle_of_pages_leave_every_served_state_in_kafka_once() {
    let s = setup(Broker::start(), None).await;
    if without_transactions(&s.broker) {
        return;
    }
    let prefix = support::unique_topic("eos");
    let payments = s.sandbox.pd_create(400).await;
    let driver = tokio::spawn(drive_lifecycles(s.sandbox.url(""), payments.clone()));
    let mut bridge = Paybridge::start(&config(&s, &prefix));
    let reader = |isolation: &str| -> BaseConsumer {
        let config = s
            .broker
            .client_config()
            .set("isolation.level", isolation)
            .set("group.id", support::unique_topic("lso"))
            .clone();
        config.create().unwrap_or_else(|e| panic!("{e}"))
    };
    let (committed_reader, all_reader) = (reader("read_committed"), reader("read_uncommitted"));
    for kill in 1..=3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        // Kill paybridge while one of its pages is written but not committed: the records
        // are in the log, the commit never comes, and the next instance's start aborts it.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !transaction_open(&committed_reader, &all_reader, &s.topic, 3) {
            assert!(std::time::Instant::now() < deadline, "kill {kill}: no open transaction seen in 30 s");
        }
        bridge.kill();
        bridge = Paybridge::start(&config(&s, &prefix));
    }
    driver.await.unwrap_or_else(|e| panic!("{e}"));
    wait_caught_up(&s.sandbox, chrono::Utc::now()).await;

    let expected = expected_states(&s.sandbox, &payments).await;
    let (_broker, committed, all) = committed_and_all(s.broker, s.topic.clone()).await;
    every_state_once(&committed, &expected);
    // The killed pages' records are in the log, aborted: a read_committed reader never saw them.
    let aborted = all.len() - committed.len();
    println!(
        "exactly-once: {} states, {} records committed, {aborted} aborted by the 3 kills",
        expected.len(),
        committed.len()
    );
    assert!(aborted > 0, "the killed transactions' records are in the log ({} records either way)", all.len());
    drop(bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_broker_refuses_goes_to_the_dlq_inside_the_transaction_and_the_position_moves_on() {
    // The events topic takes records of up to 4 KB; the DLQ takes the broker's default.
    let s = setup(Broker::start(), Some("4096")).await;
    if without_transactions(&s.broker) {
        return;
    }
    let prefix = support::unique_topic("eos-dlq");
    let mut payments = s.sandbox.pd_create(10).await;
    // Random letters, so compression cannot bring its event under the topic's limit.
    let noise: String = (0..12_000).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
    let large = s.sandbox.pd_create_with_internal_id(1, &noise).await;
    payments.extend(large.iter().cloned());
    let bridge = Paybridge::start(&config(&s, &prefix));
    bridge
        .eventually("the first states committed", Duration::from_secs(30), || async { published(&bridge) >= 10 })
        .await;
    // Later changes are published too: the position moved past the refused event.
    for id in &payments {
        assert!(s.sandbox.pd_transition(id, "VALIDATING").await.is_success(), "{id}");
    }
    // Every state each payment passed through (a search may have shown the large payment
    // only once it was VALIDATING: its INITIATED comes from its history then).
    let expected = support::chaos::pd_history(&s.sandbox, &payments).await;
    let refused: HashSet<String> = support::chaos::pd_history(&s.sandbox, &large).await;
    let accepted: HashSet<String> = expected.difference(&refused).cloned().collect();
    assert_eq!(refused.len(), 2, "the large payment's INITIATED and VALIDATING states: {refused:?}");
    eventually("every state of the small payments in the events topic", Duration::from_secs(60), || async {
        let seen = counts(&s.broker.read_to_end(&s.topic, Duration::from_secs(10)));
        accepted.iter().all(|id| seen.contains_key(id))
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = counts(&s.broker.read_to_end(&s.dlq, Duration::from_secs(10)));
        if refused.iter().all(|id| seen.contains_key(id)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the large payment's states never reached the DLQ ({seen:?}):\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (broker, dead, _) = committed_and_all(s.broker, s.dlq.clone()).await;
    let (_broker, events, _) = committed_and_all(broker, s.topic.clone()).await;
    every_state_once(&events, &accepted);
    every_state_once(&dead, &refused);
    for record in &dead {
        assert_eq!(record.header("paybridge_dlq_original_topic"), Some(s.topic.as_str()));
        assert_eq!(record.header("paybridge_dlq_error_code"), Some("MessageSizeTooLarge"));
        let reason = record.header("paybridge_dlq_reason").unwrap_or_default();
        assert!(reason.contains("max.message.bytes (4096)"), "the reason names the topic's limit: {reason}");
    }
    drop(bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_fences_the_paused_one_whose_late_writes_never_become_visible() {
    let s = setup(Broker::start(), None).await;
    if without_transactions(&s.broker) {
        return;
    }
    let prefix = support::unique_topic("eos-fence");
    let mut payments = s.sandbox.pd_create(50).await;
    let mut zombie = Paybridge::start(&config(&s, &prefix));
    eventually("the first instance committed pages", Duration::from_secs(30), || async { published(&zombie) >= 50 })
        .await;
    // Paused (a GC pause, a frozen VM) with work waiting for it...
    payments.extend(s.sandbox.pd_create(50).await);
    signal_pid(zombie.pid(), "STOP");
    // ...while its replacement starts with the same transactional.id and takes over.
    let replacement = Paybridge::start(&config(&s, &prefix));
    eventually("the replacement published the new payments", Duration::from_secs(60), || async {
        published(&replacement) >= 50
    })
    .await;
    for id in &payments {
        assert!(s.sandbox.pd_transition(id, "VALIDATING").await.is_success(), "{id}");
    }
    // The paused one wakes up: its next transactional step is refused (fenced), and it stops.
    signal_pid(zombie.pid(), "CONT");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(code) = zombie.exit_code() {
            break code;
        }
        assert!(std::time::Instant::now() < deadline, "the fenced instance still runs:\n{}", zombie.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(code, Some(0), "a fenced instance stops with an error:\n{}", zombie.log());
    assert!(zombie.log().contains("cannot commit again"), "it says why:\n{}", zombie.log());

    wait_caught_up(&s.sandbox, chrono::Utc::now()).await;
    let expected = expected_states(&s.sandbox, &payments).await;
    let (_broker, committed, _) = committed_and_all(s.broker, s.topic.clone()).await;
    every_state_once(&committed, &expected);
    drop(replacement);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deployments_with_different_prefixes_run_side_by_side() {
    let s = setup(Broker::start(), None).await;
    if without_transactions(&s.broker) {
        return;
    }
    // A second deployment of the same sources (another region, say) with topics of its own.
    let (topic, dlq, state) =
        (s.broker.new_topic("eos-b", 3), s.broker.new_topic("eos-b-dlq", 1), s.broker.new_topic("eos-b-state", 1));
    let payments = s.sandbox.pd_create(30).await;
    let a = Paybridge::start(&config(&s, &support::unique_topic("eu")));
    let b = Paybridge::start(&config_for(&s, &support::unique_topic("us"), (&topic, &dlq, &state)));
    // Both read the payments as they are, then as they change.
    for p in [&a, &b] {
        p.eventually("the deployment published the new payments", Duration::from_secs(30), || async {
            published(p) >= 30
        })
        .await;
    }
    for id in &payments {
        assert!(s.sandbox.pd_transition(id, "VALIDATING").await.is_success(), "{id}");
    }
    let expected = expected_states(&s.sandbox, &payments).await;
    for (p, events) in [(&a, &s.topic), (&b, &topic)] {
        p.eventually("every state in the deployment's own topic", Duration::from_secs(60), || async {
            let seen = counts(&s.broker.read_to_end(events, Duration::from_secs(10)));
            expected.iter().all(|id| seen.contains_key(id))
        })
        .await;
    }
    let (broker, in_a, _) = committed_and_all(s.broker, s.topic.clone()).await;
    let (_broker, in_b, _) = committed_and_all(broker, topic).await;
    every_state_once(&in_a, &expected);
    every_state_once(&in_b, &expected);
    for (name, p) in [("a", &a), ("b", &b)] {
        assert!(!p.log().contains("fenced"), "deployment {name} was fenced:\n{}", p.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_times_out_is_completed_never_reported_failed() {
    if support::Engine::chosen() == support::Engine::Tansu {
        eprintln!("tansu 0.6.0 has no transactions: exactly-once mode is tested on Apache Kafka");
        return;
    }
    // Every client connection after the bootstrap goes through the proxy, which can make the
    // broker's transaction coordinator answer a commit (EndTxn) late.
    let proxy = HoldingProxy::listen(END_TXN);
    let s = setup(Broker::start_own_behind(&proxy), None).await;
    let prefix = support::unique_topic("eos-slow-commit");
    let payments = s.sandbox.pd_create(60).await;
    // A commit reaches the broker 8 s late: paybridge's commit call (kafka.metadata_timeout,
    // 3 s in the tests) times out twice before the broker has even seen it, and the broker
    // commits it after that.
    proxy.hold(Duration::from_secs(8));
    let bridge = Paybridge::start(&config(&s, &prefix));
    bridge
        .eventually("a commit that timed out and was called again", Duration::from_secs(60), || async {
            proxy.held() >= 2 && bridge.log().contains("finishing it again")
        })
        .await;
    proxy.hold(Duration::ZERO);
    for id in &payments {
        assert!(s.sandbox.pd_transition(id, "VALIDATING").await.is_success(), "{id}");
    }
    wait_caught_up(&s.sandbox, chrono::Utc::now()).await;
    let expected = expected_states(&s.sandbox, &payments).await;
    bridge
        .eventually("every state in the events topic", Duration::from_secs(60), || async {
            let seen = counts(&s.broker.read_to_end(&s.topic, Duration::from_secs(10)));
            expected.iter().all(|id| seen.contains_key(id))
        })
        .await;
    let log = bridge.log();
    let retried: Vec<&str> = log.lines().filter(|l| l.contains("finishing it again")).collect();
    assert!(retried.iter().all(|l| l.contains("Commit")), "only commits were called again: {retried:?}");
    // A commit reported failed would have put its page back: published again in a new
    // transaction while the first one committed too, so visible twice.
    for never in ["transaction failed", "transaction aborted", "stopped while the commit was in doubt"] {
        assert!(!log.contains(never), "no page was given up ({never:?}):\n{log}");
    }
    let (_broker, committed, _) = committed_and_all(s.broker, s.topic.clone()).await;
    every_state_once(&committed, &expected);
    println!(
        "exactly-once: {} commits held 8 s, {} calls again, {} states once each",
        proxy.held(),
        retried.len(),
        expected.len()
    );
    drop(bridge);
}
