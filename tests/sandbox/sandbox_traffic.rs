//! Sandbox traffic: the rate generator and out-of-order webhooks.

use crate::support;

use std::time::Duration;

use paybridge_sandbox::Scenario;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::sandbox::{Hook, Sandbox};

async fn stats(sb: &Sandbox, path: &str) -> Value {
    sb.get_json(path, None).await
}

#[tokio::test]
async fn the_generator_creates_traffic_at_the_given_rates_until_stopped() {
    let sb = Sandbox::start(Scenario::default()).await;
    let bad = sb.http.put(sb.url("/_sandbox/generator")).json(&json!({"ripplenet_per_second": -1})).send().await;
    assert_eq!(bad.map(|r| r.status()).ok(), Some(StatusCode::BAD_REQUEST));
    let rates = json!({"ripplenet_per_second": 40, "payments_direct_per_second": 20, "checkout_per_second": 10, "advance_every": "200ms"});
    // The generator owes `rate × time` and pays every 100 ms (catching up when it was late):
    // the counts are bounded by the time it surely ran (from the PUT's answer to the DELETE's
    // sending, less a tick and a scheduling delay) and the time it may have run (from the PUT's
    // sending to the DELETE's answer, plus the immediate first tick). Not a fixed window: a
    // busy machine stretches the sleep.
    let outer = std::time::Instant::now();
    let r = sb.http.put(sb.url("/_sandbox/generator")).json(&rates).send().await.unwrap_or_else(|e| panic!("{e}"));
    let inner = std::time::Instant::now();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let surely = inner.elapsed().as_secs_f64() - 0.3;
    let r = sb.http.delete(sb.url("/_sandbox/generator")).send().await;
    let maybe = outer.elapsed().as_secs_f64() + 0.1;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::NO_CONTENT));

    let rn = stats(&sb, "/_sandbox/ripplenet/stats").await["total"].as_u64().unwrap_or(0);
    let pd = stats(&sb, "/_sandbox/payments_direct/stats").await;
    let co = stats(&sb, "/_sandbox/checkout/stats").await["total"].as_u64().unwrap_or(0);
    for (what, rate, n) in
        [("RippleNet", 40.0, rn), ("Payments Direct", 20.0, pd["total"].as_u64().unwrap_or(0)), ("Checkout", 10.0, co)]
    {
        let (low, high) = ((rate * surely).floor() as u64, (rate * maybe).ceil() as u64);
        assert!(
            (low..=high).contains(&n),
            "{what}: {n} at {rate}/s, expected {low}..={high} ({surely:.2} to {maybe:.2} s)"
        );
    }
    assert!(pd["COMPLETED"].as_u64().unwrap_or(0) > 0, "payments were walked through their lifecycle: {pd}");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = stats(&sb, "/_sandbox/ripplenet/stats").await["total"].as_u64().unwrap_or(0);
    assert_eq!(after, rn, "stopped");
}

#[tokio::test]
async fn out_of_order_webhooks_arrive_shuffled() {
    let hook = Hook::accepting().await;
    let mut scenario = Scenario::default();
    scenario.ripplenet.callback_url = Some(hook.url.clone());
    let sb = Sandbox::start(scenario).await;
    let fault = json!({"endpoint": "ripplenet.webhook", "action": "out_of_order_webhook", "ms": 400});
    assert_eq!(sb.control("/_sandbox/faults", fault).await, StatusCode::CREATED);
    let created = sb.create(20).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got: Vec<String> = hook.received().iter().filter_map(|b| b["msg_id"].as_str().map(str::to_owned)).collect();
    let mut sorted = got.clone();
    sorted.sort();
    let mut expected = created.clone();
    expected.sort();
    assert_eq!(sorted, expected, "every webhook arrives");
    assert_ne!(got, created, "but not in creation order");
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data() {
    async fn ids(seed: u64) -> (Vec<String>, Vec<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(paybridge_sandbox::serve(
            listener,
            paybridge_sandbox::state(seed, Scenario::default()),
            stop.clone(),
        ));
        let http = reqwest::Client::new();
        let post = |path: &str, body: Value| http.post(format!("http://{addr}{path}")).json(&body).send();
        let rn: Value = post("/_sandbox/ripplenet/notifications", json!({"count": 5}))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_default();
        let pd: Value = post("/_sandbox/payments_direct/payments", json!({"count": 5}))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_default();
        stop.cancel();
        let strings = |v: &Value| {
            v.as_array().cloned().unwrap_or_default().iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()
        };
        (strings(&rn["uuids"]), strings(&pd["paymentIds"]))
    }
    let a = ids(42).await;
    assert_eq!(a.0.len(), 5);
    assert_eq!(a, ids(42).await, "same seed, same ids");
    assert_ne!(a, ids(43).await, "another seed, other ids");
}
