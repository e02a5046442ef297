//! Payments Direct: the cursor search draining one window of payments (pages of 100, each
//! page's events committed, then its position). Timed from /readyz 200 to the last event
//! the broker confirmed (paybridge's own counter, read every 20 ms).
//!
//! The ceiling for the same work: a raw bridge reading the same window from the same sandbox
//! right after (one reqwest loop making the calls paybridge needs at the least: the search
//! pages and, for a payment not in its first state, its state history, eight at a time)
//! and handing one record per state to a raw librdkafka producer on the same broker (as the
//! raw producer ceiling: idempotent, acks=all, lz4, linger 5 ms), every delivery awaited at
//! the end. No position, no normalizing: what any bridge must at least do.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use paybridge::sink::kafka::EventRecord;
use paybridge_sandbox::Scenario;
use rdkafka::producer::FutureRecord;

use crate::measure;
use crate::running::{PollRun, Running, calls, calls_since, in_batches, until};
use crate::setup::{self, Topics};
use crate::support::Broker;
use crate::support::sandbox::Sandbox;

pub async fn poll_run(broker: &Broker, backlog: usize) -> PollRun {
    let sb = Sandbox::start(Scenario::default()).await;
    in_batches(backlog, 1000, |batch| sb.pd_create(batch)).await;
    drain(broker, sb, backlog, "payments_direct").await
}

/// A backlog of `events` states: payments that each went INITIATED → VALIDATING →
/// TRANSFERRING → COMPLETED before the search first shows them, so every one of them needs
/// its history read (the three states before COMPLETED).
pub async fn lifecycles_run(broker: &Broker, events: usize) -> PollRun {
    let sb = Sandbox::start(Scenario::default()).await;
    let payments = (events / 4).max(1);
    in_batches(payments, 1000, |batch| sb.pd_create(batch)).await;
    for _ in 0..3 {
        let moved = sb.control("/_sandbox/payments_direct/advance", serde_json::json!({"failure_rate": 0.0})).await;
        assert!(moved.is_success(), "advance: {moved}");
    }
    drain(broker, sb, payments * 4, crate::report::LIFECYCLES).await
}

/// Starts paybridge on the sandbox's payments and times it until `backlog` events are
/// confirmed.
async fn drain(broker: &Broker, sb: Sandbox, backlog: usize, label: &str) -> PollRun {
    let sample = setup::payments_direct_sample(&sb).await;
    let before = calls(&sb, "payments_direct").await;
    // Past the 1 s safety lag, so the whole backlog is in the first window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let topics = Topics::new(broker, "bench-pd");
    let section = setup::payments_direct(&sb);
    let run = Running::start(&setup::bridge_config(broker, &topics, None, &[section]), broker.pid());
    let ready = Instant::now();
    let admin = run.bridge.admin_port;
    let limit = Duration::from_secs(120 + backlog as u64 / 100);
    until("Payments Direct backlog published", limit, || async move {
        // Off the runtime the sandbox serves on: a blocking scrape there would slow the
        // provider being measured.
        let scrape = tokio::task::spawn_blocking(move || measure::metrics(admin)).await;
        scrape.is_ok_and(|s| measure::counter(&s, "paybridge_events_published_total", "pd") >= backlog as f64)
    })
    .await;
    let took = ready.elapsed();
    let calls = calls_since(&sb, "payments_direct", &before).await;
    let process = run.finish(backlog, "pd");
    let provider_ceiling = raw_bridge(broker, &sb, &sample).await;
    PollRun {
        source: label.into(),
        backlog,
        capacity: paybridge::config::PipelineConfig::default().capacity,
        events_per_s: backlog as f64 / took.as_secs_f64(),
        provider_ceiling,
        calls_per_event: calls.values().sum::<usize>() as f64 / backlog as f64,
        calls,
        event_bytes: sample.value.len(),
        process,
        ..PollRun::default()
    }
}

/// States per second a raw bridge moves from `sb` to `broker`: every search page of the last
/// hour (100 a page, oldest first) and the state history of each payment not in its first
/// state (its states before the current one), eight at a time like paybridge, one record of
/// `sample`'s size per state, every delivery confirmed.
async fn raw_bridge(broker: &Broker, sb: &Sandbox, sample: &EventRecord) -> f64 {
    let topic = broker.new_topic("bench-pd-raw", 3);
    // librdkafka's default of 5 requests in flight, as paybridge.
    let producer = crate::ceiling::raw(broker, 5);
    let warm = FutureRecord::to(&topic).key(&sample.key).payload(&sample.value);
    let _ = producer.send(warm, Duration::from_secs(30)).await;
    let mut deliveries = Vec::new();
    let mut produce = |key: &str, n: usize| {
        for _ in 0..n {
            let mut record = FutureRecord::to(&topic).key(key).payload(&sample.value);
            loop {
                match producer.send_result(record) {
                    Ok(d) => break deliveries.push(d),
                    Err((_, back)) => {
                        // The local queue is full (more than 100,000 records): let it drain.
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
    };
    let token = sb.pd_token().await;
    let now = chrono::Utc::now();
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let filter = serde_json::json!({
        "filterRangeType": "PAYMENT_STATUS_LAST_UPDATED",
        "afterTimestamp": stamp(now - chrono::TimeDelta::hours(1)),
        "beforeTimestamp": stamp(now),
    });
    let started = Instant::now();
    let (mut states, mut page_token) = (0usize, None::<String>);
    loop {
        let mut page = serde_json::json!({"size": 100});
        if let Some(t) = &page_token {
            page["lastPageToken"] = serde_json::Value::String(t.clone());
        }
        let body = serde_json::json!({"filter": filter, "sort": {"sortField": "lastStateUpdatedAt", "sortDirection": "ASC"}, "page": page});
        let answer: serde_json::Value =
            sb.post_json(&token, "/v3/payments/filter", body).await.json().await.unwrap_or_default();
        let payments = answer["data"].as_array().cloned().unwrap_or_default();
        states += payments.len();
        for p in &payments {
            produce(p["paymentId"].as_str().unwrap_or_default(), 1);
        }
        let moved = payments.iter().filter(|p| p["lastStateUpdatedAt"] != p["initiatedAt"]);
        let reads = moved.map(|p| {
            let path = format!("/v3/payments/{}/states", p["paymentId"].as_str().unwrap_or_default());
            let token = &token;
            async move { sb.get_json(&path, Some(token)).await }
        });
        // As many history reads at once as paybridge makes.
        let histories: Vec<serde_json::Value> = stream::iter(reads).buffered(8).collect().await;
        // One transition per state entered after the first: as many earlier states.
        for (p, h) in payments.iter().filter(|p| p["lastStateUpdatedAt"] != p["initiatedAt"]).zip(&histories) {
            let earlier = h["stateTransitions"].as_array().map_or(0, Vec::len);
            produce(p["paymentId"].as_str().unwrap_or_default(), earlier);
            states += earlier;
        }
        page_token = answer["page"]["lastPageToken"].as_str().map(str::to_owned);
        if page_token.is_none() {
            break;
        }
    }
    for d in deliveries {
        assert!(matches!(d.await, Ok(Ok(_))), "the raw bridge's record was not delivered");
    }
    states as f64 / started.elapsed().as_secs_f64()
}
