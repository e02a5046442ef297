//! The RippleNet source end to end: the sandbox (a real HTTP server), a real broker, and
//! `paybridge run` as a process.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Record;
use support::process::{Paybridge, eventually};
use support::ripplenet::{ACCOUNT, FAST, acked, config, id_of, read, requests, setup, setup_own};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_notifications_go_new_to_kafka_to_ack_and_no_ack_precedes_its_commit() {
    let s = setup().await;
    let created = s.sandbox.create(1000).await;
    // A long new_interval: only "full page → poll again at once" drains 10 pages quickly.
    let _bridge = Paybridge::start(&config(
        &s,
        "new_interval = \"30s\"\nsent_interval = \"30s\"\nsent_delay = \"10m\"\npage_size = 100",
    ));
    eventually("all 1000 acknowledged", Duration::from_secs(25), || async { acked(&s.sandbox).await == 1000 }).await;
    let polls = requests(&s.sandbox, "ripplenet.poll_new").await;
    assert!(polls.len() >= 11, "10 full pages and one short one: {polls:?}");
    for pair in polls.windows(2).take(10) {
        assert!(pair[1].0 - pair[0].0 < 30_000, "a full page is followed by an immediate poll: {polls:?}");
    }

    let acks = s.sandbox.ledger("kind=ack&provider=ripplenet").await;
    let (_broker, records) = read(s.broker, s.topic.clone()).await;
    // Every uuid's event id is in Kafka; remember when each was first written.
    let mut written: HashMap<String, i64> = HashMap::new();
    for r in &records {
        if let (Some(id), Some(ts)) = (r.header("ce_id"), r.timestamp) {
            let at = written.entry(id.to_owned()).or_insert(ts);
            *at = (*at).min(ts);
        }
    }
    for uuid in &created {
        assert!(written.contains_key(&id_of(uuid)), "notification {uuid} acked but its event is not in Kafka");
    }
    // No acknowledgement before its event was written.
    assert!(acks.len() >= 1000);
    for ack in &acks {
        let uuid = ack["id"].as_str().unwrap_or_default();
        let at =
            chrono::DateTime::parse_from_rfc3339(ack["at"].as_str().unwrap_or_default()).map(|t| t.timestamp_millis());
        let written_at = written.get(&id_of(uuid)).copied();
        assert!(
            matches!((at, written_at), (Ok(a), Some(w)) if a >= w),
            "ack of {uuid} at {at:?} precedes its event's write at {written_at:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_at_start_nothing_is_acked_until_it_returns() {
    let mut s = setup_own().await;
    let created = s.sandbox.create(50).await;
    s.broker.stop();
    let bridge = Paybridge::spawn(&config(&s, FAST));
    bridge.wait_for_log("brokers unreachable", Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(acked(&s.sandbox).await, 0, "nothing is acknowledged while the broker is down");

    s.broker.restart();
    eventually("all 50 acknowledged after the broker returned", Duration::from_secs(90), || async {
        acked(&s.sandbox).await == 50
    })
    .await;
    let (_broker, records) = read(s.broker, s.topic.clone()).await;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    for uuid in &created {
        assert!(ids.contains(id_of(uuid).as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_new_poll_responses_are_recovered_by_the_sent_sweeper() {
    let s = setup().await;
    let fault = json!({"endpoint": "ripplenet.poll_new", "action": "lost_response", "times": 2});
    assert_eq!(s.sandbox.control("/_sandbox/faults", fault).await, StatusCode::CREATED);
    let created = s.sandbox.create(30).await;
    let _bridge = Paybridge::start(&config(
        &s,
        "new_interval = \"200ms\"\nsent_interval = \"1s\"\nsent_delay = \"0s\"\npage_size = 20\nbackoff_max = \"1s\"",
    ));
    eventually("all 30 acknowledged", Duration::from_secs(60), || async { acked(&s.sandbox).await == 30 }).await;
    // The lost polls really happened (their notifications were flipped to SENT unseen).
    let lost = s.sandbox.ledger("kind=request&provider=ripplenet").await;
    assert!(lost.iter().filter(|e| e["endpoint"] == "ripplenet.poll_new" && e["status"] == 0).count() >= 2);
    let sweeps = lost.iter().filter(|e| e["endpoint"] == "ripplenet.poll_sent" && e["status"] == 200).count();
    assert!(sweeps >= 1);
    let (_broker, records) = read(s.broker, s.topic.clone()).await;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    for uuid in &created {
        assert!(ids.contains(id_of(uuid).as_str()), "{uuid} missing from Kafka");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_notification_goes_to_the_dlq_after_max_attempts_then_is_acked() {
    let s = setup().await;
    let body = json!({"notifications": [{"notification_type": "NOTIFY_ACCEPT", "notification_payload": {"payment_status": "ACCEPTED"}}]});
    let r = s.sandbox.http.post(s.sandbox.url("/_sandbox/ripplenet/notifications")).json(&body).send().await;
    let poison: Value = r.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
    let uuid = poison["uuids"][0].as_str().unwrap_or_default().to_owned();
    s.sandbox.create(5).await;
    let _bridge = Paybridge::start(&config(&s, FAST));
    eventually("the poison notification acknowledged", Duration::from_secs(60), || async {
        acked(&s.sandbox).await == 6
    })
    .await;

    let (broker, dead) = read(s.broker, s.dlq.clone()).await;
    assert_eq!(dead.len(), 1);
    let record = &dead[0];
    assert_eq!(record.key.as_deref(), Some(format!("ripplenet/{ACCOUNT}/{uuid}").as_str()));
    let reason = record.header("paybridge_dlq_reason").unwrap_or_default();
    assert!(reason.contains("payment_id") && reason.contains("3 attempts"), "{reason}");
    assert_eq!(record.json()["uuid"], uuid.as_str(), "the untouched notification");
    // Exactly max_attempts processing failures before the DLQ.
    let polls_of_poison =
        s.sandbox.ledger("kind=ack&provider=ripplenet").await.iter().filter(|a| a["id"] == uuid.as_str()).count();
    assert_eq!(polls_of_poison, 1);
    let (_broker, events) = read(broker, s.topic.clone()).await;
    let unique: HashSet<&str> = events.iter().filter_map(|r| r.header("ce_id")).collect();
    assert_eq!(unique.len(), 5, "the good ones are published normally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_answer_200_only_after_commit_dedupe_and_503_while_the_broker_is_down() {
    let mut s = setup_own().await;
    // Pollers idle (one poll at start, then an hour): the webhooks do the work.
    let bridge = Paybridge::start(&config(
        &s,
        "new_interval = \"1h\"\nsent_interval = \"1h\"\n[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/rn\"\ncommit_timeout = \"2s\"",
    ));
    let hook = format!("{}/hooks/rn", bridge.intake());
    let http = reqwest::Client::new();
    let created = s.sandbox.create(1).await;

    // Two concurrent duplicates of one webhook: both 200, one event, then one acknowledgement.
    let post = |id: &str| http.post(&hook).json(&json!({"msg_id": id})).send();
    let (a, b) = tokio::join!(post(&created[0]), post(&created[0]));
    assert_eq!(a.map(|r| r.status()).ok(), Some(StatusCode::OK));
    assert_eq!(b.map(|r| r.status()).ok(), Some(StatusCode::OK));
    eventually("the webhook's notification acknowledged", Duration::from_secs(5), || async {
        acked(&s.sandbox).await == 1
    })
    .await;
    let (broker, records) = read(s.broker, s.topic.clone()).await;
    s.broker = broker;
    let mine: Vec<&Record> =
        records.iter().filter(|r| r.header("ce_id") == Some(id_of(&created[0]).as_str())).collect();
    assert_eq!(mine.len(), 1, "committed before the 200, once");
    // A late duplicate of a committed webhook costs nothing upstream.
    let calls_before = s.sandbox.ledger("kind=request&provider=ripplenet").await.len();
    assert_eq!(post(&created[0]).await.map(|r| r.status()).ok(), Some(StatusCode::OK));
    assert_eq!(s.sandbox.ledger("kind=request&provider=ripplenet").await.len(), calls_before);

    // Malformed bodies and unknown ids.
    for bad in ["{}", "not json", "{\"msg_id\": \"nope\"}"] {
        let r = http.post(&hook).header("content-type", "application/json").body(bad).send().await;
        assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::BAD_REQUEST), "{bad}");
    }
    let big = format!("{{\"msg_id\": \"{}\", \"pad\": \"{}\"}}", created[0], "x".repeat(5000));
    let r = http.post(&hook).header("content-type", "application/json").body(big).send().await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::PAYLOAD_TOO_LARGE));
    let metrics =
        support::http_get(([127, 0, 0, 1], bridge.admin_port).into(), "/metrics").map(|m| m.2).unwrap_or_default();
    for line in [
        "paybridge_webhook_rejected_total{source=\"rn\",reason=\"malformed\"} 3",
        "paybridge_webhook_rejected_total{source=\"rn\",reason=\"too_large\"} 1",
    ] {
        assert!(metrics.contains(line), "bad webhooks are counted by reason: {line}\n{metrics}");
    }
    let r = post("00000000-0000-0000-0000-00000000abcd").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap_or_default()["status"], "unknown msg_id");

    // Broker down: 503 within the commit timeout, nothing acked.
    let created = s.sandbox.create(1).await;
    s.broker.stop();
    let started = std::time::Instant::now();
    let r = post(&created[0]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(s.sandbox.stats().await["ACK"], 1, "nothing acknowledged after the delivery timeout either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_backlog_polls_are_never_closer_than_the_intervals() {
    let s = setup().await;
    s.sandbox.create(3).await;
    let _bridge =
        Paybridge::start(&config(&s, "new_interval = \"400ms\"\nsent_interval = \"700ms\"\nsent_delay = \"10m\""));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let requests = s.sandbox.ledger("kind=request&provider=ripplenet").await;
    for (endpoint, interval_ms) in [("ripplenet.poll_new", 400), ("ripplenet.poll_sent", 700)] {
        let times: Vec<i64> = requests
            .iter()
            .filter(|e| e["endpoint"] == endpoint)
            .filter_map(|e| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap_or_default()).ok())
            .map(|t| t.timestamp_millis())
            .collect();
        assert!(times.len() >= 4, "{endpoint}: {times:?}");
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= interval_ms,
                "{endpoint} polled {} ms apart (interval {interval_ms} ms)",
                pair[1] - pair[0]
            );
        }
    }
    assert_eq!(acked(&s.sandbox).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_refreshed_once_on_401_and_never_logged() {
    let s = setup().await;
    let secret = "S3cret-Never-In-Logs-42";
    let mut settings = s.sandbox.get_json("/_sandbox/ripplenet/settings", None).await;
    settings["client_secret"] = json!(secret);
    let r = s.sandbox.http.put(s.sandbox.url("/_sandbox/ripplenet/settings")).json(&settings).send().await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::OK));
    // The secret reaches paybridge through the environment, as in production.
    let text = config(&s, FAST).replace("${RN_SECRET:-sandbox-secret}", "${RN_SECRET}");
    let bridge = Paybridge::spawn_with_env(&text, &[("RN_SECRET", secret)]);
    bridge.wait_for_log("paybridge started", Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tokens = requests(&s.sandbox, "ripplenet.token").await;
    assert_eq!(tokens.len(), 1, "one token for many polls: {tokens:?}");
    assert!(requests(&s.sandbox, "ripplenet.poll_new").await.len() >= 4);

    // Revoked tokens: the next call gets 401, refreshes once, and succeeds.
    let r = s.sandbox.http.post(s.sandbox.url("/_sandbox/tokens/expire")).send().await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::NO_CONTENT));
    s.sandbox.create(3).await;
    eventually("the 3 new notifications acknowledged after the refresh", Duration::from_secs(30), || async {
        acked(&s.sandbox).await == 3
    })
    .await;
    let tokens = requests(&s.sandbox, "ripplenet.token").await;
    assert_eq!(tokens.len(), 2, "exactly one refresh: {tokens:?}");
    // Whichever call met the revoked token first (poller_new, the sweeper or an ack) got the 401.
    let mut saw_401 = false;
    for endpoint in ["ripplenet.poll_new", "ripplenet.poll_sent", "ripplenet.ack_batch"] {
        saw_401 |= requests(&s.sandbox, endpoint).await.iter().any(|(_, status)| *status == 401);
    }
    assert!(saw_401, "a call was refused with 401 before the refresh");
    assert!(!bridge.log().contains(secret), "the client secret appeared in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_backs_off_and_honours_retry_after() {
    let s = setup().await;
    let fault =
        json!({"endpoint": "ripplenet.poll_new", "action": "status", "status": 429, "retry_after": 3, "times": 1});
    assert_eq!(s.sandbox.control("/_sandbox/faults", fault).await, StatusCode::CREATED);
    let fault = json!({"endpoint": "ripplenet.poll_new", "action": "status", "status": 503, "times": 1});
    assert_eq!(s.sandbox.control("/_sandbox/faults", fault).await, StatusCode::CREATED);
    let _bridge =
        Paybridge::start(&config(&s, "new_interval = \"100ms\"\nsent_interval = \"1h\"\nbackoff_max = \"60s\""));
    eventually("polling recovered", Duration::from_secs(30), || async {
        requests(&s.sandbox, "ripplenet.poll_new").await.iter().any(|(_, status)| *status == 200)
    })
    .await;
    let polls = requests(&s.sandbox, "ripplenet.poll_new").await;
    let statuses: Vec<u64> = polls.iter().map(|(_, st)| *st).take(3).collect();
    assert_eq!(statuses, [429, 503, 200]);
    let gaps: Vec<i64> = polls.windows(2).take(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps[0] >= 3000, "Retry-After: 3 honoured: {gaps:?}");
    // The 429 was the first failure; the 503 is the second: 4 s ±20%. The upper bound leaves
    // room for a busy machine but stays below the third step's shortest wait (8 s − 20%).
    assert!((3200 - 50..6400).contains(&gaps[1]), "second consecutive failure waits ~4 s: {gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_acks_are_counted_not_looped_and_the_sweeper_finishes_the_job() {
    let s = setup().await;
    let fault = json!({"endpoint": "ripplenet.ack_batch", "action": "ack_invalid", "times": 1});
    assert_eq!(s.sandbox.control("/_sandbox/faults", fault).await, StatusCode::CREATED);
    s.sandbox.create(10).await;
    let bridge = Paybridge::start(&config(&s, FAST));
    eventually("all 10 acknowledged", Duration::from_secs(30), || async { acked(&s.sandbox).await == 10 }).await;
    let metrics =
        support::http_get(([127, 0, 0, 1], bridge.admin_port).into(), "/metrics").map(|m| m.2).unwrap_or_default();
    assert!(metrics.contains("paybridge_ack_invalid_total{source=\"rn\"} 10"), "{metrics}");
    // The refused batch was not re-sent in a loop: two ack calls in all (refused, then the sweeper's).
    let acks = requests(&s.sandbox, "ripplenet.ack_batch").await;
    assert_eq!(acks.len(), 2, "{acks:?}");
}

/// A webhook answered 503 while the broker was down and redelivered once it is back: the
/// provider's redelivery is answered 200 once its event is committed (never before), even
/// when Apache Kafka takes seconds to come back and the first attempt's event is still in
/// flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_redelivered_after_the_broker_returns_is_answered_200_once_committed() {
    let mut s = setup_own().await;
    // Pollers running too (the SENT sweeper reads the notification again every second, each
    // attempt waiting up to the 5 s delivery timeout), and a commit timeout that outlasts an
    // attempt made while the broker was down: a broker back from a kill takes seconds before
    // its producers get an idempotence id again.
    let config = config(
        &s,
        "new_interval = \"500ms\"\nsent_interval = \"1s\"\nsent_delay = \"0s\"\n[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/rn\"\ncommit_timeout = \"15s\"",
    );
    let bridge = Paybridge::start(&config);
    let hook = format!("{}/hooks/rn", bridge.intake());
    let http = reqwest::Client::new();
    let post = |id: &str| http.post(&hook).json(&json!({"msg_id": id})).send();
    let created = s.sandbox.create(1).await;
    s.broker.stop();
    let first = post(&created[0]).await.map(|r| r.status()).ok();
    assert_eq!(first, Some(StatusCode::SERVICE_UNAVAILABLE), "not committed while the broker is down");
    assert_eq!(acked(&s.sandbox).await, 0);
    // (The 503 came after the 15 s commit timeout: down long enough for librdkafka's
    // reconnect backoff to grow to its cap.)
    tokio::task::block_in_place(|| s.broker.restart());
    eventually("/readyz answers 200 again", Duration::from_secs(60), || async {
        support::http_get(([127, 0, 0, 1], bridge.admin_port).into(), "/readyz").is_ok_and(|r| r.0 == 200)
    })
    .await;
    // The provider's redelivery (RippleNet retries a 5xx later): 200 once committed.
    let asked = std::time::Instant::now();
    let second = post(&created[0]).await.map(|r| r.status()).ok();
    println!("redelivery answered {second:?} after {:?}", asked.elapsed());
    assert_eq!(second, Some(StatusCode::OK), "the redelivery is answered 200:\n{}", bridge.log());
    let (broker, records) = read(s.broker, s.topic.clone()).await;
    s.broker = broker;
    let mine = records.iter().filter(|r| r.header("ce_id") == Some(id_of(&created[0]).as_str())).count();
    assert!(mine >= 1, "its event is in Kafka before the 200");
    // Once committed, a late redelivery is answered at once.
    let asked = std::time::Instant::now();
    assert_eq!(post(&created[0]).await.map(|r| r.status()).ok(), Some(StatusCode::OK));
    assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
    eventually("the notification acknowledged", Duration::from_secs(10), || async { acked(&s.sandbox).await == 1 })
        .await;
}

/// The same, made deterministic: the broker holds the first produce request for 10 s (behind
/// a proxy), longer than the 5 s delivery timeout. A poller's attempt for a notification is
/// in flight when its webhook is redelivered; the attempt ends without a commit at its
/// deadline and the poller lets the notification go. The redelivery, with time left in its
/// 20 s commit timeout, waits for the next attempt (or takes a turn of its own) and is
/// answered 200 once the event is committed, never 503 for the attempt it waited on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_waiting_on_an_attempt_that_times_out_is_answered_200_once_committed() {
    if support::Engine::chosen() == support::Engine::Tansu {
        return; // a broker behind the proxy is an Apache Kafka broker.
    }
    let proxy = support::kafka_proxy::HoldingProxy::listen(support::kafka_proxy::PRODUCE);
    let broker = support::Broker::start_own_behind(&proxy);
    let (topic, dlq) = (broker.new_topic("redeliver-events", 1), broker.new_topic("redeliver-dlq", 1));
    let sandbox = support::sandbox::Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let s = support::ripplenet::Setup { broker, sandbox, topic, dlq };
    // One NEW read at start (then an hour), the SENT sweeper every second.
    let created = s.sandbox.create(1).await;
    proxy.hold(Duration::from_secs(10));
    let bridge = Paybridge::start(&config(
        &s,
        "new_interval = \"1h\"\nsent_interval = \"1s\"\nsent_delay = \"0s\"\n[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/rn\"\ncommit_timeout = \"20s\"",
    ));
    let hook = format!("{}/hooks/rn", bridge.intake());
    eventually("the NEW read's produce is held", Duration::from_secs(10), || async { proxy.held() > 0 }).await;
    proxy.hold(Duration::ZERO);
    let started = std::time::Instant::now();
    let answer = reqwest::Client::new().post(&hook).json(&json!({"msg_id": created[0]})).send().await;
    let (status, took) = (answer.map(|r| r.status()).ok(), started.elapsed());
    println!("redelivery: {status:?} after {took:?}");
    assert_eq!(status, Some(StatusCode::OK), "the redelivery waited on and was committed:\n{}", bridge.log());
    assert!(took < Duration::from_secs(20), "within its commit timeout: {took:?}");
    let (_broker, records) = read(s.broker, s.topic.clone()).await;
    assert!(records.iter().any(|r| r.header("ce_id") == Some(id_of(&created[0]).as_str())), "its event is in Kafka");
}
