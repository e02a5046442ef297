//! The source runtime's delivery rules, end to end (sandbox faults, a real broker,
//! `paybridge run` as a process): each test is one defect the runtime fixed.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::process::{Paybridge, eventually};
use support::ripplenet::{acked, acked_uuids, clear_faults, config, fault, id_of, metrics, read, requests, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_whose_fetch_fails_is_never_acknowledged_while_nothing_of_it_is_in_kafka() {
    let s = setup().await;
    let text = config(
        &s,
        "new_interval = \"1h\"\nsent_interval = \"1h\"\nsent_delay = \"10m\"\n\
         [sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/rn\"\ncommit_timeout = \"2s\"",
    );
    // max_attempts = 1: before the fix, one failed fetch put a placeholder in the DLQ and acked.
    let bridge = Paybridge::start(&text.replace("max_attempts = 3", "max_attempts = 1"));
    let created = s.sandbox.create(1).await;
    // Read it as a lost NEW poll would: it is SENT now, so only a fetch by id can bring it.
    let token = s.sandbox.token().await;
    let taken = s.sandbox.get(&token, "/v4/orchestration/payment/notification?status=NEW&size=10").await;
    assert_eq!(taken.status(), StatusCode::OK);
    fault(&s.sandbox, json!({"endpoint": "ripplenet.get", "action": "status", "status": 503})).await;

    let hook = format!("{}/hooks/rn", bridge.intake());
    let http = reqwest::Client::new();
    for attempt in 1..=3 {
        let r = http.post(&hook).json(&json!({"msg_id": created[0]})).send().await;
        assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::SERVICE_UNAVAILABLE), "attempt {attempt}");
    }
    // The first fetch met the 503; the others waited out the pause it started, or were
    // answered at once when it outlasted their commit_timeout.
    assert!(!requests(&s.sandbox, "ripplenet.get").await.is_empty(), "the webhooks tried to fetch");
    assert_eq!(acked(&s.sandbox).await, 0, "a failure to fetch is never a reason to acknowledge");
    assert!(requests(&s.sandbox, "ripplenet.ack_batch").await.is_empty());
    assert!(requests(&s.sandbox, "ripplenet.ack").await.is_empty());

    clear_faults(&s.sandbox).await;
    eventually("answered 200 once the pause is over", Duration::from_secs(10), || async {
        let r = http.post(&hook).json(&json!({"msg_id": created[0]})).send().await;
        r.map(|r| r.status()).ok() == Some(StatusCode::OK)
    })
    .await;
    eventually("acknowledged once fetched and committed", Duration::from_secs(10), || async {
        acked(&s.sandbox).await == 1
    })
    .await;
    let (broker, dead) = read(s.broker, s.dlq.clone()).await;
    assert!(dead.is_empty(), "nothing went to the DLQ: {} records", dead.len());
    let (_broker, records) = read(broker, s.topic.clone()).await;
    let ids: Vec<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    assert_eq!(ids, [id_of(&created[0]).as_str()], "its content is in Kafka, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_ack_outage_the_pollers_back_off_and_nothing_is_republished() {
    let s = setup().await;
    let created = s.sandbox.create(1000).await;
    fault(&s.sandbox, json!({"endpoint": "ripplenet.ack_batch", "action": "status", "status": 503})).await;
    let bridge = Paybridge::start(&config(
        &s,
        "new_interval = \"200ms\"\nsent_interval = \"1s\"\nsent_delay = \"0s\"\npage_size = 100\nbackoff_max = \"3s\"",
    ));
    eventually("all 1000 read", Duration::from_secs(30), || async {
        s.sandbox.stats().await["NEW"].as_u64() == Some(0)
    })
    .await;
    let outage_start = requests(&s.sandbox, "ripplenet.ack_batch").await.first().map(|r| r.0).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let sweeps = requests(&s.sandbox, "ripplenet.poll_sent").await;
    let during: Vec<_> = sweeps.iter().filter(|(at, _)| *at >= outage_start).collect();
    let acks_tried = requests(&s.sandbox, "ripplenet.ack_batch").await.len();
    clear_faults(&s.sandbox).await;

    eventually("all 1000 acknowledged after the outage", Duration::from_secs(30), || async {
        acked(&s.sandbox).await == 1000
    })
    .await;
    // A 1 s sweeper that never backed off would sweep 15 times or more in these 15 s; backing
    // off (2 s, 3 s cap) brings it to about 6. Its backoff restarts when a sweep finds the
    // acknowledger between two retry pauses (not failing at that moment): 10 sweeps were seen
    // once in a CI run, hence the bound of 11.
    assert!(during.len() <= 11, "the sweeper backed off during the outage: {} sweeps", during.len());
    // Failed acks are retried with backoff, not hammered: 25 calls of 40 at most per round.
    assert!(acks_tried <= 25 * 8, "{acks_tried} ack calls during the outage");
    let (_broker, records) = read(s.broker, s.topic.clone()).await;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    for uuid in &created {
        assert!(ids.contains(id_of(uuid).as_str()), "{uuid} missing");
    }
    assert_eq!(ids.len(), 1000);
    assert!(records.len() <= 1050, "{} records for 1000 notifications: the outage re-published", records.len());
    let text = metrics(bridge.admin_port);
    // (Registered at zero at start: counted means above zero.)
    assert!(
        support::metric_sum(bridge.admin_port, "paybridge_ack_failed_total{source=\"rn\"}") > 0,
        "ack failures are counted:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ack_answered_404_is_a_failure_that_is_retried() {
    let s = setup().await;
    fault(&s.sandbox, json!({"endpoint": "ripplenet.ack_batch", "action": "status", "status": 404, "times": 2})).await;
    let created = s.sandbox.create(10).await;
    let bridge =
        Paybridge::start(&config(&s, "new_interval = \"200ms\"\nsent_interval = \"1h\"\nbackoff_max = \"1s\""));
    eventually("all 10 acknowledged after two refused calls", Duration::from_secs(20), || async {
        acked(&s.sandbox).await == 10
    })
    .await;
    let calls = requests(&s.sandbox, "ripplenet.ack_batch").await;
    assert_eq!(calls.iter().map(|c| c.1).collect::<Vec<_>>(), [404, 404, 200], "retried, not taken as success");
    let acks: HashSet<String> = acked_uuids(&s.sandbox).await.into_iter().collect();
    assert_eq!(acks, created.into_iter().collect::<HashSet<_>>());
    assert!(metrics(bridge.admin_port).contains("paybridge_ack_failed_total{source=\"rn\"} 20"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_long_retry_after_is_clamped_to_backoff_max() {
    let s = setup().await;
    fault(
        &s.sandbox,
        json!({"endpoint": "ripplenet.poll_new", "action": "status", "status": 429, "retry_after": 86400, "times": 1}),
    )
    .await;
    let _bridge =
        Paybridge::start(&config(&s, "new_interval = \"100ms\"\nsent_interval = \"1h\"\nbackoff_max = \"3s\""));
    eventually("polling again within a few seconds", Duration::from_secs(10), || async {
        requests(&s.sandbox, "ripplenet.poll_new").await.len() >= 2
    })
    .await;
    let polls = requests(&s.sandbox, "ripplenet.poll_new").await;
    assert_eq!((polls[0].1, polls[1].1), (429, 200));
    let gap = polls[1].0 - polls[0].0;
    // At least the clamp; the upper bound leaves room for a busy machine (an unclamped wait
    // would be a day).
    assert!((2_900..=6_000).contains(&gap), "Retry-After: 86400 waited {gap} ms with backoff_max = 3s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_pages_in_flight_acknowledges_what_was_confirmed() {
    let s = setup().await;
    // Slow acknowledgements keep pages in flight when SIGTERM arrives.
    fault(&s.sandbox, json!({"endpoint": "ripplenet.ack_batch", "action": "latency", "ms": 1500})).await;
    s.sandbox.create(500).await;
    let mut bridge = Paybridge::start(
        &config(&s, "new_interval = \"200ms\"\nsent_interval = \"1h\"\nsent_delay = \"10m\"\npage_size = 100")
            .replace("timeout = \"5s\"", "timeout = \"15s\""),
    );
    eventually("every page read", Duration::from_secs(20), || async {
        s.sandbox.stats().await["NEW"].as_u64() == Some(0)
    })
    .await;
    assert!(acked(&s.sandbox).await < 500, "pages are still in flight at SIGTERM");
    assert_eq!(bridge.stop(), Some(0), "clean exit:\n{}", bridge.log());

    let stats = s.sandbox.stats().await;
    assert_eq!(stats["SENT"], 0, "no page read before SIGTERM is left for the sweeper: {stats}");
    assert_eq!(stats["ACK"], 500);
    let (_broker, records) = read(s.broker, s.topic.clone()).await;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    for uuid in acked_uuids(&s.sandbox).await {
        assert!(ids.contains(id_of(&uuid).as_str()), "{uuid} acknowledged but not in Kafka");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_ignores_size_cannot_make_a_page_grow_and_the_rest_is_swept() {
    let s = setup().await;
    let created = s.sandbox.create(300).await;
    // The next NEW poll answers all 300 (flipping them to SENT) although paybridge asks for 100.
    fault(&s.sandbox, json!({"endpoint": "ripplenet.poll_new", "action": "ignore_size", "times": 1})).await;
    let bridge = Paybridge::start(&config(
        &s,
        "new_interval = \"200ms\"\nsent_interval = \"300ms\"\nsent_delay = \"1m\"\npage_size = 100\nbackoff_max = \"1s\"",
    ));
    eventually("the first page acknowledged", Duration::from_secs(20), || async { acked(&s.sandbox).await == 100 })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = s.sandbox.stats().await;
    assert_eq!((stats["NEW"].as_u64(), stats["SENT"].as_u64(), stats["ACK"].as_u64()), (Some(0), Some(200), Some(100)));
    let polls = requests(&s.sandbox, "ripplenet.poll_new").await;
    assert_eq!(polls[0].1, 200, "the oversized page was answered");

    // The 200 paybridge left unread are SENT: the sweeper takes them once sent_delay has passed.
    assert_eq!(s.sandbox.control("/_sandbox/clock/advance", json!({"seconds": 120})).await, StatusCode::OK);
    eventually("the rest swept and acknowledged", Duration::from_secs(20), || async { acked(&s.sandbox).await == 300 })
        .await;
    let (_broker, records) = read(s.broker, s.topic.clone()).await;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    for uuid in &created {
        assert!(ids.contains(id_of(uuid).as_str()), "{uuid} missing");
    }
    assert_eq!(records.len(), 300, "each notification published once");
    drop(bridge);
}
