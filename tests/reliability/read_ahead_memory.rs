//! The worst read-ahead a configuration allows: 64 Checkout receivers, a pipeline of 1,000
//! events, large messages, and the broker down. The receivers share one pipeline's worth of
//! pages read ahead, so paybridge takes at most `pipeline.capacity` + `receivers ×
//! max_messages` messages off the queue, and its peak RSS stays under the formula of docs/src/performance.md.
//! (Alone in its test binary: the RSS measured is paybridge's own process.)

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::Broker;
use support::checkout::{config, sandbox_with};
use support::keys::rsa_keys;
use support::process::Paybridge;

const CAPACITY: u64 = 1_000;
const RECEIVERS: u64 = 64;
const MAX_MESSAGES: u64 = 10;
const MESSAGES: usize = 4_000;
const PADDING: usize = 20_000;

/// A `/proc/<pid>/status` field in bytes (`VmHWM`: the peak RSS).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_receivers_read_ahead_one_pipeline_and_memory_stays_under_the_formula() {
    let keys = rsa_keys();
    let sb = sandbox_with(&keys, |scenario| scenario.checkout.visibility_timeout = Duration::from_secs(600)).await;
    let mut broker = Broker::start_own();
    let (topic, dlq) = (broker.new_topic("ra-events", 1), broker.new_topic("ra-dlq", 1));
    let text = config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string())
        .replacen(
            "timeout = \"1s\"\n",
            &format!(
                "timeout = \"1s\"\nreceivers = {RECEIVERS}\nmax_messages = {MAX_MESSAGES}\npages_in_flight = 1000\n"
            ),
            1,
        )
        .replacen("delivery_timeout = \"5s\"", "delivery_timeout = \"120s\"", 1)
        + &format!("\n[pipeline]\ncapacity = {CAPACITY}\n");
    let bridge = Paybridge::start(&text);
    broker.stop();
    let idle = status_bytes(bridge.pid(), "VmRSS");

    let order = json!({
        "checkoutIntent": "CHECKOUT_INTENT_CAPTURE", "status": "ORDER_STATUS_COMPLETED",
        "transactionReferenceNumber": "Q00001-0001-001", "checkoutReference": "QSA0001",
        "totalTransactionAmount": "100", "transactionTimestamp": "2026-12-05T08:00:00.000Z",
        "fraudCheckStatus": "FRAUD_CHECK_STATUS_PASSED", "padding": "x".repeat(PADDING),
    });
    let created = sb
        .http
        .post(sb.url("/_sandbox/checkout/messages"))
        .json(&json!({"count": MESSAGES, "notification": "orderNotification", "body": order}))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(created.unwrap_or(0), 201);
    tokio::time::sleep(Duration::from_secs(15)).await;

    let stats = sb.get_json("/_sandbox/checkout/stats", None).await;
    let delivered = stats["deliveries"].as_u64().unwrap_or(u64::MAX);
    let peak = status_bytes(bridge.pid(), "VmHWM");
    // The formula of docs/src/performance.md: 64 MiB + capacity × (4 × event + raw item per polling source).
    // An event carries the message's JSON (≈ 20 KB) plus its envelope; a raw item read
    // ahead is the message as parsed JSON, counted at twice its text.
    let event = (PADDING + 2_000) as u64;
    let bound = 64 * 1024 * 1024 + CAPACITY * (4 * event + 2 * event);
    eprintln!(
        "{delivered} of {MESSAGES} messages taken off the queue; RSS idle {} MiB, peak {} MiB, formula {} MiB",
        idle >> 20,
        peak >> 20,
        bound >> 20
    );
    assert!(delivered > 0, "the receivers read");
    assert!(
        delivered <= CAPACITY + RECEIVERS * MAX_MESSAGES,
        "{delivered} messages taken: more than the pipeline plus one page per receiver"
    );
    assert!(peak > 0 && peak <= bound, "peak RSS {} MiB over the formula's {} MiB", peak >> 20, bound >> 20);
}
