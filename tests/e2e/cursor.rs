//! Cursor commits: the position advances only after the events are in Kafka, survives a
//! restart, and exactly-once refuses to start on a broker without transactions.

use crate::support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use paybridge::ack::Outcome;
use paybridge::cluster::gate::{Fence, Gate, TenureEnd, run_while_owned};
use paybridge::metrics::Metrics;
use paybridge::pipeline::{Pipeline, PipelineSettings};
use paybridge::sink::cursor::{CursorCommitter, CursorError};
use paybridge::sink::kafka::KafkaSink;
use paybridge::sink::topics::{TopicSpec, create_topics};
use paybridge::sink::wire::ValueFormat;
use support::{Broker, kafka_config_with, ripplenet_event};
use tokio_util::sync::CancellationToken;

struct Setup {
    broker: Broker,
    kafka: paybridge::config::KafkaConfig,
    pipeline: Pipeline,
}

async fn setup(extra: &str) -> Setup {
    setup_on(Broker::start(), extra, 1).await
}

/// [`setup`] with a state topic of `state_partitions` partitions.
async fn setup_with(extra: &str, state_partitions: i32) -> Setup {
    setup_on(Broker::start(), extra, state_partitions).await
}

/// [`setup_with`] on `broker`.
async fn setup_on(broker: Broker, extra: &str, state_partitions: i32) -> Setup {
    let topic = broker.new_topic("cur-events", 1);
    let dlq = broker.new_topic("cur-dlq", 1);
    let state = support::unique_topic("cur-state");
    let mut kafka = kafka_config_with(
        &broker,
        &topic,
        &dlq,
        &format!("state_topic = \"{state}\"\ntopic_replication_factor = 1\ntopic_partitions = 1\n{extra}"),
    );
    let spec = TopicSpec { name: state, compacted: true, partitions: Some(state_partitions) };
    create_topics(&kafka, &[spec], Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
    kafka.metadata_timeout = paybridge::config::HumanDuration::from_secs(10);
    let sink = KafkaSink::new(&kafka).unwrap_or_else(|e| panic!("{e}"));
    let settings = PipelineSettings { capacity: 1000, delivery_deadline: kafka.delivery_timeout.get() };
    let pipeline = Pipeline::start(sink, settings, Arc::new(Metrics::new()));
    Setup { broker, kafka, pipeline }
}

impl Setup {
    /// A one-replica committer of `source` on this setup's pipeline.
    async fn committer(&self, source: &str) -> Result<CursorCommitter, CursorError> {
        self.committer_with(source, None).await
    }

    async fn committer_with(&self, source: &str, fence: Option<Fence>) -> Result<CursorCommitter, CursorError> {
        let stop = CancellationToken::new();
        let fence = fence.map(|f| Box::new(f) as Box<dyn paybridge::sink::publisher::Tenure>);
        let publisher = std::sync::Arc::new(self.pipeline.submitter());
        CursorCommitter::start(&self.kafka, source, publisher, ValueFormat::Json, stop, fence).await
    }
}

/// The fence of a singleton task this process owns (as `[cluster]` grants it), on a gate of
/// its own: two of them are two replicas the group handed the same task at once.
async fn owned_fence() -> Fence {
    let gate = Gate::new(Arc::new(tokio::sync::Notify::new()));
    gate.grant();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    tokio::spawn(run_while_owned(
        gate,
        CancellationToken::new(),
        |_| {},
        move |stop, fence| {
            if let Some(tx) = tx.take() {
                let _ = tx.send(fence);
            }
            async move {
                stop.cancelled().await;
                TenureEnd::Released
            }
        },
    ));
    rx.await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_advances_after_the_events_and_survives_a_restart() {
    let s = setup("").await;
    let committer = s.committer("rpd").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(committer.last_cursor().await.unwrap_or_else(|e| panic!("{e}")), None);

    let events: Vec<_> = (0..5).map(|n| ripplenet_event(30_000 + n, "pay-cur", 10)).collect();
    let done = committer.commit(events, "2025-10-01T14:05:00Z").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(done.batch.is_delivered() && done.cursor_committed);
    // The committer keeps one client for its reads: each read sees the newest position,
    // also when nothing was written since the last read.
    for _ in 0..2 {
        assert_eq!(committer.last_cursor().await.ok().flatten().as_deref(), Some("2025-10-01T14:05:00Z"));
    }
    let events: Vec<_> = (5..8).map(|n| ripplenet_event(30_000 + n, "pay-cur", 10)).collect();
    let done = committer.commit(events, "2025-10-01T14:10:00Z").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(done.cursor_committed);
    for _ in 0..2 {
        assert_eq!(committer.last_cursor().await.ok().flatten().as_deref(), Some("2025-10-01T14:10:00Z"));
    }

    // A new committer (a restarted paybridge) reads the last position back.
    let restarted = s.committer("rpd").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restarted.last_cursor().await.ok().flatten().as_deref(), Some("2025-10-01T14:10:00Z"));
    // Positions are per source.
    let other = s.committer("rpd-other").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.last_cursor().await.ok().flatten(), None);

    let topic = s.kafka.topic.clone();
    let broker = s.broker;
    let records = tokio::task::spawn_blocking(move || broker.read_all(&topic, 8, Duration::from_secs(10)))
        .await
        .unwrap_or_default();
    assert_eq!(records.len(), 8, "every event of both windows is in the topic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_does_not_advance_the_cursor() {
    let mut s = setup_on(Broker::start_own(), "delivery_timeout = \"3s\"", 1).await;
    let committer = s.committer("rpd").await.unwrap_or_else(|e| panic!("{e}"));
    let first = committer.commit(vec![ripplenet_event(31_000, "p", 10)], "c1").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(first.cursor_committed);

    s.broker.stop();
    let second = committer.commit(vec![ripplenet_event(31_001, "p", 10)], "c2").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!second.cursor_committed, "no cursor advance while the events are not confirmed");
    assert!(matches!(second.batch.events[0].outcome, Outcome::Retry(_)));

    s.broker.restart();
    let restarted = s.committer("rpd").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restarted.last_cursor().await.ok().flatten().as_deref(), Some("c1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_starts_only_on_a_broker_with_transactions() {
    let s = setup("exactly_once = true").await;
    let started = s.committer("rpd").await;
    if s.broker.is_tansu() {
        match started {
            Err(e @ CursorError::Transaction(_)) => {
                let text = e.to_string();
                assert!(
                    text.contains("does not support transactions") && text.contains("kafka.exactly_once"),
                    "{text}"
                );
            }
            Err(other) => panic!("expected the transactions error, got: {other}"),
            Ok(_) => panic!("tansu 0.6.0 has no transactions; exactly-once must refuse to start"),
        }
    } else if let Err(e) = started {
        panic!("{} has transactions; exactly-once must start: {e}", s.broker.engine().name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_20000_positions_the_last_one_is_found_within_the_metadata_timeout() {
    use paybridge::sink::state::{CursorRecord, read_last_cursor};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("cur-events", 1), broker.new_topic("cur-dlq", 1));
    let state = broker.new_topic("cur-state", 3);
    let mut kafka = kafka_config_with(&broker, &topic, &dlq, &format!("state_topic = \"{state}\"\n"));
    kafka.metadata_timeout = paybridge::config::HumanDuration::from_secs(5);
    let producer: FutureProducer = broker
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    let record = |source: &str, cursor: String| {
        serde_json::to_vec(&CursorRecord {
            source: source.into(),
            cursor,
            committed_at: chrono::Utc::now(),
            epoch: None,
            tenure: None,
            owner: None,
            reset: false,
        })
        .unwrap_or_default()
    };
    // One early position of another source, then 20,000 of "pd" (a long-running source).
    let early = record("pd-quiet", "quiet-1".into());
    let _ = producer.send(FutureRecord::to(&state).key("pd-quiet").payload(&early), Duration::from_secs(10)).await;
    let mut deliveries = Vec::with_capacity(20_000);
    for n in 0..20_000 {
        let value = record("pd", format!("position-{n}"));
        loop {
            match producer.send_result(FutureRecord::to(&state).key("pd").payload(&value)) {
                Ok(d) => break deliveries.push(d),
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    for d in deliveries {
        assert!(matches!(d.await, Ok(Ok(_))), "position not written");
    }

    let timeout = kafka.metadata_timeout.get();
    let started = std::time::Instant::now();
    let last = read_last_cursor(&kafka, "pd", timeout).await.unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed();
    assert_eq!(last.map(|r| r.cursor).as_deref(), Some("position-19999"));
    assert!(took < timeout, "found in {took:?}, within the metadata timeout {timeout:?}");
    // A position at the very start (a source that has not committed since): found, given time.
    let quiet = read_last_cursor(&kafka, "pd-quiet", Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(quiet.map(|r| r.cursor).as_deref(), Some("quiet-1"), "an old position is found too");
    // A source that never committed: the whole topic is read to know it (slow on tansu).
    let none = read_last_cursor(&kafka, "pd-none", Duration::from_secs(60)).await.map_err(|e| e.to_string());
    assert_eq!(none.map(|r| r.is_none()), Ok(true));
}

/// One owner keeps committing (every few milliseconds) while another takes the task over,
/// three times: the group handed the task to two replicas at once. Folding the state topic
/// as the module `sink::state` documents it (claims and positions in the order they landed),
/// the position never moves back, each takeover starts exactly from the position in force
/// when its claim landed, and what the old owner writes after that claim never counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_starts_from_the_position_in_force_when_its_claim_landed() {
    let s = setup_with("", 3).await;
    let owner = s.committer_with("pd", Some(owned_fence().await)).await.unwrap_or_else(|e| panic!("{e}"));
    let first = owner.take_over(Duration::from_secs(10), "000000").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first, None, "nothing committed yet: the caller starts from its initial position");
    let mut owner = Arc::new(owner);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let mut starts = Vec::new();
    for _ in 0..3 {
        let keep_writing = CancellationToken::new();
        let writer = {
            let (owner, next, keep_writing) = (owner.clone(), next.clone(), keep_writing.clone());
            tokio::spawn(async move {
                while !keep_writing.is_cancelled() {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match owner.commit(Vec::new(), &format!("{n:06}")).await {
                        Ok(done) => assert!(done.cursor_committed, "position {n} not written"),
                        Err(CursorError::Superseded { .. }) => return,
                        Err(e) => panic!("{e}"),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let successor = s.committer_with("pd", Some(owned_fence().await)).await.unwrap_or_else(|e| panic!("{e}"));
        let start = successor.take_over(Duration::from_secs(10), "unused").await.unwrap_or_else(|e| panic!("{e}"));
        starts.push(start.map(|r| r.cursor).unwrap_or_else(|| panic!("the takeover found no position")));
        keep_writing.cancel();
        writer.await.unwrap_or_else(|e| panic!("{e}"));
        owner = Arc::new(successor);
    }

    let records = tokio::task::block_in_place(|| s.broker.read_to_end(&s.kafka.state_topic, Duration::from_secs(20)));
    let home: HashSet<i32> = records.iter().map(|r| r.partition).collect();
    assert_eq!(home.len(), 1, "every record of the source sits in one partition");
    // Each takeover tombstones the key of the tenure before it once its own position is in.
    let tombstoned: std::collections::BTreeSet<&str> =
        records.iter().filter(|r| r.value.is_empty()).filter_map(|r| r.key.as_deref()).collect();
    assert_eq!(tombstoned, ["pd#1", "pd#2", "pd#3"].into(), "every earlier tenure's key, never the newest");
    let mut records: Vec<_> = records.iter().filter(|r| !r.value.is_empty()).map(|r| (r.offset, r.json())).collect();
    records.sort_by_key(|(offset, _)| *offset);
    // (epoch, claim offset) of the tenure in force, and the position in force.
    let mut tenure = (0, -1);
    let mut position: Option<String> = None;
    let (mut claims_seen, mut void, mut accepted) = (Vec::new(), 0, 0);
    for (offset, value) in &records {
        let epoch = value["epoch"].as_u64().unwrap_or_else(|| panic!("no epoch in {value}"));
        let Some(cursor) = value["cursor"].as_str() else {
            assert!((epoch, *offset) > tenure, "a claim below the tenure in force: {value}");
            tenure = (epoch, *offset);
            claims_seen.push(position.clone());
            continue;
        };
        let writer = (epoch, value["tenure"].as_i64().unwrap_or_else(|| panic!("no tenure in {value}")));
        if writer < tenure {
            void += 1;
            continue;
        }
        assert_eq!(writer, tenure, "a position of a tenure that never claimed: {value}");
        if let Some(before) = &position {
            assert!(cursor >= before.as_str(), "the position moved back from {before} to {cursor}");
        }
        position = Some(cursor.to_owned());
        accepted += 1;
    }
    println!("takeover: {} records, {accepted} positions in force, {void} late writes of old owners", records.len());
    assert_eq!(claims_seen.len(), 4, "one claim per tenure");
    assert_eq!(claims_seen[0], None);
    let carried: Vec<String> = claims_seen[1..].iter().map(|p| p.clone().unwrap_or_default()).collect();
    assert_eq!(carried, starts, "each takeover starts from the position in force when its claim landed");

    // The same source run again with one replica (no `[cluster]`): it starts from the last
    // tenure's position, and a restart finds its own newer one.
    let last = owner.last_cursor().await.unwrap_or_else(|e| panic!("{e}"));
    let single = s.committer("pd").await.unwrap_or_else(|e| panic!("{e}"));
    let start = single.take_over(Duration::from_secs(10), "unused").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(start.map(|r| r.cursor), last);
    assert!(single.commit(Vec::new(), "999999").await.is_ok_and(|done| done.cursor_committed));
    let restarted = s.committer("pd").await.unwrap_or_else(|e| panic!("{e}"));
    let start = restarted.take_over(Duration::from_secs(10), "unused").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(start.map(|r| r.cursor).as_deref(), Some("999999"));
}

/// Exactly-once: a writer that fails for good without being fenced (as after a transaction
/// coordinator's shutdown mid-abort) is replaced; the page in flight is reported not
/// committed (its events Retry) and publishing it again commits it, each event once for a
/// read_committed reader. A writer fenced by another instance still ends the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_replaces_a_writer_that_failed_for_good_and_stops_on_fencing() {
    if support::Engine::chosen() == support::Engine::Tansu {
        return; // tansu 0.6.0 has no transactions.
    }
    let s = setup("exactly_once = true").await;
    let committer = s.committer("eos-replace").await.unwrap_or_else(|e| panic!("{e}"));
    let first = committer.commit(vec![ripplenet_event(32_000, "p", 10)], "c1").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(first.cursor_committed);

    committer.raise_fatal_error_for_tests(false).await;
    let page = vec![ripplenet_event(32_001, "p", 10), ripplenet_event(32_002, "p", 10)];
    let failed = committer.commit(page.clone(), "c2").await.unwrap_or_else(|e| panic!("replaced, not ended: {e}"));
    assert!(!failed.cursor_committed, "the page in flight is not committed");
    assert!(failed.batch.events.iter().all(|e| matches!(e.outcome, Outcome::Retry(_))), "{:?}", failed.batch);
    let again = committer.commit(page, "c2").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(again.cursor_committed, "the new writer commits the page: {:?}", again.batch);
    let records = paybridge_read_committed(&s);
    let ids: Vec<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!((ids.len(), distinct.len()), (3, 3), "each event once: {ids:?}");

    committer.raise_fatal_error_for_tests(true).await;
    let fenced = committer.commit(vec![ripplenet_event(32_003, "p", 10)], "c3").await;
    assert!(matches!(fenced, Err(CursorError::Ended(_))), "fenced by another instance: the run ends: {fenced:?}");
}

fn paybridge_read_committed(s: &Setup) -> Vec<support::Record> {
    tokio::task::block_in_place(|| {
        support::broker::read_to_end_with(
            s.broker.client_config(),
            &s.kafka.topic,
            Duration::from_secs(10),
            "read_committed",
        )
    })
}
